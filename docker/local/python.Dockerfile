# Debian's Python 3.11 on the locally built base (tinyim-base:bookworm): what docker/Dockerfile needs of
# python:3.11-slim (python3, venv, pip) when no registry image can be pulled.
FROM tinyim-base:bookworm
RUN apt-get update -q \
 && apt-get install -y -q python3 python3-venv python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*

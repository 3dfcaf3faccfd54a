# Redis from Debian's package, run like the official redis image (foreground, reachable on the network).
FROM tinyim-base:bookworm
RUN apt-get update -q \
 && apt-get install -y -q redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /data
EXPOSE 6379
# as the official image: reachable from other containers (no protected mode); `redis-server ARGS` runs it
ENTRYPOINT ["/bin/sh", "-c", "[ \"$1\" = redis-server ] && shift; exec redis-server --protected-mode no --bind 0.0.0.0 \"$@\"", "redis"]
CMD ["redis-server"]

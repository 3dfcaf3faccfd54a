# etcd from Debian's packages (server + etcdctl), run as the official image is: the command is `etcd ...`.
FROM tinyim-base:bookworm
RUN apt-get update -q \
 && apt-get install -y -q etcd-server etcd-client \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 2379 2380
CMD ["etcd"]

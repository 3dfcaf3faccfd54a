# Node.js for the Web client's build stage (docker/Dockerfile's NODE_IMAGE) on the locally built base.
# Debian bookworm ships Node 18; the Web build needs 20.19+, so build-images.sh copies in this host's
# Node.js (with its npm) when it is recent enough.
FROM tinyim-base:bookworm
RUN apt-get update -q \
 && apt-get install -y -q libstdc++6 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

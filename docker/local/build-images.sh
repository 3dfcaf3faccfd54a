#!/usr/bin/env bash
# Builds the images docker/compose.local.yaml runs, from Debian's packages only (no registry pulls):
#   tinyim-base:bookworm     debootstrap --variant=minbase bookworm, `docker import`ed
#   tinyim-mariadb:local     Debian's MariaDB with an entrypoint like the official image's (docker/local/mariadb)
#   tinyim-redis:local       Debian's redis-server
#   tinyim-etcd:local        Debian's etcd-server + etcdctl
#   tinyim-node:local        the base + this host's Node.js 20.19+ (Debian has 18), for the Web build
#   tinyim:latest            docker/Dockerfile on tinyim-python:local (the base + Debian's python3)
# An image is rebuilt only when what it is built from changed (a label holds its sources' hash); the base
# only when it is missing. FORCE=1 rebuilds all. Run from anywhere; needs root (debootstrap) and a running dockerd.
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER=${DOCKER:-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
FORCE=${FORCE:-0}

have() { [ "$FORCE" != 1 ] && $DOCKER image inspect "$1" >/dev/null 2>&1; }
step() { echo "[images] $*"; }

if ! have tinyim-base:bookworm; then
  step "debootstrap bookworm (minbase) -> tinyim-base:bookworm"
  root=$(mktemp -d /tmp/tinyim-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/tmp/tinyim-debootstrap.log 2>&1 \
    || { tail -20 /tmp/tinyim-debootstrap.log; exit 1; }
  # as the official debian image: no daemons started by package scripts, no docs, security updates on
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
    >"$root/etc/dpkg/dpkg.cfg.d/docker-minimal"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/docker-minimal"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" >"$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | $DOCKER import --change 'CMD ["/bin/bash"]' - tinyim-base:bookworm >/dev/null
  rm -rf "$root"; trap - EXIT
fi

label() { $DOCKER image inspect -f '{{ index .Config.Labels "tinyim.source" }}' "$1" 2>/dev/null || true; }
build() {  # build TAG DOCKERFILE: again only when its Dockerfile or docker/local/ changed
  local tag=$1 file=$2 hash
  hash=$( (cat "$file" docker/local/mariadb-entrypoint.sh; $DOCKER image inspect -f '{{.Id}}' tinyim-base:bookworm) | sha1sum | cut -c1-16)
  if [ "$FORCE" != 1 ] && [ "$(label "$tag")" = "$hash" ]; then return; fi
  step "build $tag"
  $DOCKER build -q -t "$tag" -f "$file" --label "tinyim.source=$hash" docker/local >/dev/null
}
# the four are independent and mostly wait on apt downloads: built side by side (a cold run saves minutes)
pids=()
build tinyim-python:local docker/local/python.Dockerfile & pids+=($!)
build tinyim-mariadb:local docker/local/mariadb.Dockerfile & pids+=($!)
build tinyim-redis:local docker/local/redis.Dockerfile & pids+=($!)
build tinyim-etcd:local docker/local/etcd.Dockerfile & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: a failed build stops here

# Node.js 20.19+ for the Web client's build (Debian has 18): this host's, copied in.
node_bin=$(command -v node || true)
if [ -z "$node_bin" ] || ! "$node_bin" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "[images] the Web client's build needs Node.js 20.19+ with npm on this host (README)"; exit 1
fi
node_hash=$( ("$node_bin" --version; cat docker/local/node.Dockerfile; $DOCKER image inspect -f '{{.Id}}' tinyim-base:bookworm) | sha1sum | cut -c1-16)
if [ "$FORCE" = 1 ] || [ "$(label tinyim-node:local)" != "$node_hash" ]; then
  step "build tinyim-node:local (Node.js $("$node_bin" --version) from this host)"
  ctx=$(mktemp -d /tmp/tinyim-node.XXXXXX)
  cp "$(readlink -f "$node_bin")" "$ctx/node"
  cp -r "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$ctx/npm"
  $DOCKER build -q -t tinyim-node:local -f docker/local/node.Dockerfile --label "tinyim.source=$node_hash" \
    "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# The application image: docker/Dockerfile on the local python base. PyPI is reached through the host's CA
# bundle, given to pip as a build secret (never stored in a layer). Rebuilt when the sources changed.
sources=(pyproject.toml requirements.lock requirements-build.lock src protos tools migrations alembic.ini docker/Dockerfile .dockerignore web)
src_hash=$( { git ls-files -co --exclude-standard -- "${sources[@]}" 2>/dev/null \
  || find "${sources[@]}" -type f -not -path '*/__pycache__/*' -not -path 'src/tinyim/pb/*'; } \
  | sort | xargs sha1sum | cat - <($DOCKER image inspect -f '{{.Id}}' tinyim-python:local tinyim-node:local) \
  | sha1sum | cut -c1-16)
if [ "$FORCE" = 1 ] || [ "$(label tinyim:latest)" != "$src_hash" ]; then
  step "build tinyim:latest (docker/Dockerfile on tinyim-python:local)"
  ca=${TINYIM_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
  DOCKER_BUILDKIT=1 $DOCKER build -q -t tinyim:latest -f docker/Dockerfile \
    --build-arg PYTHON_IMAGE=tinyim-python:local --build-arg NODE_IMAGE=tinyim-node:local \
    --label "tinyim.source=$src_hash" \
    --secret "id=pip_cert,src=$ca" . >/dev/null
fi
$DOCKER image prune -f --filter label=tinyim.source >/dev/null  # our superseded builds
step "ready: $($DOCKER images --format '{{.Repository}}:{{.Tag}}' | grep -E '^tinyim' | tr '\n' ' ')"

#!/usr/bin/env bash
# make compose-e2e: the multi-role topology in real containers on this machine, tested from the host.
#  1. installs Debian's docker.io, docker-compose and debootstrap when missing; starts dockerd when it is
#     not running (log: /var/log/tinyim-dockerd.log; it keeps running, with its image cache, afterwards)
#  2. builds the local images that are missing (docker/local/build-images.sh: no registry pulls)
#  3. brings up docker/compose.yaml + docker/compose.local.yaml (dispatch, 2 gateways, auth, user, 2 msg,
#     MariaDB primary + replica, Redis, etcd) with throwaway secrets, its ports on 127.0.0.1 only
#  4. runs the skeleton and social scenarios against dispatch (tests/e2e/test_chat.py, test_social.py with
#     TINYIM_E2E_COMPOSE set) and tests/e2e/test_compose.py (replication, --scale, killed containers)
#  5. tears everything down (containers, network, volumes), also on failure; timings on the last lines.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/var/compose-e2e
DOCKER=/usr/bin/docker  # Debian's CLI (its BuildKit client builds docker/Dockerfile)
mkdir -p "$WORK"
start=$SECONDS
declare -a timings=()
mark() { timings+=("$1: $((SECONDS - ${2:-$start}))s"); }

# ---- 1. docker
need=()
[ -x /usr/sbin/dockerd ] && [ -x "$DOCKER" ] || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "[compose-e2e] installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
if ! $DOCKER info >/dev/null 2>&1; then
  echo "[compose-e2e] starting dockerd (log: /var/log/tinyim-dockerd.log)"
  nohup /usr/sbin/dockerd >>/var/log/tinyim-dockerd.log 2>&1 &
  for _ in $(seq 60); do $DOCKER info >/dev/null 2>&1 && break; sleep 1; done
  $DOCKER info >/dev/null 2>&1 || { tail -20 /var/log/tinyim-dockerd.log; exit 1; }
fi
mark "docker ready"

# ---- 2. images
t=$SECONDS
DOCKER=$DOCKER docker/local/build-images.sh
mark "images" "$t"

# ---- 3. the stack
project="tinyime2e$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
free_ports() {
  .venv/bin/python - <<'EOF'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r dispatch_port gw1_port gw2_port fg1_port fg2_port fg1_http fg2_http < <(free_ports)
secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
env_file=$WORK/cluster.env
umask 077
cat >"$env_file" <<EOF
DB_ROOT_PASSWORD=$(secret)
DB_PASSWORD=$(secret)
DB_REPLICATION_PASSWORD=$(secret)
IM_JWT_SECRET=$(secret)$(secret)
METRICS_TOKEN=$(secret)
GATEWAY_1_WS_URL=ws://127.0.0.1:$gw1_port/ws
GATEWAY_2_WS_URL=ws://127.0.0.1:$gw2_port/ws
BIND_ADDRESS=127.0.0.1
DISPATCH_PORT=$dispatch_port
GATEWAY_1_PORT=$gw1_port
GATEWAY_2_PORT=$gw2_port
PUBLIC_HOST=127.0.0.1
FILEGW_1_PORT=$fg1_port
FILEGW_2_PORT=$fg2_port
FILEGW_1_HTTP_PORT=$fg1_http
FILEGW_2_HTTP_PORT=$fg2_http
FILEGW_1_HTTP_URL=http://127.0.0.1:$fg1_http
FILEGW_2_HTTP_URL=http://127.0.0.1:$fg2_http
EOF
umask 022
compose=(docker-compose -p "$project" -f docker/compose.yaml -f docker/compose.local.yaml --env-file "$env_file")

teardown() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    "${compose[@]}" --profile scale ps >"$WORK/ps.txt" 2>&1 || true
    "${compose[@]}" --profile scale logs --no-color --timestamps >"$WORK/containers.log" 2>&1 || true
    echo "[compose-e2e] FAILED (exit $rc); container logs: $WORK/containers.log"
  fi
  t=$SECONDS
  "${compose[@]}" --profile scale --profile monitoring down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
  mark "teardown" "$t"
  mark "total"
  printf '[compose-e2e] %s\n' "${timings[@]}"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

t=$SECONDS
echo "[compose-e2e] up: project $project, dispatch on 127.0.0.1:$dispatch_port"
"${compose[@]}" up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
for _ in $(seq 120); do
  curl -fsS "http://127.0.0.1:$dispatch_port/healthz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$dispatch_port/healthz" >/dev/null
mark "stack up" "$t"

.venv/bin/python - "$WORK/stack.json" "$env_file" "$dispatch_port" "$gw1_port" "$gw2_port" "${compose[@]}" <<'EOF'
import json, sys
out, env_file, dispatch, gw1, gw2, *compose = sys.argv[1:]
env = dict(line.split("=", 1) for line in open(env_file).read().splitlines() if "=" in line)
json.dump({
    "compose": compose,
    "dispatch_url": f"http://127.0.0.1:{dispatch}",
    "gateway_ports": {"gateway-1": int(gw1), "gateway-2": int(gw2)},
    "env": env,
}, open(out, "w"))
EOF

# ---- 4. the scenarios, from the host
t=$SECONDS
# COMPOSE_E2E_TESTS (pytest arguments) runs a part, e.g. "tests/e2e/test_compose.py -k scale"
read -r -a tests <<<"${COMPOSE_E2E_TESTS:-tests/e2e/test_chat.py tests/e2e/test_social.py tests/e2e/test_compose.py tests/e2e/test_files.py}"
TINYIM_E2E_COMPOSE=$WORK/stack.json timeout 900 .venv/bin/python -m pytest -q -p no:cacheprovider --durations=12 \
  "${tests[@]}"
mark "scenarios" "$t"

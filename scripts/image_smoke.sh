#!/usr/bin/env bash
# Build the reference service image for real and smoke-test it (used by `nox -s image`).
# Installs docker.io / debootstrap (apt) if missing, starts dockerd by hand if none runs (and
# stops it again), builds with `python -m harness.backends.kind_image` (the build path the kind
# backend uses: base image made locally if missing, wheels, docker build), runs with a memory
# limit, checks probes and one completion, cleans up. Exits 0 with "SKIP: <reason>" when no engine can start.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${GAUNTLET_IMAGE:-gauntlet-inference:dev}"  # the image manifests/overlays/local names
BASE="${GAUNTLET_BASE_IMAGE:-gauntlet-base:bookworm}"
MEMORY="${GAUNTLET_SMOKE_MEMORY:-1500m}"
WORK="$(mktemp -d /tmp/gauntlet-image.XXXXXX)"
DOCKERD_PID=""
CONTAINER=""
log() { echo "[image-smoke] $*"; }
skip() { echo "SKIP: $*"; exit 0; }
cleanup() {
  [ -n "$CONTAINER" ] && docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  if [ -n "$DOCKERD_PID" ]; then log "stopping dockerd (pid $DOCKERD_PID)"; kill "$DOCKERD_PID" 2>/dev/null || true; wait "$DOCKERD_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v dockerd >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || skip "dockerd not installed and not root to install docker.io"
  log "installing docker.io"
  apt-get install -y -q docker.io >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q docker.io >/dev/null 2>&1; } || skip "could not install docker.io with apt"
fi
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || skip "no running Docker engine and not root to start dockerd"
  log "starting dockerd by hand"
  dockerd --bridge=none --iptables=false >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -5 "$WORK/dockerd.log"; DOCKERD_PID_KEEP=$DOCKERD_PID; skip "dockerd did not start (see log above)"; }
fi
if ! docker image inspect "$BASE" >/dev/null 2>&1 && ! command -v debootstrap >/dev/null 2>&1; then
  apt-get install -y -q debootstrap >/dev/null 2>&1 || skip "could not install debootstrap"
fi

# The ONE build path (the kind backend uses it too): base image if missing (debootstrap +
# docker import), the build context with wheels/ from `pip download` on the host, docker build.
PY="$REPO/.venv/bin/python"; [ -x "$PY" ] || PY=python3
T0=$(date +%s)
log "building $IMAGE (base $BASE) with harness.backends.kind_image"
(cd "$REPO" && "$PY" -m harness.backends.kind_image --image "$IMAGE" --base "$BASE") >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log"; echo "FAIL: image build"; exit 1; }
log "$(tail -1 "$WORK/build.log")"
log "built in $(( $(date +%s) - T0 ))s; size $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
CONTAINER="gauntlet-smoke-$$"
docker run -d --name "$CONTAINER" --network host --memory "$MEMORY" \
  -e GAUNTLET_HOST=127.0.0.1 -e GAUNTLET_PORT="$PORT" -e GAUNTLET_TORCH_THREADS=1 "$IMAGE" >/dev/null
URL="http://127.0.0.1:$PORT"
T0=$(date +%s)
for _ in $(seq 1 240); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/startup")" = 200 ] && break
  [ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER")" = true ] || { docker logs "$CONTAINER" | tail -20; echo "FAIL: container exited"; exit 1; }
  sleep 0.5
done
log "started in $(( $(date +%s) - T0 ))s"
for p in /startup /ready /healthz /v1/models; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$URL$p"); log "GET $p -> $code"; [ "$code" = 200 ] || { docker logs "$CONTAINER" | tail -20; echo "FAIL: $p"; exit 1; }
done
OUT=$(curl -s -w '\n%{http_code}' -X POST "$URL/v1/completions" -H 'content-type: application/json' -d '{"prompt":"Hello","max_tokens":8,"temperature":0}')
CODE=$(echo "$OUT" | tail -1); log "POST /v1/completions -> $CODE $(echo "$OUT" | head -1 | cut -c1-200)"
[ "$CODE" = 200 ] || { echo "FAIL: completion"; exit 1; }
USER_ID=$(docker exec "$CONTAINER" id -u); log "container user id $USER_ID"; [ "$USER_ID" != 0 ] || { echo "FAIL: runs as root"; exit 1; }
log "memory limit $(docker inspect -f '{{.HostConfig.Memory}}' "$CONTAINER") bytes; usage $(docker stats --no-stream --format '{{.MemUsage}}' "$CONTAINER")"
docker stop -t 30 "$CONTAINER" >/dev/null
log "exit code after SIGTERM: $(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")"
echo "PASS: image $IMAGE built and smoke-tested"

#!/usr/bin/env bash
# Build the reference service image for real and smoke-test it (used by `nox -s image`).
# Installs docker.io / debootstrap (apt) if missing, starts dockerd by hand if none runs (and
# stops it again), makes the base image locally, builds, runs with a memory limit, checks probes
# and one completion, cleans up. Exits 0 with "SKIP: <reason>" when no engine can start.
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
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || apt-get install -y -q debootstrap >/dev/null 2>&1 || skip "could not install debootstrap"
  log "making base image $BASE with debootstrap (minbase bookworm)"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 || { tail -5 "$WORK/debootstrap.log"; skip "debootstrap failed"; }
  tar -C "$WORK/rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
fi

log "preparing build context"
CTX="$WORK/context"; mkdir -p "$CTX/wheels"
(cd "$REPO" && tar -c --exclude='__pycache__' pyproject.toml README.md harness reference_service) | tar -C "$CTX" -x
PIP="$REPO/.venv/bin/python -m pip"; [ -x "$REPO/.venv/bin/python" ] || PIP="python3 -m pip"
log "downloading wheels on the host (torch from the pip find-links folder)"
$PIP download -q --dest "$CTX/wheels" --python-version 3.11 --only-binary=:all: \
  "torch==2.13.0+cpu" "transformers==5.24.0" "tokenizers>=0.23,<0.24" "safetensors>=0.8,<0.9" \
  "fastapi>=0.165,<0.166" "uvicorn>=0.54,<0.55" "prometheus-client>=0.26,<0.27" "pydantic>=2.14,<3" \
  "pydantic-settings>=2.14,<3" "click>=8.5,<9" "psutil>=7.2,<8" "httpx>=0.28,<0.29" \
  "pyyaml>=6.0.4,<7" "setuptools>=68" wheel >"$WORK/download.log" 2>&1 \
  || { tail -10 "$WORK/download.log"; skip "could not download the image's wheels on the host"; }
T0=$(date +%s)
log "building $IMAGE (base $BASE)"
docker build --network host --build-arg BASE_IMAGE="$BASE" -f "$CTX/reference_service/Dockerfile" -t "$IMAGE" "$CTX" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; echo "FAIL: docker build"; exit 1; }
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

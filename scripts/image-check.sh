#!/usr/bin/env bash
# Builds the container images and tries one as a new user would: `probelog serve --embedded`
# inside the embedded image, searched with grpcurl. Not part of the test command: it takes
# minutes and gigabytes (the images with torch are several GB each).
#
#   scripts/image-check.sh [WORLD_DIR]
#
# WORLD_DIR (default .data/world-tiny-seed0) is copied into the embedded container; ROLES
# (default: every role of deploy/docker/roles; "world" adds deploy/docker/world.Dockerfile's
# image) picks the images to build, in that order. Needs root, buildah and
# debootstrap (installed with apt-get when missing). No registry is needed: the base image is
# made from Debian's packages with debootstrap, and every build runs with chroot isolation. pip
# inside the builds reads this machine's pip configuration and local package folders.
# Prints one PASS or FAIL line with the reasons; exit code 0 on PASS.
set -euo pipefail
cd "$(dirname "$0")/.."

WORLD=${1:-.data/world-tiny-seed0}
ROLES=${ROLES:-$(grep -v '^#' deploy/docker/roles | awk 'NF {print $1}' | xargs)}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/probelog-debian-base:$SUITE
TAG=check
GRPCURL=.venv/bin/grpcurl

failures=()
log() { printf '[image-check] %s\n' "$*" >&2; }
fail() { failures+=("$*"); log "FAIL: $*"; }
finish() {
  if [ ${#failures[@]} -eq 0 ]; then
    echo "PASS: images built for: $ROLES; serve --embedded answered a grpcurl Search"
    exit 0
  fi
  printf 'FAIL: %s\n' "$(IFS=';'; echo "${failures[*]}")"
  exit 1
}

[ "$(id -u)" -eq 0 ] || { fail "run as root (buildah and debootstrap need it here)"; finish; }
[ -d "$WORLD" ] || { fail "no world at $WORLD (probelog world build --out $WORLD)"; finish; }
[ -x "$GRPCURL" ] || { fail "no grpcurl at $GRPCURL (run scripts/setup.sh)"; finish; }
for tool in buildah debootstrap; do
  if ! command -v "$tool" >/dev/null; then
    log "installing $tool"
    apt-get install -y -qq "$tool" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq "$tool" >/dev/null; } \
      || { fail "cannot install $tool with apt-get"; finish; }
  fi
done

work=$(mktemp -d)
container=""
server=""
cleanup() {
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  [ -z "$container" ] || buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- The base: Debian's python3 (and venv) from debootstrap, imported as an image once.
started=$(date +%s)
if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
  log "making $BASE with debootstrap from $MIRROR"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
    fail "debootstrap failed: $(tail -1 "$work/debootstrap.log")"; finish
  fi
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  base=$(buildah from scratch)
  mnt=$(buildah mount "$base")
  cp -a "$work/rootfs/." "$mnt/"
  buildah umount "$base" >/dev/null
  buildah config --cmd /bin/bash "$base"
  buildah commit --quiet "$base" "$BASE" >/dev/null
  buildah rm "$base" >/dev/null
  rm -rf "$work/rootfs"
fi
log "base ready in $(( $(date +%s) - started )) s"

# --- The images. pip inside the build reads this machine's configuration and local folders.
pip_conf="$work/pip.conf"
{
  echo "[global]"
  pip config list 2>/dev/null | sed -n "s/^global\.\([a-z-]*\)='\(.*\)'$/\1 = \2/p"
} >"$pip_conf"
mounts=(-v "$pip_conf:/etc/pip.conf:ro")
# The host's CA bundle (a proxy in front of the registries may sign with its own CA) at a path
# of its own, so the base image's bundle stays as it is.
cert=$(sed -n 's/^cert = //p' "$pip_conf")
if [ -n "$cert" ] && [ -f "$cert" ]; then
  sed -i 's|^cert = .*|cert = /run/image-check/ca.crt|' "$pip_conf"
  mounts+=(-v "$cert:/run/image-check/ca.crt:ro")
fi
for folder in $(sed -n 's/^\(find-links\|extra-index-url\|constraint\) = //p' "$pip_conf" | tr ' ' '\n' \
    | sed 's|^file://||; s|/simple/*$||' | grep '^/' | sort -u); do
  [ -e "$folder" ] && mounts+=(-v "$folder:$folder:ro")
done

build() {  # build NAME DOCKERFILE BUILD-ARGS...
  local name=$1 file=$2
  shift 2
  local t0
  t0=$(date +%s)
  log "building $name"
  if nice -n 10 buildah bud --isolation chroot --layers --quiet "${mounts[@]}" -f "$file" \
      --ignorefile "$file.dockerignore" --build-arg "PYTHON_IMAGE=$BASE" "$@" \
      -t "localhost/$name:$TAG" . >"$work/$name.log" 2>&1; then
    log "built $name in $(( $(date +%s) - t0 )) s"
  else
    grep -v '^\s*$' "$work/$name.log" | tail -n 20 | sed 's/^/[image-check]   /' >&2
    fail "building $name: $(grep -v '^\s*$' "$work/$name.log" | tail -1)"
  fi
}
for role in $ROLES; do
  if [ "$role" = world ]; then
    build probelog-world deploy/docker/world.Dockerfile
    continue
  fi
  extras=$(awk -v role="$role" '!/^#/ && $1 == role {print $2}' deploy/docker/roles)
  if [ -z "$extras" ]; then fail "no role $role in deploy/docker/roles"; continue; fi
  build "probelog-$role" deploy/docker/Dockerfile --build-arg "ROLE=$role" --build-arg "EXTRAS=$extras"
done
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep ":$TAG " | sed 's/^/[image-check] size: /' >&2

# --- Try the embedded image: a missing file is one line, then serve and search a world.
if buildah inspect --type image "localhost/probelog-embedded:$TAG" >/dev/null 2>&1; then
  container=$(buildah from "localhost/probelog-embedded:$TAG")
  run=(buildah run --isolation chroot --user 10001:10001 "$container" --)
  # buildah run adds lines of its own about the exit status; the entrypoint's are the rest.
  if out=$("${run[@]}" probelog-entrypoint serve clip-encoder 2>&1 | grep -v -e '^subprocess exited with status' \
      -e '^Error: exit status'; exit "${PIPESTATUS[0]}"); then
    fail "the encoder served without a CLIP model or checkpoint"
  elif [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ]; then
    fail "a missing CLIP setting was not one line: $out"
  else
    log "no CLIP settings: $out"
  fi
  buildah copy --chown 10001:10001 "$container" "$(readlink -f "$WORLD")" /var/lib/probelog/world >/dev/null
  port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # --auto-index: the world's hub becomes searchable without an IndexModel call.
  "${run[@]}" probelog-entrypoint serve --embedded --world /var/lib/probelog/world --auto-index \
    --host 127.0.0.1 --port "$port" >"$work/serve.log" 2>&1 &
  server=$!
  t0=$(date +%s)
  until "$GRPCURL" -plaintext -max-time 5 "127.0.0.1:$port" list >/dev/null 2>&1; do
    if ! kill -0 "$server" 2>/dev/null; then fail "serve --embedded exited: $(tail -1 "$work/serve.log")"; break; fi
    if [ $(( $(date +%s) - t0 )) -gt 600 ]; then fail "serve --embedded did not answer in 600 s"; break; fi
    sleep 1
  done
  if kill -0 "$server" 2>/dev/null; then
    log "serve --embedded answered after $(( $(date +%s) - t0 )) s"
    # Hits once the first models are indexed.
    for _ in $(seq 120); do
      reply=$("$GRPCURL" -plaintext -max-time 120 -d '{"text": "red striped circle", "top_k": 3}' \
        "127.0.0.1:$port" probelog.v1.SearchService/Search 2>&1) || break
      grep -qE '"model_?[iI]d"' <<<"$reply" && break
      sleep 2
    done
    if grep -qE '"model_?[iI]d"' <<<"$reply"; then
      log "Search after $(( $(date +%s) - t0 )) s: $(tr -d ' \n' <<<"$reply" | cut -c1-240)"
    else
      fail "grpcurl Search: $(tr '\n' ' ' <<<"$reply" | cut -c1-300)"
    fi
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
else
  fail "no embedded image to run (ROLES=$ROLES)"
fi
log "total $(( $(date +%s) - started )) s"
finish

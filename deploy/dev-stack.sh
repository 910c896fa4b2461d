#!/usr/bin/env bash
# The dev stack: Redis, Triton and the five services as separate processes on loopback, then the
# same demo as the embedded mode (scripts/demo.sh): index the hub, list it, search it.
#
#   deploy/dev-stack.sh [WORLD_DIR] [--keep-running] [--auto-index] [--base-port N] [--query TEXT]...
#
# WORLD_DIR defaults to .data/world-tiny-seed0 (built here when missing). Redis and Triton bind
# 127.0.0.1 only; the orchestrator serves on --base-port (default 50051), so a plain
# `probelog search ...` reaches it. Everything stops on exit, Ctrl-C or SIGTERM; logs, the Redis
# files and the generated Triton repository (Python backend) are kept in .data/dev-stack/.
set -euo pipefail
cd "$(dirname "$0")/.."

WORLD=.data/world-tiny-seed0
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then WORLD=$1; shift; fi

./scripts/setup.sh
if [ ! -f "$WORLD/world.json" ]; then
  .venv/bin/probelog world build --scale tiny --seed 0 --out "$WORLD"
fi
exec .venv/bin/python -m probelog_devstack --world "$WORLD" --workdir .data/dev-stack "$@"

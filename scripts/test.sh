#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite (unit and integration:
# real gRPC servers, Redis, tritonserver, grpcurl, buf, helm). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"

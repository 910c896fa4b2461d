#!/usr/bin/env bash
# Regenerates services/probelog/v1 from protos/probelog/v1. The proto path equals the Python
# import path (probelog.v1), so generated imports resolve without rewriting.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
out=${1:-services}
rm -f "$out"/probelog/v1/*_pb2*.py "$out"/probelog/v1/*_pb2*.pyi
"$python" -m grpc_tools.protoc -I protos \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  protos/probelog/v1/*.proto
touch "$out/probelog/v1/__init__.py"

#!/bin/sh
# Regenerate the *_pb2.py modules from the .proto files in this folder (run from anywhere).
# The .proto files themselves are (re)written by extract.py from a kubectl v1.32 binary.
set -e
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PY" -m grpc_tools.protoc -I. --python_out=. shim/api/proto/*.proto

#!/bin/sh
# Regenerate the *_pb2.py / *_pb2_grpc.py modules from the .proto files in this folder.
# The .proto files themselves are (re)written by extract.py from Debian's containerd 1.6 binary.
set -e
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PY" -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. shim/node/containerd/*.proto
# Service-less files get an empty *_pb2_grpc.py; drop those.
for f in shim/node/containerd/*_pb2_grpc.py; do
  grep -q "class .*Stub" "$f" || rm -f "$f"
done

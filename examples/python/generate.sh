#!/bin/sh
# Compiles proto/corral/v1/inference.proto into Python modules (inference_pb2.py, inference_pb2_grpc.py) under
# OUT_DIR, importable as `corral.v1`. Usage: examples/python/generate.sh OUT_DIR
#
# Prefers Debian's python3-grpc-tools (`/usr/bin/python3 -m grpc_tools.protoc`). Its bundled protoc is too old
# on Debian 12 (libprotoc 3.5) for proto3 `optional` fields, which corral's SamplingParams uses; protoc learned
# them in 3.15. Then Debian's protoc (protobuf-compiler, 3.21 on Debian 12) with gRPC's Python plugin
# (protobuf-compiler-grpc) does the same job, matching the python3-protobuf 3.21 runtime python3-grpcio uses.
set -eu
out=${1:?usage: generate.sh OUT_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"

protoc_minor() { # "libprotoc 3.21.12" -> 21 (protobuf 3.x); 4.x and later count as new enough
  v=$("$@" --version 2>/dev/null | awk '{print $2}') || return 1
  case $v in 3.*) echo "$v" | cut -d. -f2 ;; "") return 1 ;; *) echo 99 ;; esac
}

if m=$(protoc_minor /usr/bin/python3 -m grpc_tools.protoc) && [ "$m" -ge 15 ]; then
  /usr/bin/python3 -m grpc_tools.protoc -I "$root/proto" --python_out="$out" --grpc_python_out="$out" \
    "$root/proto/corral/v1/inference.proto"
elif command -v protoc >/dev/null && [ -x /usr/bin/grpc_python_plugin ]; then
  protoc -I "$root/proto" --python_out="$out" --grpc_python_out="$out" \
    --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin "$root/proto/corral/v1/inference.proto"
else
  echo "generate.sh: need python3-grpc-tools with protoc >= 3.15, or protobuf-compiler and protobuf-compiler-grpc" >&2
  echo "  (apt-get install -y python3-grpcio python3-grpc-tools protobuf-compiler protobuf-compiler-grpc)" >&2
  exit 1
fi

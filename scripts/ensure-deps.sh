#!/usr/bin/env bash
# Installs what corral needs on a fresh machine: npm packages, and redis-server from Debian when missing.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "corral: installing npm packages..." >&2
  npm ci --no-fund --no-audit --loglevel=error >&2
fi

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The Python example client (examples/python) uses Debian's grpcio under Debian's own interpreter; its protos are
# compiled with Debian's protoc and grpc plugin, because grpc_tools' bundled protoc is too old for proto3 optional.
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need_apt+=(python3-grpcio)
/usr/bin/python3 -c 'import grpc_tools' >/dev/null 2>&1 || need_apt+=(python3-grpc-tools)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
command -v grpc_python_plugin >/dev/null 2>&1 || need_apt+=(protobuf-compiler-grpc)
if ((${#need_apt[@]})); then
  echo "corral: installing ${need_apt[*]} from Debian..." >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >&2
fi

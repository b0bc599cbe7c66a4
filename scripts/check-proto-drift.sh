#!/usr/bin/env bash
# Fails when proto/gen is not what scripts/gen-proto.sh makes from proto/ (someone edited one without the other).
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(mktemp -d)
cp -r proto/gen "$before/gen"
scripts/gen-proto.sh >/dev/null
if ! diff -r "$before/gen" proto/gen >/dev/null; then
  diff -r "$before/gen" proto/gen | head -20
  echo "proto/gen is stale: run 'npm run gen:proto' and commit the result" >&2
  rm -rf "$before"; exit 1
fi
rm -rf "$before"
echo "proto/gen is up to date"

#!/usr/bin/env bash
# Regenerates proto/gen from proto/corral/v1. The only way proto/gen changes; CI fails when its output differs.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf proto/gen
npx buf lint
npx buf generate

#!/usr/bin/env bash
# The whole test suite: static checks, then unit, integration and e2e tests. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh

step() { printf '\n== %s\n' "$*"; }
step "generated code matches proto/";  scripts/check-proto-drift.sh
step "typecheck";                      npx tsc -p .
step "lint and format";                npx biome check .
step "import rules";                   npx depcruise --config .dependency-cruiser.cjs cli client common controller worker sim bench
step "tests";                          npx vitest run "$@"

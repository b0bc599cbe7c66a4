#!/bin/sh
# Compiles the protos into a temporary directory and runs corral_client.py with Debian's python3 (the one that
# sees python3-grpcio). Arguments go to corral_client.py; see its --help.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
gen=$(mktemp -d "${TMPDIR:-/tmp}/corral-python-XXXXXX")
trap 'rm -rf "$gen"' EXIT INT TERM
"$here/generate.sh" "$gen"
PYTHONPATH="$gen${PYTHONPATH:+:$PYTHONPATH}" /usr/bin/python3 "$here/corral_client.py" "$@"

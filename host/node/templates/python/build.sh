#!/bin/sh
# Builds {{name}}.wasm from app.py with componentize-py, then has luciole check it and run it
# on its built-in inputs{{cases_note}}. `luciole` must be on PATH, or named by $LUCIOLE.
set -eu
cd "$(dirname "$0")"
LUCIOLE="${LUCIOLE:-luciole}"
[ -x .venv/bin/componentize-py ] || { python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt; }
echo "building {{name}}.wasm (componentize-py: about 20 s)"
.venv/bin/componentize-py -d wit -w {{world}} componentize --stub-wasi app -o {{name}}.wasm
"$LUCIOLE" policy check {{name}}.wasm
"$LUCIOLE" policy test {{name}}.wasm{{cases_flag}}

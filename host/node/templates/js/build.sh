#!/bin/sh
# Builds {{name}}.wasm from component.js and policy.js with componentize-js, then has luciole
# check it and run it on its built-in inputs{{cases_note}}. `luciole` must be on PATH, or named by $LUCIOLE.
set -eu
cd "$(dirname "$0")"
LUCIOLE="${LUCIOLE:-luciole}"
[ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund
echo "building {{name}}.wasm (componentize-js: about 30 s)"
node_modules/.bin/componentize-js component.js --wit wit --world-name {{world}} \
  -d stdio -d random -d clocks -d http -d fetch-event -o {{name}}.wasm
"$LUCIOLE" policy check {{name}}.wasm
"$LUCIOLE" policy test {{name}}.wasm{{cases_flag}}

#!/bin/sh
# Runs the policy's tests with Python (test_*.py), on the policy itself: no component needed.
set -eu
cd "$(dirname "$0")"
[ -x .venv/bin/componentize-py ] || { python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt; }
# The contract's types as Python modules (wit_world), generated from wit/.
[ -d .bindings/wit_world ] || .venv/bin/componentize-py -d wit -w {{world}} bindings .bindings >/dev/null
PYTHONPATH=.bindings .venv/bin/python -m unittest discover -p 'test_*.py' "$@"

#!/usr/bin/env bash
# Create the project virtualenv and install the package with its dev extras.
set -euo pipefail
venv=${1:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || {
        echo "python3 -m venv failed: install python3-venv (apt-get install -y python3-venv)" >&2
        exit 1
    }
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e '.[dev]'

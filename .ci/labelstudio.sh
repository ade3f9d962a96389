#!/usr/bin/env bash
# Make Label Studio's own virtual environment for tests/test_labelstudio_server.py (about a
# minute; skipped when it already holds the pinned release). The test finds it through the same
# variable: NERLOOP_LABEL_STUDIO_VENV (default ~/.cache/nerloop/labelstudio-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${NERLOOP_LABEL_STUDIO_VENV:-$HOME/.cache/nerloop/labelstudio-venv}"
wanted="$(grep '^label-studio==' requirements-labelstudio.txt | cut -d= -f3)"
if [ -x "$venv/bin/label-studio" ] \
    && [ "$("$venv/bin/python" -m pip show label-studio 2>/dev/null | sed -n 's/^Version: //p')" = "$wanted" ]; then
    echo "Label Studio $wanted is in $venv"
    exit 0
fi
python -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements-labelstudio.txt
echo "Label Studio $wanted installed in $venv"

#!/usr/bin/env bash
# Create (or reuse) the Python venv for the WinRM stand-in.
#   tests/winrm/venv.sh [VENV_DIR]     (default: target/py under the repo root)
# Idempotent: a stamp holding the sha256 of requirements.txt makes a second run a no-op.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/py}"
req="$here/requirements.txt"
stamp="$venv/.latch-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    exit 0
fi
py="${PYTHON:-python3}"
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
    ver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || echo 3)"
    echo "venv.sh: '$py -m venv' cannot work here: install the Debian package python${ver}-venv (apt-get install python3-venv)" >&2
    exit 1
fi
if [[ ! -x "$venv/bin/python" ]]; then
    "$py" -m venv "$venv"
fi
rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
echo "$want" > "$stamp"

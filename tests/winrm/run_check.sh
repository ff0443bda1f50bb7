#!/usr/bin/env bash
# Start the WinRM stand-in with a fresh users file in DIR, run clients_check.py against it, stop it.
#   tests/winrm/run_check.sh DIR        (the venv: $LATCH_PY_VENV, default target/py; made by venv.sh)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${1:?usage: run_check.sh DIR}"
venv="${LATCH_PY_VENV:-$root/target/py}"
"$here/venv.sh" "$venv"
py="$venv/bin/python"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
rm -f "$dir/state.json" "$dir/calls.jsonl" "$dir/wire.jsonl"
printf 'LAB:latch-svc:S3cret!#%%&(x)y$z`q"w\n' > "$dir/users"
out="$dir/standin.out"
"$py" "$here/standin.py" --dir "$dir" > "$out" 2> "$dir/standin.err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
    if grep -q '^READY ' "$out" 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "run_check: the stand-in died:" >&2; cat "$dir/standin.err" >&2; exit 1; fi
    sleep 0.05
done
line="$(grep '^READY ' "$out")" || { echo "run_check: no READY line" >&2; exit 1; }
http="$(sed -n 's/^READY http=\([0-9]*\) https=\([0-9]*\)$/\1/p' <<<"$line")"
https="$(sed -n 's/^READY http=\([0-9]*\) https=\([0-9]*\)$/\2/p' <<<"$line")"
status=0
"$py" "$here/clients_check.py" --dir "$dir" --http "$http" --https "$https" || status=$?
exit "$status"

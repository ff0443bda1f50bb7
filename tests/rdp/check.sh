#!/usr/bin/env bash
# End to end without Latch: the WinRM stand-in keeps a FreeRDP SAM file (--rdp-sam), a real RDP
# server with NLA checks logins against it (rdp.sh), and check.py drives the stand-in over WinRM
# (pywinrm) the way Latch's rdp-servers integration will, proving every step with a real login.
#
#   tests/rdp/check.sh DIR      (the venv: $LATCH_PY_VENV, default target/py; made by venv.sh)
#
# Everything on 127.0.0.1, everything under DIR; both servers are stopped on exit.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${1:?usage: check.sh DIR}"
venv="${LATCH_PY_VENV:-$root/target/py}"
"$root/tests/winrm/venv.sh" "$venv"
py="$venv/bin/python"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
"$here/rdp.sh" down "$dir/rdp"
rm -rf "$dir/standin"
mkdir -p "$dir/standin"
printf 'LAB:latch-svc:Svc-Pa55word!\n' > "$dir/standin/users"
sam="$dir/rdp.sam"
rm -f "$sam"

pid=""
cleanup() {
  "$here/rdp.sh" down "$dir/rdp" || true
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The groups named in another case than the stand-in's: Windows compares them ignoring case.
"$py" "$root/tests/winrm/standin.py" --dir "$dir/standin" --no-https \
  --rdp-sam "$sam" --rdp-groups "remote desktop users" \
  > "$dir/standin/out" 2> "$dir/standin/err" &
pid=$!
for _ in $(seq 1 200); do
  if grep -q '^READY ' "$dir/standin/out" 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "check: the stand-in died:" >&2; cat "$dir/standin/err" >&2; exit 1; fi
  sleep 0.05
done
http="$(sed -n 's/^READY http=\([0-9]*\) .*$/\1/p' "$dir/standin/out")"
[ -n "$http" ] || { echo "check: no READY line from the stand-in" >&2; exit 1; }
[ -f "$sam" ] || { echo "check: the stand-in wrote no SAM file" >&2; exit 1; }

t0=$(date +%s%N)
"$here/rdp.sh" up "$dir/rdp" "$sam"
up_ms=$(( ($(date +%s%N) - t0) / 1000000 ))

"$py" "$here/check.py" --http "$http" --users "$dir/standin/users" --rdp "$dir/rdp" --sam "$sam" --up-ms "$up_ms"

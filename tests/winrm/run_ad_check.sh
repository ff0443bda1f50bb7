#!/usr/bin/env bash
# The stand-in's Active Directory cmdlets end to end: a real Samba DC (tests/samba/dc.sh) in a
# temporary directory, the stand-in with --ad-url against it (users file: LATCH:svc_latch:<SVC_PW>),
# ad_check.py driving it with pywinrm; then both are taken down and the directory removed.
#   tests/winrm/run_ad_check.sh          (root; the venv: $LATCH_PY_VENV, default target/py;
#                                         the DC's address: $AD_CHECK_ADDR, default 127.0.0.29)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${LATCH_PY_VENV:-$root/target/py}"
addr="${AD_CHECK_ADDR:-127.0.0.29}"
"$here/venv.sh" "$venv"
py="$venv/bin/python"
work="$(mktemp -d /tmp/latch-ad-check.XXXXXX)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    bash "$root/tests/samba/dc.sh" down "$work/dc" || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

t0=$(date +%s%N)
bash "$root/tests/samba/dc.sh" up "$work/dc" "$addr" > /dev/null
echo "run_ad_check: DC up on $addr in $(( ($(date +%s%N) - t0) / 1000000 )) ms" >&2
# shellcheck source=/dev/null
. "$work/dc/env"
sdir="$work/standin"
mkdir -p "$sdir"
# svc_latch (the delegated service account), and a WinRM user the DC does not know.
( umask 077; printf 'LATCH:svc_latch:%s\nLATCH:ghost:Gh0st-%s!\n' "$SVC_PW" "$RANDOM$RANDOM" > "$sdir/users" )
"$py" "$here/standin.py" --dir "$sdir" --no-https --ad-url "$LDAP_URL" --ad-ca "$CA" --ad-base-dn "$BASE_DN" \
    > "$sdir/standin.out" 2> "$sdir/standin.err" &
pid=$!
for _ in $(seq 1 200); do
    if grep -q '^READY ' "$sdir/standin.out" 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "run_ad_check: the stand-in died:" >&2; cat "$sdir/standin.err" >&2; exit 1; fi
    sleep 0.05
done
http="$(sed -n 's/^READY http=\([0-9]*\) https=.*$/\1/p' "$sdir/standin.out")"
[ -n "$http" ] || { echo "run_ad_check: no READY line" >&2; exit 1; }
status=0
"$py" "$here/ad_check.py" --dir "$sdir" --http "$http" --dc-dir "$work/dc" || status=$?
if [ "$status" != 0 ] && [ -s "$sdir/standin.err" ]; then
    echo "run_ad_check: the stand-in's stderr:" >&2
    tail -40 "$sdir/standin.err" >&2
fi
exit "$status"

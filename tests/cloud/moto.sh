#!/usr/bin/env bash
# moto (PyPI, in the venv target/py) in server mode, standing in for AWS EC2 and Secrets
# Manager, with real SigV4 checking: the first 5 actions are let through (they create the
# IAM user, its policy, a role and its policy, the user's access key: see moto_peer.py), every later request must be
# signed with that key.
#   tests/cloud/moto.sh up DIR PORT    → DIR/moto.pid, DIR/credentials (profile "moto",
#                                         and profile "wrong": a key moto refuses)
#   tests/cloud/moto.sh down DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="$root/target/py/bin/python"
cmd=${1:?usage: moto.sh up DIR PORT | down DIR}
dir=${2:?usage: moto.sh up DIR PORT | down DIR}
case "$cmd" in
up)
    port=${3:?usage: moto.sh up DIR PORT}
    bash "$root/tests/winrm/venv.sh" "$root/target/py"
    "$0" down "$dir"
    mkdir -p "$dir"
    # Never the real AWS: no credentials or metadata service for boto3 to find by itself.
    env -i PATH="$PATH" HOME="$dir" INITIAL_NO_AUTH_ACTION_COUNT=5 \
        AWS_EC2_METADATA_DISABLED=true \
        "$py" -m moto.server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    for _ in $(seq 1 100); do
        if "$py" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    env -i PATH="$PATH" HOME="$dir" AWS_EC2_METADATA_DISABLED=true \
        "$py" "$here/moto_peer.py" bootstrap "http://127.0.0.1:$port" "$dir/credentials"
    ;;
down)
    if [[ -f "$dir/moto.pid" ]]; then
        pid="$(cat "$dir/moto.pid")"
        kill "$pid" 2>/dev/null || true
        # Gone before the port is asked for again (moto takes a second or two to exit).
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$dir/moto.pid"
    fi
    ;;
*) echo "usage: moto.sh up DIR PORT | down DIR" >&2; exit 2 ;;
esac

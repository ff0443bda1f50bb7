#!/usr/bin/env bash
# A test peer written here (tests/cloud/azure_peer.py: Entra ID, metadata identity, Resource
# Manager, Key Vault; tests/cloud/gcp_peer.py: Secret Manager, Google's token endpoint, the
# metadata server), run with the venv's Python (target/py).
#   tests/cloud/peer.sh up DIR PORT SCRIPT FIXTURE   → DIR/peer.pid, DIR/requests.log
#   tests/cloud/peer.sh down DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
usage="usage: peer.sh up DIR PORT SCRIPT FIXTURE | down DIR"
cmd=${1:?$usage}
dir=${2:?$usage}
case "$cmd" in
up)
    port=${3:?$usage}; script=${4:?$usage}; fixture=${5:?$usage}
    bash "$root/tests/winrm/venv.sh" "$root/target/py"
    "$0" down "$dir"
    mkdir -p "$dir"
    : > "$dir/requests.log"
    setsid "$root/target/py/bin/python" "$script" serve "$port" "$fixture" "$dir/requests.log" \
        >"$dir/peer.out" 2>&1 &
    echo $! > "$dir/peer.pid"
    for _ in $(seq 1 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            exit 0
        fi
        sleep 0.1
    done
    echo "the peer $script did not start; see $dir/peer.out" >&2
    exit 1
    ;;
down)
    if [[ -f "$dir/peer.pid" ]]; then
        pid="$(cat "$dir/peer.pid")"
        kill "$pid" 2>/dev/null || true
        # Gone before the port is asked for again (moto takes a second or two to exit).
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$dir/peer.pid"
    fi
    ;;
*) echo "$usage" >&2; exit 2 ;;
esac

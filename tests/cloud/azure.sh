#!/usr/bin/env bash
# The Azure stand-in (tests/cloud/azure_peer.py: Entra ID token endpoint, the metadata
# identity endpoint, Resource Manager reads, shaped by the published examples).
#   tests/cloud/azure.sh up DIR PORT FIXTURE   → DIR/peer.pid, DIR/requests.log
#   tests/cloud/azure.sh down DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmd=${1:?usage: azure.sh up DIR PORT FIXTURE | down DIR}
dir=${2:?usage: azure.sh up DIR PORT FIXTURE | down DIR}
case "$cmd" in
up)
    port=${3:?port}; fixture=${4:?fixture}
    "$0" down "$dir"
    mkdir -p "$dir"
    : > "$dir/requests.log"
    setsid python3 "$here/azure_peer.py" "$port" "$fixture" "$dir/requests.log" >"$dir/peer.out" 2>&1 &
    echo $! > "$dir/peer.pid"
    for _ in $(seq 1 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            exit 0
        fi
        sleep 0.1
    done
    echo "the Azure stand-in did not start; see $dir/peer.out" >&2
    exit 1
    ;;
down)
    if [[ -f "$dir/peer.pid" ]]; then
        kill "$(cat "$dir/peer.pid")" 2>/dev/null || true
        rm -f "$dir/peer.pid"
    fi
    ;;
*) echo "usage: azure.sh up DIR PORT FIXTURE | down DIR" >&2; exit 2 ;;
esac

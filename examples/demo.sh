#!/usr/bin/env bash
# The demo: real just-in-time access on a local fleet of real OpenSSH servers.
#
# Starts 3 sshd hosts (127.0.0.2-4, each in private namespaces, see tests/fleet/fleet.sh),
# sets up Latch, previews exactly what a grant will run, grants an engineer access, logs in
# with the real ssh client and the issued certificate, revokes, and shows the login refused;
# then starts the connector (`latch serve`), grants for 20 s through its API, and shows access
# ending at expiry with nobody touching it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
latch=$root/target/debug/latch
guest=$root/target/wasm32-wasip2/guest/ssh_servers.wasm
fleet=$root/target/fleet-demo
data=$root/target/demo
export LATCH_LOG=${LATCH_LOG:-error}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
trap 'bash tests/fleet/fleet.sh down "$fleet"' EXIT

say "Start 3 real OpenSSH servers (127.0.0.2-4), service user 'apono' with sudo"
bash tests/fleet/fleet.sh up "$fleet" 3
cat "$fleet/known_hosts"

say "Set up Latch: data dir and user CA"
rm -rf "$data"
show "$latch" init --dir "$data"
# The service user's key, stored base64-encoded as the product we mirror stores it.
base64 -w0 "$fleet/service_key" > "$data/secrets/fleet-key"
sha=$(sha256sum "$guest" | cut -d' ' -f1)
cat > "$data/latch.toml" <<TOML
[[integration]]
name = "linux"
guest = "$guest"
sha256 = "$sha"
allow = ["127.0.0.0/24:22"]
max_duration = "8h"
[integration.ssh]
key_secret = "fleet-key"
known_hosts = "$fleet/known_hosts"
[integration.config]
servers = [
  { name = "web-1", host = "127.0.0.2", tags = { env = "demo" } },
  { name = "web-2", host = "127.0.0.3" },
  { name = "web-3", host = "127.0.0.4" },
]
user_groups = ["Default", "adm"]
custom_access_details = "Demo fleet: access ends by itself at expiry."
TOML
show "$latch" check --config "$data/latch.toml"

say "Read the guest before trusting it: what would discovery run? (dry run: nothing is sent)"
ssh-keygen -q -t ed25519 -N '' -C alice -f "$data/alice"
show "$latch" guest call "$guest" discover --config "$(sed -n '/^\[integration.config\]/,$p' "$data/latch.toml" | tail -n +2 | python3 -c 'import sys,tomllib,json;print(json.dumps(tomllib.loads(sys.stdin.read())))')" \
  --allow 127.0.0.0/24:22 --dry-run | sed -e 's/^/    /' || true
echo "    (every command a grant or revoke runs, for every situation, is pinned in the"
echo "     test-kit scripts: guests/ssh-servers/tests/guest.rs)"

say "What can be granted?"
show "$latch" resources --config "$data/latch.toml" --integration linux

say "Grant alice access to web-1, in group adm, for 10 minutes"
show "$latch" grant --config "$data/latch.toml" --integration linux --resource web-1 \
  --user alice@corp.example --permission adm --for 10m --public-key "$data/alice.pub" --out "$data/out" | tee "$data/grant.txt"
grant_id=$(sed -n "s/^granted \(g-[0-9a-f]*\):.*/\1/p" "$data/grant.txt")
cert="$data/out/$grant_id-cert.pub"
show ssh-keygen -L -f "$cert"

host=127.0.0.2
ssh_alice() {
  ssh -i "$data/alice" -o CertificateFile="$cert" -o UserKnownHostsFile="$fleet/known_hosts" \
    -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none "alice@$host" "$@"
}
say "alice logs in with the ordinary ssh client and her certificate"
show ssh_alice 'id; hostname'

say "Revoke"
show "$latch" revoke --config "$data/latch.toml" "$grant_id"

say "alice's login is now refused"
if ssh_alice id; then
  echo "UNEXPECTED: login still works" >&2
  exit 1
fi
echo "(refused, as it must be)"
say "Start the connector (latch serve): HTTP API, and revokes at expiry with nobody touching it"
sed -i '1i listen = "127.0.0.1:8711"' "$data/latch.toml"
# A token scoped to this one integration (it may revoke only its own grants, reads no audit).
LATCH_TOKEN=$("$latch" token create --config "$data/latch.toml" demo --integration linux --for 1h)
export LATCH_TOKEN
"$latch" serve --config "$data/latch.toml" 2>"$data/serve.log" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true; bash tests/fleet/fleet.sh down "$fleet"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/8711) 2>/dev/null && break; sleep 0.2; done

say "Grant alice web-2 for 20 seconds through the running connector (--url, token in LATCH_TOKEN)"
show "$latch" grant --url http://127.0.0.1:8711 --integration linux --resource web-2 \
  --user alice@corp.example --for 20s --public-key "$data/alice.pub" --out "$data/out" | tee "$data/grant2.txt"
grant_id=$(sed -n "s/^granted \(g-[0-9a-f]*\):.*/\1/p" "$data/grant2.txt")
cert="$data/out/$grant_id-cert.pub"
host=127.0.0.3
show ssh_alice 'echo logged in as $(id -un) on $(hostname)'
show "$latch" grants --url http://127.0.0.1:8711 --state active

say "Nobody revokes: wait 25 s for the expiry"
sleep 25
if ssh_alice id; then
  echo "UNEXPECTED: login still works after expiry" >&2
  exit 1
fi
echo "(refused: the connector revoked it at expiry)"
show "$latch" grants --url http://127.0.0.1:8711

say "Everything is in the audit log, hash-chained"
show "$latch" audit tail --config "$data/latch.toml" -n 8
show "$latch" audit verify --config "$data/latch.toml"
show "$latch" grants --config "$data/latch.toml"

say "Done: access granted, used, and taken away on real servers — by hand and at expiry."

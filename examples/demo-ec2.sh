#!/usr/bin/env bash
# The EC2 demo: Latch finds instances in "AWS" and grants SSH access to one.
#
# **moto stands in for AWS** (PyPI moto in server mode, with real SigV4 signature checking:
# every request Latch makes is signed with an IAM key moto created, and checked). The
# instances' private IPs are real OpenSSH servers on 127.0.15.2-3 (tests/fleet/fleet.sh).
# Latch discovers the running instances tagged env=demo, grants alice access to one, logs in
# with the real ssh client and the issued certificate, revokes, and shows the login refused.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
latch=$root/target/debug/latch
guest=$root/target/wasm32-wasip2/guest/ec2_ssh.wasm
fleet=$root/target/fleet-demo-ec2
data=$root/target/demo-ec2
moto=$root/target/moto-demo
port=25170
export LATCH_LOG=${LATCH_LOG:-error}
export AWS_EC2_METADATA_DISABLED=true

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
trap 'bash tests/fleet/fleet.sh down "$fleet"; bash tests/cloud/moto.sh down "$moto"' EXIT

say "Start 2 real OpenSSH servers (127.0.15.2-3), service user 'apono' with sudo"
bash tests/fleet/fleet.sh up "$fleet" 2 127.0.15

say "Start moto (the AWS stand-in, signatures checked) and make 3 instances"
bash tests/cloud/moto.sh up "$moto" $port
ids=$(target/py/bin/python tests/cloud/moto_peer.py instances "http://127.0.0.1:$port" \
  "$moto/credentials" us-east-1 127.0.15.0/24 \
  '127.0.15.2|running|Name=web-1,env=demo' '127.0.15.3|running|Name=build-1,env=ci' \
  '127.0.15.9|stopped|Name=old-1,env=demo')
echo "$ids"
web1=$(echo "$ids" | head -1)

say "Set up Latch: data dir, user CA, the ec2-ssh integration"
rm -rf "$data"
show "$latch" init --dir "$data"
base64 -w0 "$fleet/service_key" > "$data/secrets/fleet-key"
sha=$(sha256sum "$guest" | cut -d' ' -f1)
cat > "$data/latch.toml" <<TOML
[[integration]]
name = "ec2"
guest = "$guest"
sha256 = "$sha"
allow = ["127.0.15.0/24:22"]
[integration.ssh]
key_secret = "fleet-key"
known_hosts = "$fleet/known_hosts"
[integration.aws]
endpoint = "http://127.0.0.1:$port"   # moto; omit for AWS itself
profile = "moto"
read = ["ec2:DescribeInstances"]
regions = ["us-east-1"]
[integration.config]
regions = ["us-east-1"]
tags = { env = "demo" }
user_groups = ["Default", "adm"]
TOML
cat "$data/latch.toml"
export AWS_SHARED_CREDENTIALS_FILE=$moto/credentials

say "Discover: running instances tagged env=demo (build-1 has another tag, old-1 is stopped)"
show "$latch" resources --config "$data/latch.toml" --integration ec2

say "Grant alice access to web-1 ($web1) for 10 minutes (alice brings her own key)"
rm -f "$data/alice" "$data/alice.pub"
ssh-keygen -q -t ed25519 -N '' -C alice -f "$data/alice"
show "$latch" grant --config "$data/latch.toml" --integration ec2 --resource "$web1" \
  --user alice@example.com --for 10m --public-key "$data/alice.pub" --out "$data/out" | tee "$data/grant.txt"
grant_id=$(sed -n "s/^granted \(g-[0-9a-f]*\):.*/\1/p" "$data/grant.txt")
cert="$data/out/$grant_id-cert.pub"
ssh_alice() {
  ssh -i "$data/alice" -o CertificateFile="$cert" -o UserKnownHostsFile="$fleet/known_hosts" \
    -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none alice@127.0.15.2 "$@"
}

say "alice logs in with the ordinary ssh client and her certificate"
show ssh_alice 'id; hostname'

say "Revoke, and the same login is refused"
show "$latch" revoke --config "$data/latch.toml" "$grant_id"
if ssh_alice true 2>/dev/null; then
  echo "UNEXPECTED: the login still works" >&2; exit 1
fi
echo "login refused, as it should be"

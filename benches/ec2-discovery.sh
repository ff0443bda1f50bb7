#!/usr/bin/env bash
# Discovery of 5,000 EC2 instances across 3 regions, from moto (PyPI, the AWS stand-in, with
# SigV4 checking on): Latch's `latch resources` (one cold process: the ec2-ssh guest asks
# the 3 regions in one `cloud.aws` call, the host carries them out concurrently, every page
# parsed in the guest) vs the AWS CLI (`aws ec2 describe-instances`, awscli from PyPI, the
# same filters, all pages) — the 3 regions one after the other, as a script would, and all 3
# at once (3 processes).
#
# The instances: us-east-1 2,000, eu-west-1 2,000, ap-southeast-2 1,000, tag env=bench,
# made 50 per RunInstances (moto pages by reservation; AWS pages by instance).
# Each way is run RUNS times, interleaved (a b c, b c a, …); wall seconds and peak RSS
# (GNU time's %e and %M; for (c) the sum of the 3 processes' peaks is not taken: the
# largest single one is shown) go to target/ec2-discovery/times.tsv; medians are printed.
# Every run's output is checked: 5,000 instance ids, the same set each way.
#
#   bash benches/ec2-discovery.sh          (RUNS=5 default; ~70 s to make the instances)
#
# Needs: target/release/latch, target/wasm32-wasip2/guest/ec2_ssh.wasm (cargo build
# --release -p latch; make guests); moto in target/py (make setup); awscli is installed into
# target/py here from tests/bench-requirements.txt if missing. moto listens on 127.0.0.1:25150.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
RUNS=${RUNS:-5}
PORT=25150
latch=$root/target/release/latch
guest=$root/target/wasm32-wasip2/guest/ec2_ssh.wasm
work=$root/target/ec2-discovery
py=$root/target/py
ep=http://127.0.0.1:$PORT
REGIONS="us-east-1 eu-west-1 ap-southeast-2"
die() { echo "ec2-discovery: FAILED: $*" >&2; exit 1; }
note() { printf '%s\n' "$*" >&2; }
[ -x "$latch" ] || die "$latch is missing: cargo build --release -p latch"
[ -f "$guest" ] || die "$guest is missing: make guests"
bash tests/winrm/venv.sh "$py"
if [ ! -x "$py/bin/aws" ]; then
  note "installing the bench's Python tools into $py (tests/bench-requirements.txt)"
  "$py/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r tests/bench-requirements.txt
fi
rm -rf "$work" && mkdir -p "$work"
trap 'bash tests/cloud/moto.sh down "$work/moto"' EXIT
bash tests/cloud/moto.sh up "$work/moto" $PORT
creds=$work/moto/credentials
t0=$(date +%s)
"$py/bin/python" tests/cloud/moto_peer.py fleet $ep "$creds" us-east-1 2000 50 &
"$py/bin/python" tests/cloud/moto_peer.py fleet $ep "$creds" eu-west-1 2000 50 &
"$py/bin/python" tests/cloud/moto_peer.py fleet $ep "$creds" ap-southeast-2 1000 50 &
wait
note "5,000 instances made in $(( $(date +%s) - t0 )) s"

# Latch: a data dir with the ec2-ssh integration over the 3 regions.
"$latch" init --dir "$work/latch" >/dev/null
# A service key of its own (discovery logs in nowhere; the key is never used).
ssh-keygen -q -t ed25519 -N '' -f "$work/latch/secrets/bench-key" && rm "$work/latch/secrets/bench-key.pub"
sha=$(sha256sum "$guest" | cut -d' ' -f1)
cat > "$work/latch/latch.toml" <<TOML
listen = "127.0.0.1:0"
[[integration]]
name = "ec2"
guest = "$guest"
sha256 = "$sha"
allow = ["127.0.0.0/8:22"]
deadline = "600s"
[integration.ssh]
key_secret = "bench-key"
[integration.aws]
endpoint = "$ep"
profile = "moto"
read = ["ec2:DescribeInstances"]
regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
[integration.config]
regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
tags = { env = "bench" }
TOML
export AWS_SHARED_CREDENTIALS_FILE=$creds AWS_PROFILE=moto AWS_EC2_METADATA_DISABLED=true
export LATCH_LOG=warn
a() { "$latch" resources --config "$work/latch/latch.toml" --integration ec2 --json; }
aws_region() {
  "$py/bin/aws" --endpoint-url $ep --region "$1" ec2 describe-instances \
    --filters Name=instance-state-name,Values=running Name=tag:env,Values=bench \
    --query 'Reservations[].Instances[].InstanceId' --output text
}
b() { for r in $REGIONS; do aws_region "$r"; done; }
c() { for r in $REGIONS; do aws_region "$r" > "$work/c.$r" & done; wait; cat "$work"/c.*; }
ids_of() { # instance ids, one per line, sorted
  grep -o 'i-[0-9a-f]\{8,17\}' "$1" | sort -u
}
"$latch" resources --config "$work/latch/latch.toml" --integration ec2 --json >/dev/null \
  || die "a first latch resources failed"   # compiles and caches the guest
printf 'way\trun\twall_s\tpeak_kb\n' > "$work/times.tsv"
order=abc
for run in $(seq 1 "$RUNS"); do
  for way in $(echo "$order" | grep -o .); do
    /usr/bin/time -f '%e %M' -o "$work/time" bash -c "$(declare -f a b c aws_region); \
      latch=$latch py=$py ep=$ep REGIONS='$REGIONS' work=$work; $way" > "$work/out.$way" 2>"$work/err.$way" \
      || die "way $way run $run: $(tail -3 "$work/err.$way")"
    n=$(ids_of "$work/out.$way" | wc -l)
    [ "$n" = 5000 ] || die "way $way run $run listed $n instances, not 5000"
    read -r wall peak < "$work/time"
    printf '%s\t%s\t%s\t%s\n' "$way" "$run" "$wall" "$peak" >> "$work/times.tsv"
    note "run $run way $way: ${wall} s, peak ${peak} KB"
  done
  order="${order:1}${order:0:1}"
done
cmp <(ids_of "$work/out.a") <(ids_of "$work/out.b") || die "Latch and the CLI listed different instances"
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2)? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
for way in a b c; do
  w=$(awk -v w=$way '$1==w {print $3}' "$work/times.tsv" | median)
  p=$(awk -v w=$way '$1==w {print $4}' "$work/times.tsv" | median)
  printf '%s: median %s s, peak %s KB\n' "$way" "$w" "$p"
done

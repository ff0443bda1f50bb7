#!/usr/bin/env bash
# The FIRST grant on 20 fresh sshd hosts, three ways, each on freshly started hosts every run:
#
#   (a) Latch: one cold `latch grant` process granting all 20 (--resource host1 … host20):
#       trusts the user CA on each host (CA key, KRL, sshd drop-in, reload), creates alice in
#       latch-managed, signs a certificate per host; ledger and audit log included; the
#       first (a) run compiles the guest and keeps it (data_dir/cache), later runs start with
#       that cache, as a connector's CLI does after its first use;
#   (b) plain OpenSSH fan-out: per host, concurrently, one cold `ssh` as the service user
#       running one command line (groupadd, useradd, ~alice/.ssh, authorized_keys via sudo);
#   (c) ansible-playbook -f 20, pipelining, no fact gathering, become: the same as (b) with
#       ansible.builtin.group / user / file / copy.
#
# Only the grant command itself is timed (wall clock, `date +%s%N` around it); starting and
# stopping the fleet, `latch init`, writing configs and the checks afterwards are not. The
# ways are interleaved per round (the order rotates: abc, bca, cab, …) so drift of the
# machine hits all three alike. After every run the result is checked on the first and last
# host (alice exists, is in latch-managed, has /bin/bash, and logs in: with her key for (b)
# and (c), with the issued certificate for (a)); any failure stops the script loudly.
#
#   bash benches/first-grant.sh            (as root: the fleet uses namespaces; see tests/fleet)
#   RUNS=5 HOSTS=20 WAYS=abc bash benches/first-grant.sh
#
# Needs: target/release/latch and target/wasm32-wasip2/guest/ssh_servers.wasm (cargo build
# --release -p latch; make guests), sshd/sudo/unshare (make setup), GNU time (installed here
# if missing), ansible-core in target/py (installed here from tests/bench-requirements.txt if
# missing). Hosts: 127.0.40.2 … 127.0.40.(HOSTS+1). Work files stay in target/first-grant
# (per-run logs, times.tsv); the fleet lives in target/fleet-first-grant while a run lasts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

RUNS=${RUNS:-5}
HOSTS=${HOSTS:-20}
WAYS=${WAYS:-abc}
BASE=127.0.40
latch=$root/target/release/latch
guest=$root/target/wasm32-wasip2/guest/ssh_servers.wasm
fleet=$root/target/fleet-first-grant
work=$root/target/first-grant
py=$root/target/py
export LC_ALL=C.UTF-8 LANG=C.UTF-8 # ansible-core refuses a non-UTF-8 locale
export LATCH_LOG=warn
unset FLEET_VARIANTS # tests/fleet/fleet.sh: every host a plain Debian one

die() { echo "first-grant: FAILED: $*" >&2; exit 1; }
note() { printf '%s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (the fleet: namespaces, bind mounts)"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ "$HOSTS" =~ ^[1-9][0-9]*$ ]] && [ "$HOSTS" -le 200 ] || die "HOSTS must be 1…200"
[[ "$WAYS" =~ ^[abc]+$ ]] || die "WAYS is a subset of abc, e.g. WAYS=bc"
has() { [[ "$WAYS" == *"$1"* ]]; }
if has a; then
  [ -x "$latch" ] || die "$latch is missing: cargo build --release -p latch"
  [ -f "$guest" ] || die "$guest is missing: make guests"
fi

# --- tools --------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
  note "installing GNU time (/usr/bin/time) for the peak RSS"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
for tool in ssh ssh-keygen /usr/sbin/sshd sudo unshare python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (make setup)"
done
if has c && [ ! -x "$py/bin/ansible-playbook" ]; then
  if [ ! -x "$py/bin/python" ]; then
    bash tests/winrm/venv.sh "$py" # the project's one venv (target/py)
  fi
  note "installing ansible-core into $py (tests/bench-requirements.txt)"
  "$py/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r tests/bench-requirements.txt
  [ -x "$py/bin/ansible-playbook" ] || die "ansible-playbook did not install into $py"
fi

# --- fixed inputs ---------------------------------------------------------------------------
trap 'bash tests/fleet/fleet.sh down "$fleet" >/dev/null 2>&1 || true' EXIT
rm -rf "$work"
mkdir -p "$work"
ssh-keygen -q -t ed25519 -N '' -C alice-bench -f "$work/alice"
pubkey=$(cat "$work/alice.pub")
addr() { echo "$BASE.$(($1 + 1))"; } # host i (1-based) -> its address
last=$(addr "$HOSTS")
ssh_opts=(-F /dev/null -o UserKnownHostsFile="$fleet/known_hosts" -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o ControlMaster=no
  -o ControlPath=none -o ConnectTimeout=10)
svc_ssh() { local host=$1; shift; ssh "${ssh_opts[@]}" -i "$fleet/service_key" "apono@$host" "$@" </dev/null; }

# (a) sha256 pin of the guest, and the server list
if has a; then
  sha=$(sha256sum "$guest" | cut -d' ' -f1)
  servers=""
  resources=()
  for i in $(seq 1 "$HOSTS"); do
    servers+="  { name = \"host$i\", host = \"$(addr "$i")\" },"$'\n'
    resources+=(--resource "host$i")
  done
fi

# (b) the one command line each host runs; ~alice expands on the host once alice exists
grant_line="sudo -n groupadd -f latch-managed \
&& sudo -n useradd -m -s /bin/bash -G latch-managed alice \
&& sudo -n install -d -m 700 -o alice -g alice ~alice/.ssh \
&& echo '$pubkey' | sudo -n install -m 600 -o alice -g alice /dev/stdin ~alice/.ssh/authorized_keys"

# (c) ansible.cfg, inventory, playbook (paths are the same every run; the fleet dir is reused)
if has c; then
  mkdir -p "$work/ansible/cp" "$work/ansible/tmp"
  {
    echo "[fleet]"
    for i in $(seq 1 "$HOSTS"); do echo "host$i ansible_host=$(addr "$i")"; done
  } > "$work/ansible/inventory.ini"
  cat > "$work/ansible/ansible.cfg" <<CFG
[defaults]
inventory = $work/ansible/inventory.ini
forks = $HOSTS
remote_user = apono
private_key_file = $fleet/service_key
host_key_checking = True
interpreter_python = /usr/bin/python3
local_tmp = $work/ansible/tmp
retry_files_enabled = False
timeout = 10
[ssh_connection]
pipelining = True
# Ansible's default ssh_args (-C, ControlMaster/ControlPersist) plus the fleet's pinned keys.
ssh_args = -F /dev/null -C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$fleet/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o IdentityAgent=none
control_path_dir = $work/ansible/cp
CFG
  cat > "$work/ansible/grant.yml" <<YML
- hosts: fleet
  gather_facts: false
  become: true
  tasks:
    - ansible.builtin.group:
        name: latch-managed
    - ansible.builtin.user:
        name: alice
        groups: latch-managed
        append: true
        shell: /bin/bash
        create_home: true
    - ansible.builtin.file:
        path: /home/alice/.ssh
        state: directory
        owner: alice
        group: alice
        mode: "0700"
    - ansible.builtin.copy:
        dest: /home/alice/.ssh/authorized_keys
        content: "$pubkey\n"
        owner: alice
        group: alice
        mode: "0600"
YML
  export ANSIBLE_CONFIG=$work/ansible/ansible.cfg
fi

# Prime the page cache for every tool (a cold *process* is measured, not a cold disk).
if has a; then cat "$latch" "$guest" >/dev/null; fi
ssh -V 2>/dev/null
if has c; then "$py/bin/ansible-playbook" --version >/dev/null; fi

# --- one run --------------------------------------------------------------------------------
now() { date +%s%N; }
fleet_up() {
  bash tests/fleet/fleet.sh up "$fleet" "$HOSTS" "$BASE" >"$run_dir/fleet.log" 2>&1 ||
    { cat "$run_dir/fleet.log" >&2; die "fleet.sh up (see above)"; }
  # The fleet's own writes (20 copies of /etc) are flushed before the clock starts.
  sync
}
fleet_down() { bash tests/fleet/fleet.sh down "$fleet" >/dev/null 2>&1 || true; }

# check_host ADDR CERT|"": alice is real on ADDR (account, group, shell, login)
check_host() {
  local host=$1 cert=$2 groups shell login_opts=()
  groups=$(svc_ssh "$host" id -nG alice) || die "$way run $run: no alice on $host"
  [[ " $groups " == *" latch-managed "* ]] || die "$way run $run: alice on $host is in '$groups', not latch-managed"
  shell=$(svc_ssh "$host" getent passwd alice | cut -d: -f7)
  [ "$shell" = /bin/bash ] || die "$way run $run: alice's shell on $host is '$shell'"
  [ -z "$cert" ] || login_opts=(-o CertificateFile="$cert")
  # A grant (a) reloads sshd; give a just-reloaded sshd a moment before calling it a failure.
  local who=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    who=$(ssh "${ssh_opts[@]}" -i "$work/alice" "${login_opts[@]}" "alice@$host" id -un </dev/null 2>"$run_dir/login.err") && break
    sleep 0.3
  done
  [ "$who" = alice ] || { cat "$run_dir/login.err" >&2; die "$way run $run: alice cannot log in to $host${cert:+ with $cert}"; }
}

run_a() {
  local data=$run_dir/latch out=$run_dir/out t0 t1 rc=0
  "$latch" init --dir "$data" >"$run_dir/init.log" 2>&1 || { cat "$run_dir/init.log" >&2; die "latch init"; }
  base64 -w0 "$fleet/service_key" > "$data/secrets/fleet-key"
  cat > "$data/latch.toml" <<TOML
[runtime]
max_concurrent_calls = 64
[[integration]]
name = "linux"
guest = "$guest"
sha256 = "$sha"
allow = ["$BASE.0/24:22"]
max_duration = "8h"
[integration.ssh]
key_secret = "fleet-key"
known_hosts = "$fleet/known_hosts"
[integration.config]
servers = [
$servers]
TOML
  # The compiled guest from earlier CLI runs (data_dir/cache): a connector's CLI has been
  # used before; a first ever start compiles the guest once and keeps it.
  if [ -d "$work/guest-cache" ]; then cp -a "$work/guest-cache" "$data/cache"; fi
  t0=$(now)
  /usr/bin/time -f %M -o "$run_dir/rss" "$latch" grant --config "$data/latch.toml" --integration linux \
    "${resources[@]}" --user alice@example.com --for 1h --public-key "$work/alice.pub" --out "$out" \
    >"$run_dir/grant.out" 2>"$run_dir/grant.err" || rc=$?
  t1=$(now)
  [ "$rc" = 0 ] || { cat "$run_dir/grant.out" "$run_dir/grant.err" >&2; die "latch grant exited $rc"; }
  local n
  n=$(grep -c '^granted g-' "$run_dir/grant.out" || true)
  [ "$n" = "$HOSTS" ] || { cat "$run_dir/grant.out" "$run_dir/grant.err" >&2; die "latch granted $n of $HOSTS"; }
  local i id
  for i in 1 "$HOSTS"; do
    id=$(sed -n "s/^granted \(g-[0-9a-f]*\): alice on host$i (.*/\1/p" "$run_dir/grant.out")
    [ -n "$id" ] && [ -f "$out/$id-cert.pub" ] || die "a run $run: no certificate for host$i in $out"
    check_host "$(addr "$i")" "$out/$id-cert.pub"
  done
  elapsed=$(( (t1 - t0) / 1000 ))
  rss_kib=$(tail -n 1 "$run_dir/rss")
  if [ ! -d "$work/guest-cache" ] && [ -d "$data/cache" ]; then cp -a "$data/cache" "$work/guest-cache"; fi
}

run_b() {
  local t0 t1 i pids=() failed=0
  t0=$(now)
  for i in $(seq 1 "$HOSTS"); do
    ssh "${ssh_opts[@]}" -i "$fleet/service_key" "apono@$(addr "$i")" "$grant_line" \
      </dev/null >"$run_dir/ssh$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed=$((failed + 1)); done
  t1=$(now)
  if [ "$failed" != 0 ]; then
    for i in $(seq 1 "$HOSTS"); do [ -s "$run_dir/ssh$i.log" ] && sed "s/^/host$i: /" "$run_dir/ssh$i.log" >&2; done
    die "openssh: $failed of $HOSTS hosts failed"
  fi
  check_host "$(addr 1)" ""
  check_host "$last" ""
  elapsed=$(( (t1 - t0) / 1000 ))
  rss_kib=""
}

run_c() {
  local t0 t1 rc=0
  t0=$(now)
  /usr/bin/time -f %M -o "$run_dir/rss" "$py/bin/ansible-playbook" -f "$HOSTS" "$work/ansible/grant.yml" \
    >"$run_dir/ansible.out" 2>&1 || rc=$?
  t1=$(now)
  [ "$rc" = 0 ] || { cat "$run_dir/ansible.out" >&2; die "ansible-playbook exited $rc"; }
  grep -Eq '(unreachable|failed)=[1-9]' "$run_dir/ansible.out" && { cat "$run_dir/ansible.out" >&2; die "ansible: a host failed"; }
  [ "$(grep -c 'ok=4 ' "$run_dir/ansible.out" || true)" = "$HOSTS" ] || { cat "$run_dir/ansible.out" >&2; die "ansible: not every host ran the 4 tasks"; }
  check_host "$(addr 1)" ""
  check_host "$last" ""
  elapsed=$(( (t1 - t0) / 1000 ))
  rss_kib=$(tail -n 1 "$run_dir/rss")
  if [ ! -d "$work/guest-cache" ] && [ -d "$data/cache" ]; then cp -a "$data/cache" "$work/guest-cache"; fi
}

# --- rounds ---------------------------------------------------------------------------------
printf 'way\trun\tms\tpeak_rss_kib\n' > "$work/times.tsv"
name() { case $1 in a) echo latch ;; b) echo openssh ;; c) echo ansible ;; esac; }
note "first grant on $HOSTS fresh hosts ($BASE.2-$last), $RUNS run(s) of: $WAYS"
for run in $(seq 1 "$RUNS"); do
  order=$WAYS
  for _ in $(seq 2 "$run"); do order=${order:1}${order:0:1}; done # rotate each round
  for way in $(echo "$order" | fold -w1); do
    run_dir=$work/run$run-$way
    mkdir -p "$run_dir"
    fleet_up
    "run_$way"
    fleet_down
    ms=$(awk -v us="$elapsed" 'BEGIN { printf "%.1f", us / 1000 }')
    printf '%s\t%s\t%s\t%s\n' "$(name "$way")" "$run" "$ms" "$rss_kib" >> "$work/times.tsv"
    note "  run $run $(printf '%-8s' "$(name "$way")") ${ms} ms${rss_kib:+  (peak RSS ${rss_kib} KiB)}"
  done
done

# --- summary --------------------------------------------------------------------------------
python3 - "$work/times.tsv" "$HOSTS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
hosts = sys.argv[2]
ways = [w for w in ("latch", "openssh", "ansible") if any(r["way"] == w for r in rows)]
ms = {w: sorted(float(r["ms"]) for r in rows if r["way"] == w) for w in ways}
med = {w: statistics.median(v) for w, v in ms.items()}
print(f"\nfirst grant on {hosts} fresh hosts, wall clock of the grant command (ms), "
      f"{len(next(iter(ms.values())))} run(s) each")
print(f"{'way':<10}{'min':>10}{'median':>10}{'max':>10}")
for w in ways:
    v = ms[w]
    print(f"{w:<10}{v[0]:>10.1f}{med[w]:>10.1f}{v[-1]:>10.1f}")
if "latch" in med and "openssh" in med:
    print(f"median latch / openssh : {med['latch'] / med['openssh']:.2f}x")
if "latch" in med and "ansible" in med:
    print(f"median ansible / latch : {med['ansible'] / med['latch']:.2f}x")
for w, what in (("latch", "latch process"), ("ansible", "largest ansible-playbook process (GNU time: max of the process and its waited-for children)")):
    rss = sorted(int(r["peak_rss_kib"]) for r in rows if r["way"] == w and r["peak_rss_kib"])
    if rss:
        print(f"peak RSS, {what}: min {rss[0] / 1024:.1f} MiB, median "
              f"{statistics.median(rss) / 1024:.1f} MiB, max {rss[-1] / 1024:.1f} MiB")
PY
note "per-run figures: $work/times.tsv; logs: $work/run*/"

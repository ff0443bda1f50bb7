#!/usr/bin/env bash
# The second demo: just-in-time domain accounts on a real Active Directory.
#
# Starts a real Samba 4.17 AD domain controller on 127.0.0.20 (tests/samba/dc.sh: private
# namespaces, its own test CA, a delegated service account svc_latch that is not an admin),
# sets up Latch with the windows-dc guest twice — over LDAPS, and over WinRM through the
# Windows stand-in, which carries the AD cmdlets out on the same DC — previews a grant, grants
# alice a domain account, proves the password with the DC itself (an LDAPS bind and a Kerberos
# kinit), revokes, and shows both refused. Then the same over WinRM for bob.
# Everything it starts is stopped on exit (error, Ctrl-C, TERM); what a run killed outright
# (SIGKILL) leaves, the next run stops first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
latch=$root/target/debug/latch
guest=$root/target/wasm32-wasip2/guest/windows_dc.wasm
py=$root/target/py/bin/python
dc=$root/target/dc-demo
data=$root/target/demo-windows
standin=$data/standin
addr=127.0.0.20 # not the tests' 127.0.0.10: a demo and `make test` can run side by side
export LATCH_LOG=${LATCH_LOG:-error}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
for f in "$latch" "$guest"; do
  [ -e "$f" ] || { echo "$f is missing: run \`make build\` (or \`make demo-windows\`)" >&2; exit 1; }
done

standin_pid=
cleanup() {
  if [ -n "$standin_pid" ]; then
    kill "$standin_pid" 2>/dev/null || true
    wait "$standin_pid" 2>/dev/null || true
    rm -f "$standin/pid"
  fi
  bash tests/samba/dc.sh down "$dc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A field of the JSON object on stdin. The issued password is kept in shell variables only; the
# one program that gets it in argv is tests/samba/dc.sh bind/kinit (short-lived), which hands it
# on to ldapsearch in a file and to kinit on stdin.
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }

# The DC's own verdict on USER / PW: an LDAPS simple bind (OpenLDAP's ldapsearch) and a Kerberos
# ticket from its KDC (MIT kinit). dc.sh hands the password to them in a file and on stdin.
dc_check() { # bind|kinit user pw
  printf '$ tests/samba/dc.sh %s %s %s <password>\n' "$1" "$dc" "$2"
  bash tests/samba/dc.sh "$1" "$dc" "$2" "$3"
}
accepted() { dc_check bind "$@" && dc_check kinit "$@"; }
refused() {
  if dc_check bind "$@"; then echo "UNEXPECTED: the bind still works" >&2; exit 1; fi
  if dc_check kinit "$@"; then echo "UNEXPECTED: kinit still works" >&2; exit 1; fi
  echo "(refused, as it must be)"
}
# The PowerShell calls the stand-in received after line $1 of its record, one a line.
calls_since() {
  tail -n +"$(($1 + 1))" "$standin/calls.jsonl" | python3 -c 'import json,sys
def val(v):
    t, x = v["type"], v.get("value")
    if t == "secure-string": return "<secure string>"
    if t == "switch": return None
    if t == "boolean": return "$true" if x else "$false"
    if t == "text-list": return ",".join(repr(i) for i in x)
    return repr(x)
for l in sys.stdin:
    c = json.loads(l)
    words = ["   ", c["cmdlet"]]
    for n, v in c["parameters"]:
        words += ["-" + n] + ([] if val(v) is None else [val(v)])
    if c.get("refused"): words += ["   REFUSED:", str(c["refused"])]
    print(" ".join(words))'
}

say "Start a real Samba AD domain controller for LATCH.TEST on $addr (LDAPS 636, Kerberos 88)"
bash tests/samba/dc.sh up "$dc" "$addr"
# LDAP_URL, CA, BASE_DN, SVC_USER, SVC_PW, USERS_OU, GROUPS_OU, GROUP_ADMINS_DN, ... (not exported)
# shellcheck source=/dev/null
. "$dc/env"
echo "Latch's service account: $SVC_USER, not an admin: it may create and manage users in"
echo "$USERS_OU and write group members under $GROUPS_OU, nothing else."

say "Set up Latch: data dir, the service password as a secret, the DC's CA"
# A stand-in left by a run that was killed outright (no trap ran): stop it, if it is that one.
if [ -f "$standin/pid" ]; then
  old=$(cat "$standin/pid")
  cmd=$({ tr '\0' ' ' < "/proc/$old/cmdline"; } 2>/dev/null || true)
  if [[ $old =~ ^[0-9]+$ && $cmd == *"standin.py --dir $standin "* ]]; then
    kill "$old" 2>/dev/null || true
  fi
fi
rm -rf "$data"
show "$latch" init --dir "$data"
(umask 077 && printf '%s' "$SVC_PW" > "$data/secrets/dc-password")
cp "$CA" "$data/dc-ca.pem"

say "Start the Windows stand-in (WinRM on HTTPS; runs the AD cmdlets on the same DC over LDAPS)"
bash tests/winrm/venv.sh target/py
mkdir -p "$standin"
(umask 077 && printf 'LATCH:svc_latch:%s\n' "$SVC_PW" > "$standin/users")
# umask 077: the stand-in is a test server and keeps the service password in its own files.
(umask 077 && exec "$py" tests/winrm/standin.py --dir "$standin" --ad-url "$LDAP_URL" \
  --ad-ca "$CA" --ad-base-dn "$BASE_DN") > "$standin/ready" 2> "$standin/standin.err" &
standin_pid=$!
echo "$standin_pid" > "$standin/pid"
for _ in $(seq 150); do
  grep -q '^READY' "$standin/ready" 2>/dev/null && break
  kill -0 "$standin_pid" 2>/dev/null || break
  sleep 0.1
done
https=$(sed -n 's/^READY .*https=\([0-9]*\).*/\1/p' "$standin/ready")
if [ -z "$https" ]; then
  echo "the stand-in did not start:" >&2
  cat "$standin/standin.err" >&2
  exit 1
fi
cat "$standin/ready"
cp "$standin/ca.pem" "$data/standin-ca.pem"

sha=$(sha256sum "$guest" | cut -d' ' -f1)
cat > "$data/latch.toml" <<TOML
# windows-dc over LDAPS: the host's ldap capability, bounded to these subtrees.
[[integration]]
name = "windows-dc"
guest = "$guest"
sha256 = "$sha"
allow = ["$addr:636"]
[integration.ldap]
ca_file = "dc-ca.pem"
user = "$SVC_USER"
password_secret = "dc-password"
[integration.directory]
read = ["$BASE_DN"]
change = ["$USERS_OU"]
groups = ["$GROUPS_OU"]
[integration.config]
host = "$addr"
domain = "latch.test"
netbios = "LATCH"
base_dn = "$BASE_DN"
users_ou = "$USERS_OU"
connect_group = "$GROUP_ADMINS_DN"
groups_ou = "$GROUPS_OU"
transport = "ldap"
ldap_port = 636
username_prefix = "jit_"
user = "$SVC_USER"
password_secret = "dc-password"

# The same guest over WinRM (NTLM inside HTTPS): the AD cmdlets, only these.
[[integration]]
name = "windows-dc-winrm"
guest = "$guest"
sha256 = "$sha"
allow = ["localhost:$https"]
[integration.winrm]
ca_file = "standin-ca.pem"
https_ports = [$https]
user = 'LATCH\svc_latch'
password_secret = "dc-password"
read = ["Get-ADUser", "Get-ADGroup"]
change = ["New-ADUser", "Set-ADAccountPassword", "Set-ADAccountExpiration", "Enable-ADAccount", "Disable-ADAccount", "Add-ADGroupMember", "Remove-ADGroupMember", "Remove-ADUser"]
# The same directory bounds hold over WinRM: every AD cmdlet's identity is checked against them.
[integration.directory]
read = ["$BASE_DN"]
change = ["$USERS_OU"]
groups = ["$GROUPS_OU"]
[integration.config]
host = "localhost"
domain = "latch.test"
netbios = "LATCH"
base_dn = "$BASE_DN"
users_ou = "$USERS_OU"
connect_group = "$GROUP_ADMINS_DN"
groups_ou = "$GROUPS_OU"
transport = "winrm"
winrm_port = $https
username_prefix = "jit_"
user = 'LATCH\svc_latch'
password_secret = "dc-password"
TOML
cfg=$data/latch.toml
sed -e 's/^/    /' "$cfg"
show "$latch" check --config "$cfg"
show "$latch" check --config "$cfg" --connect
echo "(--connect logs in to each server a grant would touch: the DC over LDAPS, the stand-in over WinRM)"

say "What can be granted? (discovery: Connect = $GROUP_ADMINS_DN, plus the groups found)"
show "$latch" resources --config "$cfg" --integration windows-dc

say "Plan: what would granting alice do? (its LDAP reads run for real; changes only listed)"
show "$latch" grant --plan --config "$cfg" --integration windows-dc --resource=latch.test \
  --user=alice@corp.example --username=alice --for 10m

say "Grant alice a domain account, Connect (JIT-Admins), for 10 minutes"
printf '$ %s\n' "$latch grant --config $cfg --integration windows-dc --resource=latch.test --user=alice@corp.example --username=alice --for 10m --json"
granted=$("$latch" grant --config "$cfg" --integration windows-dc --resource=latch.test \
  --user=alice@corp.example --username=alice --for 10m --json)
python3 -m json.tool <<<"$granted"
grant_id=$(field grant_id <<<"$granted")
pw=$(field password <<<"$granted")
upn=jit_alice@latch.test

say "The DC itself accepts the password: an LDAPS simple bind, and a Kerberos ticket from its KDC"
accepted "$upn" "$pw"
echo "What AD holds (read as Administrator):"
bash tests/samba/dc.sh ldap "$dc" ldapsearch -LLL -o ldif-wrap=no -b "$BASE_DN" \
  "(sAMAccountName=jit_alice)" dn description memberOf userAccountControl accountExpires |
  sed -e '/^$/d' -e '/^#/d' -e 's/^/    /'

say "The password was shown once and is recorded nowhere: not in the audit log, ledger or WAL"
show "$latch" audit tail --config "$cfg" -n 6
printf '$ %s\n' "latch audit tail --config $cfg -n 1000 --json | grep -cF <password>"
"$latch" audit tail --config "$cfg" -n 1000 --json | grep -cF -f <(printf '%s\n' "$pw") || true
printf '$ %s\n' "grep -rlF <password> $data --exclude-dir=standin   # files holding it"
grep -rlF -f <(printf '%s\n' "$pw") "$data" --exclude-dir=standin || echo "(none)"

say "Revoke"
show "$latch" revoke --config "$cfg" "$grant_id"

say "The DC now refuses alice: disabled (LDAP: data 533), new random password (Kerberos)"
refused "$upn" "$pw"

say "The same over WinRM: grant bob JIT-Ops through the stand-in, bind, revoke"
show "$latch" resources --config "$cfg" --integration windows-dc-winrm
mark=$(wc -l < "$standin/calls.jsonl")
printf '$ %s\n' "$latch grant --config $cfg --integration windows-dc-winrm --resource=latch.test --user=bob@corp.example --username=bob --permission JIT-Ops --for 10m --json"
granted=$("$latch" grant --config "$cfg" --integration windows-dc-winrm --resource=latch.test \
  --user=bob@corp.example --username=bob --permission JIT-Ops --for 10m --json)
python3 -m json.tool <<<"$granted"
grant_id=$(field grant_id <<<"$granted")
pw=$(field password <<<"$granted")
upn=jit_bob@latch.test
echo "The AD cmdlets the grant ran, as the stand-in parsed them (a secure string's value not shown):"
calls_since "$mark"
accepted "$upn" "$pw"
mark=$(wc -l < "$standin/calls.jsonl")
show "$latch" revoke --config "$cfg" "$grant_id"
echo "The AD cmdlets the revoke ran:"
calls_since "$mark"
refused "$upn" "$pw"
show "$latch" audit verify --config "$cfg"
show "$latch" grants --config "$cfg"

say "What was real, and what was a stand-in"
cat <<'EOF'
Real: the Active Directory (Samba 4.17 AD DC, realm LATCH.TEST), its LDAPS server and
certificate check, its Kerberos KDC, its password rules (complexity, length), the delegation
(svc_latch is no admin: its rights are ACEs on OU=Latch and on group members under
OU=JIT Groups), and the clients that proved the accounts: OpenLDAP's ldapsearch and MIT kinit.
A stand-in: the WinRM server. It is Latch's test server (tests/winrm/standin.py): pyspnego as
the NTLM acceptor, tree-sitter-powershell parsing the script, the AD cmdlets translated to
LDAPS on the real DC, bound as the WinRM user; pywinrm and pypsrp are checked against it.
Not in this demo: RDP logins (the rdp-servers guest) are proven with FreeRDP's NLA login in
tests/all/rdp.rs.
EOF

say "Done: domain accounts granted, used and taken away on a real Active Directory."

#!/usr/bin/env bash
# A real Samba Active Directory domain controller for tests and the demo, isolated from this
# machine's own Samba/Kerberos state.
#
#   dc.sh up DIR [ADDR]          start a DC for LATCH.TEST on ADDR (default 127.0.0.10);
#                                prints READY and writes DIR/env (KEY=VALUE, shell-sourceable)
#   dc.sh down DIR               stop it and remove DIR (idempotent)
#   dc.sh bind DIR USER PW       LDAPS simple bind: prints OK, or e.g.
#                                `49 Invalid credentials: 80090308: ... data 533, v1db1`; exit 0/1
#   dc.sh kinit DIR USER PW      MIT kinit, private ccache: prints OK or kinit's message; exit 0/1
#   dc.sh ldap DIR TOOL ARGS...  run TOOL (ldapsearch|ldapmodify|ldapadd|ldapdelete) over LDAPS
#                                bound as Administrator; stdin, output and exit code are TOOL's
#
# The DC runs in its own mount, PID and UTS namespace with private copies of /etc/samba,
# /var/lib/samba, /var/cache/samba, /run/samba, /var/log/samba, /etc/hosts, /etc/krb5.conf and
# /etc/resolv.conf (all under DIR), but in this machine's network namespace: it listens on ADDR
# only (`interfaces = ADDR/8`, `bind interfaces only`; Linux's lo answers all of 127/8), so a
# test process reaches ldaps://ADDR:636 and the KDC at ADDR:88 directly. Clients use
# KRB5_CONFIG=DIR/krb5.conf and LDAPTLS_CACERT=DIR/ca.pem (DIR/env has both). Off: NetBIOS
# (it would also bind 127.255.255.255:137/138), the file server smbd (445 would clash with a
# machine's own smbd on 0.0.0.0:445; Latch needs LDAP and Kerberos only) and dnsupdate; the
# DC's resolv.conf points at ADDR:53 where nothing listens: no DNS query leaves the machine.
#
# Provisioning (≈ 20 s) happens once: the provisioned domain (OUs, groups, users, and the
# delegation to svc_latch: see tests/samba/README.md) is kept in $SAMBA_TEMPLATE (default
# target/samba-template), keyed by the Samba version and a hash of this script. Each `up`
# (≈ 3 s) copies it and rewrites only what depends on ADDR: smb.conf's interfaces, /etc/hosts,
# krb5.conf, and a fresh test CA + LDAPS certificate (P-256, SAN DNS:dc1.latch.test,IP:ADDR).
# Needs root, samba, samba-ad-dc, winbind, krb5-user, ldap-utils, openssl, unshare, flock
# (see `make setup`).
# shellcheck disable=SC2154 # CA, LDAP_URL, REALM, ADMIN_PW, ...: from DIR/env or secrets.env
set -euo pipefail

self=$(readlink -f "$0")
here=$(dirname "$self")

usage() {
  sed -n '5,12s/^# \{0,1\}//p' "$self" >&2
  exit 2
}

realm=LATCH.TEST
domain=LATCH
base_dn=DC=latch,DC=test
host=dc1
fqdn=dc1.latch.test
users_ou="OU=Latch,$base_dn"
groups_ou="OU=JIT Groups,$base_dn"
# A legal but hostile group name (escaping tests). Samba keeps the cn as given and returns the
# DN as written here (`\,` `\+` `\"` `\3B` `\3D`); a sAMAccountName cannot hold , " ; = +
# (samldb: 19, "0000202F: samldb: sAMAccountName contains invalid ',' character").
hostile_cn='JIT (ops), R&D + "east"; x=y'
hostile_rdn='CN=JIT (ops)\, R&D \+ \"east\"\3B x\3Dy'
hostile_sam='JIT (ops) R&D east'
marker=.latch-samba-dc

die() { echo "dc.sh: $*" >&2; exit 1; }

# --- helpers --------------------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# A password AD's complexity rules accept (upper, lower, digit, symbol), no shell specials.
gen_pw() { printf 'Lt9-%s' "$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c 24)"; }

# KEY=VALUE; values with anything but [A-Za-z0-9_./:@=,+-] are quoted ("…", or '…' when the
# value holds " $ ` or \).
kv() {
  local k=$1 v=$2
  if [[ $v =~ ^[A-Za-z0-9_./:@=,+-]*$ ]]; then
    printf '%s=%s\n' "$k" "$v"
  elif [[ $v != *[\"\$\`\\]* ]]; then
    printf '%s="%s"\n' "$k" "$v"
  elif [[ $v != *"'"* ]]; then
    printf "%s='%s'\n" "$k" "$v"
  else
    die "cannot quote $k"
  fi
}

load_env() {
  [ -f "$dir/env" ] || die "$dir/env not found (is a DC up in $dir?)"
  # shellcheck source=/dev/null
  . "$dir/env"
}

# Temporary files (password files, ccaches) live in DIR and go on exit, whatever happens.
tmpfiles=()
cleanup() { [ ${#tmpfiles[@]} -eq 0 ] || rm -rf "${tmpfiles[@]}"; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# pwf := a new password file (mode 600) holding $1, for ldap* -y: no password in argv.
pw_file() {
  pwf=$(mktemp "$dir/.pw.XXXXXX")
  tmpfiles+=("$pwf")
  printf '%s' "$1" > "$pwf"
}

# LDAPS simple bind as $1 with password $2 (ldapwhoami is no check: Samba lacks WhoAmI).
# Prints OK, or "CODE TEXT: additional info"; returns 0 / 1.
do_bind() {
  local pwf out rc code info
  pw_file "$2"
  out=$({ LDAPTLS_CACERT=$CA LDAPTLS_REQCERT=demand timeout 30 ldapsearch -LLL -o nettimeout=10 \
    -H "$LDAP_URL" -x -D "$1" -y "$pwf" -b '' -s base dn > /dev/null; } 2>&1) && rc=0 || rc=$?
  rm -f "$pwf"
  if [ "$rc" = 0 ]; then echo OK; return 0; fi
  # ldap_bind: Invalid credentials (49)
  #         additional info: 80090308: LdapErr: DSID-0C0903A9, comment: ..., data 533, v1db1
  code=$(sed -nE 's/^ldap_[a-z_]*(\([A-Z]*\))?: (.*) \((-?[0-9]+)\)$/\3 \2/p' <<< "$out" | head -1)
  info=$(sed -n 's/^[[:space:]]*additional info: //p' <<< "$out" | head -1)
  if [ -n "$code" ]; then
    echo "$code${info:+: $info}"
  else
    echo "${out//$'\n'/ } (exit $rc)"
  fi
  return 1
}

# MIT kinit as $1 with password $2 on stdin, private ccache. Prints OK or kinit's message.
do_kinit() {
  local user=$1 pw=$2 cc out rc
  # The realm is case-sensitive for MIT kinit; accept user@latch.test like the UPN.
  if [[ $user == *@* ]]; then
    local r=${user##*@}
    [ "${r^^}" != "$REALM" ] || user="${user%@*}@$REALM"
  fi
  cc=$(mktemp -d "$dir/.kinit.XXXXXX")
  tmpfiles+=("$cc")
  out=$(printf '%s\n' "$pw" | KRB5_CONFIG=$KRB5_CONFIG KRB5CCNAME="FILE:$cc/cc" timeout 30 \
    kinit "$user" 2>&1) && rc=0 || rc=$?
  rm -rf "$cc"
  if [ "$rc" = 0 ]; then echo OK; return 0; fi
  # Drop the prompts (no newline after them when stdin is not a terminal) and the expiry note.
  out=$(sed -e 's/Password for [^ ]*: *//g' -e 's/Enter new password: *//g' \
    -e '/^Warning: Your password will expire/d' -e '/^[[:space:]]*$/d' <<< "$out")
  echo "${out//$'\n'/ }"
  return 1
}

# --- inside the namespaces ------------------------------------------------------------------

# dc.sh _ns ROOT CMD...: private binds from ROOT, hostname dc1, then CMD.
inside_ns() {
  local root=$1
  shift
  [ -d /run/samba ] || mkdir -p /run/samba
  mount --bind "$root/etc" /etc/samba
  mount --bind "$root/lib" /var/lib/samba
  mount --bind "$root/cache" /var/cache/samba
  mount --bind "$root/run" /run/samba
  mount --bind "$root/log" /var/log/samba
  mount --bind "$root/hosts" /etc/hosts
  mount --bind "$root/krb5.conf" /etc/krb5.conf
  mount --bind "$root/resolv.conf" /etc/resolv.conf
  hostname "$host"
  exec "$@"
}

# dc.sh _provision: inside the namespaces, on an empty tree; secrets come in the environment.
provision() {
  local sid
  samba-tool domain provision --realm="$realm" --domain="$domain" --server-role=dc \
    --dns-backend=NONE --adminpass="$ADMIN_PW" --host-name="$host" --host-ip=127.0.0.10 \
    --option='interfaces = 127.0.0.10/8' --option='bind interfaces only = yes' \
    --option='disable netbios = yes' \
    --option='server services = rpc, ldap, cldap, kdc, drepl, winbindd, ntp_signd, kcc' \
    --option='tls enabled = yes' \
    --option='tls keyfile = /var/lib/samba/private/tls/key.pem' \
    --option='tls certfile = /var/lib/samba/private/tls/cert.pem' \
    --option='tls cafile = /var/lib/samba/private/tls/ca.pem'
  samba-tool ou add "OU=Latch" --description='Latch JIT accounts'
  samba-tool ou add "OU=JIT Groups" --description='Groups Latch grants'
  local grp=(--groupou="OU=JIT Groups" --group-scope=Global --group-type=Security)
  samba-tool group add JIT-Admins "${grp[@]}"
  samba-tool group add JIT-Ops "${grp[@]}"
  samba-tool group add "$hostile_sam" "${grp[@]}" \
    --description='hostile but legal name, for escaping tests'
  # `group rename` does not escape --force-new-cn ("CN=%s" % new_cn): give it escaped.
  samba-tool group rename "$hostile_sam" --force-new-cn="${hostile_rdn#CN=}"
  samba-tool user create svc_latch "$SVC_PW" \
    --description='Latch service account (delegated rights, not an admin)'
  samba-tool user create alice_existing "$ALICE_PW" --userou="OU=Latch" \
    --description='created by hand'
  sid=$(samba-tool user show svc_latch --attributes=objectSid | sed -n 's/^objectSid: //p')
  [ -n "$sid" ] || { echo "no objectSid for svc_latch" >&2; exit 1; }
  # schemaIDGUIDs (user, group classes; member attribute) and rightsGUIDs (extended rights).
  local user=bf967aba-0de6-11d0-a285-00aa003049e2 group=bf967a9c-0de6-11d0-a285-00aa003049e2
  local member=bf9679c0-0de6-11d0-a285-00aa003049e2
  local reset_pw=00299570-246d-11d0-a768-00aa006e0529 change_pw=ab721a53-1e2f-11d0-9819-00aa0040529b
  # OU=Latch: create/delete user objects; full control over user objects; read everything.
  samba-tool dsacl set --objectdn="$users_ou" \
    --sddl="(OA;CI;CCDC;$user;;$sid)(OA;CIIO;GA;;$user;$sid)(A;CI;RPLCLORC;;;$sid)"
  # OU=JIT Groups: write `member` of group objects; read everything.
  samba-tool dsacl set --objectdn="$groups_ou" \
    --sddl="(OA;CIIO;WP;$member;$group;$sid)(A;CI;RPLCLORC;;;$sid)"
  # Its own object: Reset Password and Change Password (rotation).
  samba-tool dsacl set --objectdn="CN=svc_latch,CN=Users,$base_dn" \
    --sddl="(OA;;CR;$reset_pw;;$sid)(OA;;CR;$change_pw;;$sid)"
}

# --- template -------------------------------------------------------------------------------

# Tree layout shared by template and DIR: etc lib cache run log hosts krb5.conf resolv.conf.
write_addr_files() { # root addr
  local root=$1 addr=$2
  printf '127.0.0.1 localhost\n%s %s %s\n' "$addr" "$fqdn" "$host" > "$root/hosts"
  # Nothing listens on ADDR:53: a stray DNS query fails at once and never leaves the machine.
  printf 'nameserver %s\n' "$addr" > "$root/resolv.conf"
  cat > "$root/krb5.conf" << EOF
[libdefaults]
    default_realm = $realm
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
[realms]
    $realm = {
        kdc = $addr
    }
EOF
}

template_dir() {
  local root version hash
  root=${SAMBA_TEMPLATE:-$here/../../target/samba-template}
  version=$(samba -V | sed -n 's/^Version //p')
  [ -n "$version" ] || die "cannot read the Samba version (is samba installed?)"
  hash=$(sha256sum "$self" | cut -c1-12)
  mkdir -p "$root"
  echo "$(cd "$root" && pwd)/samba-$version-$hash"
}

build_template() { # target
  local target=$1 root tmp t0
  root=$(dirname "$target")
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  t0=$(now_ms)
  echo "dc.sh: provisioning the template $target (once)..." >&2
  mkdir -p "$tmp"/{etc,lib,cache,run,log}
  write_addr_files "$tmp" 127.0.0.10
  {
    kv ADMIN_PW "$(gen_pw)"
    kv SVC_PW "$(gen_pw)"
    kv ALICE_PW "$(gen_pw)"
  } > "$tmp/secrets.env"
  chmod 600 "$tmp/secrets.env"
  if ! (
    # shellcheck source=/dev/null
    . "$tmp/secrets.env"
    export ADMIN_PW SVC_PW ALICE_PW
    unshare --mount --pid --uts --fork --kill-child --mount-proc --propagation private \
      "$self" _ns "$tmp" "$self" _provision
  ) > "$tmp/provision.log" 2>&1 < /dev/null; then
    tail -25 "$tmp/provision.log" >&2
    rm -rf "$tmp"
    die "provisioning failed"
  fi
  # What a DC writes at run time does not belong in the template.
  rm -rf "${tmp:?}"/{cache,run,log}/* "${tmp:?}"/lib/private/tls/*
  # Older templates (another Samba version or dc.sh) are of no further use.
  find "$root" -mindepth 1 -maxdepth 1 -name 'samba-*' ! -name "$(basename "$target")" \
    -exec rm -rf {} +
  mv -T "$tmp" "$target"
  echo "dc.sh: template built in $(($(now_ms) - t0)) ms" >&2
}

ensure_template() { # target
  local target=$1
  [ -f "$target/secrets.env" ] && return 0
  (
    flock 9
    [ -f "$target/secrets.env" ] || build_template "$target"
  ) 9> "$(dirname "$target")/.lock"
}

# --- certificates ---------------------------------------------------------------------------

make_certs() { # root addr: own test CA (P-256) and an LDAPS certificate for dc1 / ADDR
  local root=$1 addr=$2 t=$1/lib/private/tls w
  w=$(mktemp -d "$root/.certs.XXXXXX")
  mkdir -p "$t"
  (
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -keyout "$w/ca.key" -out "$w/ca.pem" -subj "/CN=Latch test CA $addr" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$t/key.pem" -out "$w/req.csr" -subj "/CN=$fqdn"
    printf '%s\n' "subjectAltName=DNS:$fqdn,IP:$addr" basicConstraints=critical,CA:FALSE \
      keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth > "$w/ext"
    openssl x509 -req -in "$w/req.csr" -CA "$w/ca.pem" -CAkey "$w/ca.key" \
      -set_serial "0x$(openssl rand -hex 8)" -days 3650 -extfile "$w/ext" -out "$t/cert.pem"
  ) > /dev/null 2>&1 || { rm -rf "$w"; die "openssl failed"; }
  chmod 600 "$t/key.pem"
  chmod 644 "$t/cert.pem" "$w/ca.pem"
  cp "$w/ca.pem" "$t/ca.pem"
  cp "$w/ca.pem" "$root/ca.pem"
  rm -rf "$w" # the CA key is not kept: nothing else is ever signed with it
}

# --- commands -------------------------------------------------------------------------------

# Is process $1 alive (and not a zombie waiting for this machine's init to reap it)?
alive() {
  local s
  { read -r s < "/proc/$1/stat"; } 2> /dev/null || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}

any_alive() {
  local p
  for p in "$@"; do alive "$p" && return 0; done
  return 1
}

# Kill the DC of DIR (only if ns.pid is still our unshare: a recycled PID is left alone).
stop() {
  [ -f "$dir/ns.pid" ] || return 0
  local pid child="" addr="" pids p
  pid=$(cat "$dir/ns.pid")
  if [[ $pid =~ ^[0-9]+$ ]] && { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2> /dev/null |
    grep -qF -- "_ns $dir samba"; then
    [ -f "$dir/env" ] && addr=$(sed -n 's/^ADDR=//p' "$dir/env")
    # Every process of the DC's PID namespace (smbd and winbindd make their own sessions).
    read -r child _ < "/proc/$pid/task/$pid/children" || true
    pids=("$pid")
    if [ -n "$child" ]; then
      for p in /proc/[0-9]*; do
        if [ "$p/ns/pid" -ef "/proc/$child/ns/pid" ]; then pids+=("${p#/proc/}"); fi
      done 2> /dev/null
    fi
    # The DC runs in its own process group (setsid), and unshare --kill-child takes the
    # namespace's PID 1, and with it every process of the DC, down with it.
    kill -KILL -- "-$pid" 2> /dev/null || kill -KILL "$pid" 2> /dev/null || true
    # Wait (≤ 5 s) until none of them lives and ADDR:636 is free again.
    for _ in $(seq 1 100); do
      if ! any_alive "${pids[@]}" && { [ -z "$addr" ] || ! port_open "$addr" 636; }; then
        break
      fi
      sleep 0.05
    done
  fi
  rm -f "$dir/ns.pid"
}

down() {
  [ -e "$dir" ] || return 0
  [ -d "$dir" ] || die "$dir is not a directory"
  dir=$(cd "$dir" && pwd -P)
  if [ -n "$(ls -A "$dir")" ] && [ ! -e "$dir/$marker" ]; then
    die "$dir is not a dc.sh directory; not removing it"
  fi
  stop
  rm -rf "$dir"
}

up() {
  local addr=$1 tpl t0 pid msg=""
  t0=$(now_ms)
  [ "$(id -u)" = 0 ] || die "needs root (namespaces, bind mounts)"
  [[ $addr =~ ^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] ||
    die "ADDR must be an address in 127.0.0.0/8"
  for o in "${BASH_REMATCH[@]:1}"; do [ "$o" -le 255 ] || die "bad ADDR $addr"; done
  case $addr in 127.0.0.0 | 127.255.255.255) die "bad ADDR $addr" ;; esac
  for c in samba samba-tool ldapsearch kinit openssl unshare flock; do
    command -v "$c" > /dev/null || die "$c not found (see make setup)"
  done
  down
  for port in 636 389 88; do
    if port_open "$addr" "$port"; then
      die "$addr:$port is already taken (a DC left running?); refusing"
    fi
  done
  tpl=$(template_dir)
  ensure_template "$tpl"

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  touch "$dir/$marker"
  cp -a "$tpl"/{etc,lib,cache,run,log} "$dir"/
  write_addr_files "$dir" "$addr"
  sed -i "s|^\([[:space:]]*interfaces = \).*|\1$addr/8|" "$dir/etc/smb.conf"
  make_certs "$dir" "$addr"

  setsid unshare --mount --pid --uts --fork --kill-child --mount-proc --propagation private \
    "$self" _ns "$dir" samba -F --debug-stdout -d 1 > "$dir/samba.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$dir/ns.pid"

  # shellcheck source=/dev/null
  . "$tpl/secrets.env"
  {
    kv LDAP_URL "ldaps://$addr:636"
    kv ADDR "$addr"
    kv REALM "$realm"
    kv DOMAIN "$domain"
    kv BASE_DN "$base_dn"
    kv CA "$dir/ca.pem"
    kv KRB5_CONFIG "$dir/krb5.conf"
    kv ADMIN_DN "CN=Administrator,CN=Users,$base_dn"
    kv ADMIN_USER "Administrator@latch.test"
    kv ADMIN_PW "$ADMIN_PW"
    kv SVC_USER "svc_latch@latch.test"
    kv SVC_DN "CN=svc_latch,CN=Users,$base_dn"
    kv SVC_PW "$SVC_PW"
    kv USERS_OU "$users_ou"
    kv GROUPS_OU "$groups_ou"
    kv GROUP_ADMINS_DN "CN=JIT-Admins,$groups_ou"
    kv GROUP_OPS_DN "CN=JIT-Ops,$groups_ou"
    kv GROUP_HOSTILE_DN "$hostile_rdn,$groups_ou"
    kv GROUP_HOSTILE_CN "$hostile_cn"
    kv ALICE_DN "CN=alice_existing,$users_ou"
    kv ALICE_PW "$ALICE_PW"
    kv PID "$pid"
  } > "$dir/env.tmp"
  chmod 600 "$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  load_env

  # Ready = an LDAPS simple bind succeeds, and so does a kinit (the KDC), bounded: 60 s.
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2> /dev/null; then
      tail -25 "$dir/samba.log" >&2
      stop
      die "samba exited during start-up; log: $dir/samba.log"
    fi
    if msg=$(do_bind "$ADMIN_DN" "$ADMIN_PW") && msg=$(do_kinit "$ADMIN_USER" "$ADMIN_PW"); then
      echo "dc.sh: DC up on $addr in $(($(now_ms) - t0)) ms" >&2
      echo READY
      return 0
    fi
    sleep 0.1
  done
  tail -25 "$dir/samba.log" >&2
  stop
  die "DC not ready after 60 s (last: $msg); log: $dir/samba.log"
}

cmd=${1:-}
case "$cmd" in
  _ns)
    shift
    inside_ns "$@"
    ;;
  _provision) provision ;;
  up)
    [ $# -ge 2 ] && [ $# -le 3 ] || usage
    dir=$2
    up "${3:-127.0.0.10}"
    ;;
  down)
    [ $# -eq 2 ] || usage
    dir=$2
    down
    ;;
  bind | kinit)
    [ $# -eq 4 ] || usage
    dir=$2
    load_env
    if [ "$cmd" = bind ]; then do_bind "$3" "$4"; else do_kinit "$3" "$4"; fi
    ;;
  ldap)
    [ $# -ge 3 ] || usage
    dir=$2 tool=$3
    shift 3
    case "$tool" in
      ldapsearch | ldapmodify | ldapadd | ldapdelete) ;;
      *) die "ldap: TOOL must be ldapsearch, ldapmodify, ldapadd or ldapdelete" ;;
    esac
    load_env
    pw_file "$ADMIN_PW"
    rc=0
    LDAPTLS_CACERT=$CA LDAPTLS_REQCERT=demand "$tool" -o nettimeout=10 -H "$LDAP_URL" -x \
      -D "$ADMIN_DN" -y "$pwf" "$@" || rc=$?
    rm -f "$pwf"
    exit "$rc"
    ;;
  *) usage ;;
esac

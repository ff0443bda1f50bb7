#!/usr/bin/env bash
# A real RDP server with network-level authentication (NLA: NTLM inside CredSSP) for tests, and
# a real client login check against it. Loopback only. See shared/recipes/freerdp-nla-check.md.
#
#   rdp.sh up DIR SAMFILE [PORT]   start Xvfb and freerdp-shadow-cli /sec:nla /sam-file:SAMFILE on
#                                  127.0.0.1:PORT (default: a free port from 33890 up); prints
#                                  `READY port=PORT display=:N`; writes DIR/env (PORT, DISPLAY,
#                                  PIDS, SAM, FINGERPRINT) and pins the server certificate for the
#                                  client (DIR/client/freerdp/known_hosts2)
#   rdp.sh down DIR                stop both (by process group) and remove DIR; idempotent
#   rdp.sh login DIR USER PASSWORD [DOMAIN]
#                                  one real login (xfreerdp +auth-only, pinned certificate, password
#                                  on xfreerdp's stdin, never in its argv; PASSWORD `-` = read one
#                                  line from this script's stdin, so it is not in this argv either)
#   rdp.sh login-file DIR RDPFILE PASSWORD
#                                  the same with the address and user name taken from an .rdp file
#                                  (`full address:s:HOST[:PORT]`, `username:s:…`, UTF-8 or UTF-16)
#
# login prints one word and exits with its code:
#   OK 0           the server accepted the credentials
#   REFUSED 1      the connection was dropped during NLA and the server is still listening
#   UNREACHABLE 2  nothing listening on the port (xfreerdp says 147 for that and for a refusal
#                  alike, so the listener is checked before and after)
#   CERT 3         the server's certificate is not the pinned one
#   ERROR 3        anything else (xfreerdp's exit code and log named on stderr)
#
# SAMFILE (`USER:DOMAIN:LMHASH:NTHASH:::`, as `winpr-hash -u U -p P -f sam` writes) is re-read by
# the server at every login: the WinRM stand-in keeps it (standin.py --rdp-sam SAMFILE).
# Needs xvfb, freerdp2-shadow-x11, freerdp2-x11, openssl, iproute2 (ss).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 64
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage

listening() { # port [pid]: is 127.0.0.1:port listened on (by pid)?
  local out
  out=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -F '127.0.0.1:' || true)
  [ -n "$out" ] || return 1
  [ -z "${2:-}" ] || grep -q "pid=$2," <<<"$out"
}

stop_group() { # pid: TERM its process group, then KILL after 2 s
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

down() {
  [ -d "$dir" ] || return 0
  local pid display=""
  if [ -f "$dir/env" ]; then display=$(sed -n 's/^DISPLAY=:\([0-9]*\)$/\1/p' "$dir/env"); fi
  for f in "$dir/shadow.pid" "$dir/xvfb.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [ -n "$pid" ] && stop_group "$pid"
  done
  # An Xvfb killed hard leaves its lock and socket; remove them only if they are its own.
  if [ -n "$display" ] && [ -f "$dir/xvfb.pid" ] && [ -f "/tmp/.X$display-lock" ] \
      && [ "$(tr -d ' ' < "/tmp/.X$display-lock")" = "$(cat "$dir/xvfb.pid")" ]; then
    rm -f "/tmp/.X$display-lock" "/tmp/.X11-unix/X$display"
  fi
  rm -rf "$dir"
}

start_xvfb() {
  rm -f "$dir/xvfb.display"
  # -displayfd: Xvfb picks the first free display itself and writes its number when ready.
  # -noreset: the shadow server opens the display, closes it and opens it again at once; an Xvfb
  # that resets when its last client leaves drops that second connection ("failed to open
  # display"; measured: 11 of 20 starts on a busy machine, 0 of 20 with -noreset).
  setsid Xvfb -displayfd 5 -noreset -screen 0 1024x768x24 -nolisten tcp \
    5>"$dir/xvfb.display" >"$dir/xvfb.log" 2>&1 </dev/null &
  echo $! > "$dir/xvfb.pid"
  local i
  for i in $(seq 1 1000); do
    if [ -s "$dir/xvfb.display" ] && grep -q '^[0-9][0-9]*$' "$dir/xvfb.display"; then
      display=":$(cat "$dir/xvfb.display")"
      return 0
    fi
    kill -0 "$(cat "$dir/xvfb.pid")" 2>/dev/null || break
    sleep 0.01
  done
  echo "rdp.sh: Xvfb did not start:" >&2
  cat "$dir/xvfb.log" >&2
  return 1
}

start_shadow() { # port; 0 when listening, 1 when the server exited (or never listened)
  local pid i
  DISPLAY=$display HOME="$dir/server" XDG_CONFIG_HOME="$dir/server/cfg" \
    setsid freerdp-shadow-cli /bind-address:127.0.0.1 "/port:$1" /sec:nla "/sam-file:$sam" \
    >>"$dir/shadow.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" > "$dir/shadow.pid"
  for i in $(seq 1 1000); do           # listening or exited (≤ 10 s)
    listening "$1" "$pid" && return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 1; }
    sleep 0.01
  done
  stop_group "$pid"
  return 1
}

up() {
  local sam=${3:?usage: rdp.sh up DIR SAMFILE [PORT]} want=${4:-} port display="" attempt fp
  if [ -f "$dir/env" ]; then
    echo "rdp.sh: $dir/env exists (already up? run rdp.sh down $dir first)" >&2
    exit 1
  fi
  mkdir -p "$dir/server/cfg" "$dir/client/freerdp"
  dir=$(cd "$dir" && pwd)
  sam=$(cd "$(dirname "$sam")" && pwd)/$(basename "$sam")
  trap 'st=$?; if [ $st -ne 0 ]; then down; fi' EXIT
  port=${want:-33890}
  if [ -n "$want" ] && listening "$want"; then
    echo "rdp.sh: 127.0.0.1:$want is already taken" >&2
    exit 1
  fi
  start_xvfb
  # Should the server still exit at once (e.g. a port taken meanwhile), retry; with no PORT
  # given, on the next port.
  for attempt in 1 2 3 4 5 6 7 8; do
    if [ -z "$want" ]; then
      while listening "$port"; do port=$((port + 1)); done
    fi
    if start_shadow "$port"; then break; fi
    echo "rdp.sh: the shadow server exited (attempt $attempt): $(tail -n 2 "$dir/shadow.log" | tr '\n' ' ')" >&2
    if ! kill -0 "$(cat "$dir/xvfb.pid")" 2>/dev/null; then start_xvfb; fi
    if [ -z "$want" ]; then port=$((port + 1)); fi
    if [ "$attempt" = 8 ]; then echo "rdp.sh: giving up" >&2; exit 1; fi
    sleep 0.1
  done
  # Pin the certificate the server made on its first start (sha256, lower-case, colon form).
  fp=$(openssl x509 -in "$dir/server/cfg/freerdp/shadow/shadow.crt" -noout -fingerprint -sha256 \
         | cut -d= -f2 | tr 'A-F' 'a-f')
  printf '127.0.0.1 %s %s - -\nlocalhost %s %s - -\n' "$port" "$fp" "$port" "$fp" \
    > "$dir/client/freerdp/known_hosts2"
  cat > "$dir/env.tmp" <<ENV
PORT=$port
DISPLAY=$display
PIDS="$(cat "$dir/xvfb.pid") $(cat "$dir/shadow.pid")"
SAM=$sam
FINGERPRINT=sha256:$fp
ENV
  mv "$dir/env.tmp" "$dir/env"
  trap - EXIT
  echo "READY port=$port display=$display"
}

load_env() {
  if [ ! -f "$dir/env" ]; then
    echo "UNREACHABLE"
    echo "rdp.sh: $dir/env missing (not up)" >&2
    exit 2
  fi
  PORT=$(sed -n 's/^PORT=//p' "$dir/env")
  DISPLAY_=$(sed -n 's/^DISPLAY=//p' "$dir/env")
}

read_password() { # the PASSWORD argument; `-` reads one line from stdin
  if [ "$1" = "-" ]; then
    IFS= read -r password || [ -n "${password:-}" ] || { echo "rdp.sh: no password on stdin" >&2; exit 64; }
  else
    password=$1
  fi
  case $password in
    *$'\n'*|*$'\r'*) echo "rdp.sh: a password with a line break cannot go through stdin" >&2; exit 64 ;;
  esac
}

# xfreerdp, password on its stdin; sets rc and log.
run_client() { # port args...
  local port=$1; shift
  log=$(mktemp "$dir/login.XXXXXX.log")
  rc=0
  printf '%s\n' "$password" | DISPLAY=$DISPLAY_ HOME="$dir/client" XDG_CONFIG_HOME="$dir/client" \
    setsid -w timeout 60 xfreerdp "$@" /from-stdin:force +auth-only /cert:deny \
    >"$log" 2>&1 || rc=$?
}

verdict() { # port
  case $rc in
    0) echo OK; exit 0 ;;
    147)
      if listening "$1"; then echo REFUSED; exit 1; fi
      echo UNREACHABLE; exit 2 ;;
    143)
      if grep -q 'certificate' "$log"; then
        echo CERT
        echo "rdp.sh: the server's certificate is not the pinned one ($log)" >&2
        exit 3
      fi ;;
  esac
  echo ERROR
  echo "rdp.sh: xfreerdp exited $rc ($log)" >&2
  exit 3
}

login() {
  local user=${3:?usage: rdp.sh login DIR USER PASSWORD [DOMAIN]} domain=${5:-} password
  [ $# -ge 4 ] || usage
  read_password "$4"
  load_env
  if ! listening "$PORT"; then echo UNREACHABLE; exit 2; fi
  local args=("/v:127.0.0.1:$PORT" "/u:$user")
  [ -z "$domain" ] || args+=("/d:$domain")
  run_client "$PORT" "${args[@]}"
  verdict "$PORT"
}

login_file() {
  local file=${3:?usage: rdp.sh login-file DIR RDPFILE PASSWORD} password text address host port
  [ $# -ge 4 ] || usage
  read_password "$4"
  load_env
  # The file as text (mstsc writes UTF-16LE with a BOM), for the address only.
  if [ "$(head -c 2 "$file" | od -An -tx1 | tr -d ' ')" = "fffe" ]; then
    text=$(iconv -f UTF-16 -t UTF-8 "$file")
  else
    text=$(cat "$file")
  fi
  address=$(tr -d '\r' <<<"$text" | sed -n 's/^full address:s://p' | head -n 1)
  host=${address%%:*}
  port=3389
  [ "$host" = "$address" ] || port=${address##*:}
  if [ "$host" = "$address" ]; then
    port=$(tr -d '\r' <<<"$text" | sed -n 's/^server port:i://p' | head -n 1)
    port=${port:-3389}
  fi
  if ! tr -d '\r' <<<"$text" | grep -q '^username:s:.'; then
    echo "ERROR"; echo "rdp.sh: $file has no username:s: line" >&2; exit 3
  fi
  case $host in
    127.*|localhost) ;;
    *) echo "ERROR"; echo "rdp.sh: $file points at $address; only loopback addresses" >&2; exit 3 ;;
  esac
  if ! listening "$port"; then echo UNREACHABLE; exit 2; fi
  # xfreerdp takes a connection file only when its name ends in .rdp.
  local copy
  copy=$(mktemp "$dir/connection.XXXXXX.rdp")
  cat "$file" > "$copy"
  run_client "$port" "$copy"
  rm -f "$copy"
  verdict "$port"
}

case "$cmd" in
  up) up "$@" ;;
  down) down ;;
  login) login "$@" ;;
  login-file) login_file "$@" ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# A fleet of real OpenSSH servers for tests and the demo, each isolated from this machine.
#
#   fleet.sh up DIR N [BASE]   start N hosts on BASE.2 … BASE.(N+1), port 22 (BASE 127.0.0)
#   fleet.sh down DIR     stop them and remove DIR
#
# Each host is an `sshd` in its own mount, PID and UTS namespace, with a private copy of
# /etc and its own /home and /run, so grants never touch this machine's accounts and a
# revoke's `pkill -u` sees only that host's processes. Every host has the service user
# `apono` with passwordless sudo, logging in with DIR/service_key. DIR/known_hosts pins the
# hosts' (freshly generated) host keys. Needs root, sshd, sudo, unshare (see `make setup`).
set -euo pipefail

cmd=${1:?usage: fleet.sh up DIR N | down DIR}
dir=${2:?usage: fleet.sh up DIR N | down DIR}

down() {
  if [ -d "$dir" ]; then
    # Each host runs in its own process group (setsid), and unshare --kill-child takes the
    # namespace's PID 1, and with it every process of that host, down with it.
    for pidfile in "$dir"/host*/ns.pid; do
      [ -f "$pidfile" ] || continue
      kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null || kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 0.2
    rm -rf "$dir"
  fi
}

start_host() { # index root addr
  local i=$1 root=$2 addr=$3
  mkdir -p "$root/home" "$root/run"
  cp -a /etc "$root/etc"
  rm -f "$root"/etc/ssh/ssh_host_*
  rm -rf "$root"/etc/ssh/sshd_config.d/* 2>/dev/null || true
  ssh-keygen -q -t ed25519 -N '' -C "fleet-host$i" -f "$root/etc/ssh/ssh_host_ed25519_key"
  cat > "$root/etc/ssh/sshd_config" <<CONF
# Drop-ins first: with sshd, the first value of a keyword wins.
Include /etc/ssh/sshd_config.d/*.conf
ListenAddress $addr
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
LogLevel VERBOSE
CONF
  # useradd must not touch shared paths (/var/mail); UIDs still differ per host by design.
  echo "CREATE_MAIL_SPOOL=no" >> "$root/etc/default/useradd"
  echo "host$i" > "$root/etc/hostname"
  echo "127.0.1.1 host$i" >> "$root/etc/hosts"
  # Inside the namespaces: private /etc, /home, /run; then the service user; then sshd.
  if (exec 3<>"/dev/tcp/$addr/22") 2>/dev/null; then
    echo "fleet.sh: $addr:22 is already taken (a fleet left running?); refusing" >&2
    exit 1
  fi
  setsid unshare --mount --pid --uts --fork --kill-child --mount-proc --propagation private \
    bash -c "
      set -e
      mount --bind '$root/etc' /etc
      mount --bind '$root/home' /home
      mount -t tmpfs -o mode=0755 tmpfs /run
      mkdir -p /run/sshd
      hostname host$i
      useradd -m -s /bin/bash apono
      install -d -m 0700 -o apono -g apono /home/apono/.ssh
      install -m 0600 -o apono -g apono '$dir/service_key.pub' /home/apono/.ssh/authorized_keys
      echo 'apono ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/apono
      chmod 0440 /etc/sudoers.d/apono
      exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
    " > "$root/sshd.log" 2>&1 < /dev/null &
  echo $! > "$root/ns.pid"
  echo "$addr $(cut -d' ' -f1-2 "$root/etc/ssh/ssh_host_ed25519_key.pub")" >> "$dir/known_hosts"
}

case "$cmd" in
  up)
    n=${3:?usage: fleet.sh up DIR N [BASE]}
    base=${4:-127.0.0}
    [ "$(id -u)" = 0 ] || { echo "fleet.sh: needs root (namespaces, bind mounts)" >&2; exit 1; }
    down
    mkdir -p "$dir"
    ssh-keygen -q -t ed25519 -N '' -C latch-fleet-service -f "$dir/service_key"
    : > "$dir/known_hosts"
    for i in $(seq 1 "$n"); do
      start_host "$i" "$dir/host$i" "$base.$((i + 1))"
    done
    # Wait until every sshd accepts connections (bounded: 10 s).
    for i in $(seq 1 "$n"); do
      addr=$base.$((i + 1))
      for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$addr/22") 2>/dev/null; then break; fi
        sleep 0.1
      done
      (exec 3<>"/dev/tcp/$addr/22") 2>/dev/null || {
        echo "fleet.sh: host$i ($addr) did not start; its log:" >&2
        cat "$dir/host$i/sshd.log" >&2
        exit 1
      }
    done
    ;;
  down) down ;;
  *) echo "usage: fleet.sh up DIR N | down DIR" >&2; exit 2 ;;
esac

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
#
# FLEET_VARIANTS="W1 W2 …" makes host i unlike Debian in one respect (word i; none or
# `debian`: the setup above). Words combine with `+` (e.g. `busybox+wheel`); each host's
# word is in DIR/hostI/variant. Every variant still lets apono log in with the service key.
#   pidfile-elsewhere  sshd_config `PidFile /run/latch-fleet/sshd.pid`
#   no-pidfile         sshd_config `PidFile none`
#   no-include         sshd_config without `Include /etc/ssh/sshd_config.d/*.conf`
#   requiretty         sudoers `Defaults requiretty` (`sudo -n` over ssh: "you must have a tty")
#   secure-path        sudoers `Defaults secure_path="/usr/local/bin:/usr/bin:/bin"`: with a
#                      usr-merged /bin, no sbin tool (useradd, sshd, …) is on sudo's PATH
#   sudo-password      apono has a password (in DIR/hostI/apono_password) and
#                      `apono ALL=(ALL) ALL`: `sudo -n` says "a password is required"
#   shell-dash, shell-zsh, shell-tcsh   apono's login shell is /bin/dash, /bin/zsh, /usr/bin/tcsh
#   busybox            user tools as on Alpine: shadow's useradd, usermod, userdel, groupadd,
#                      groupdel, groupmod, gpasswd, chpasswd, passwd, chage, newusers,
#                      chgpasswd, groupmems and Debian's adduser/deluser/addgroup/delgroup are
#                      gone; adduser, addgroup, deluser, delgroup, chpasswd (/usr/sbin) and
#                      passwd (/usr/bin) are BusyBox applets (target/busybox/busybox, built by
#                      busybox.sh on demand, installed in the host as /usr/bin/busybox)
#   wheel              no `sudo` group; a `wheel` group and sudoers `%wheel ALL=(ALL) ALL`
#                      (apono keeps its own NOPASSWD rule)
#   selinux            an emulated /usr/sbin/restorecon that only records its arguments, one
#                      call per line, in /var/log/restorecon.calls (outside:
#                      DIR/hostI/var-log/restorecon.calls). SELinux itself is NOT present.
#   systemd            sshd as if systemd ran it: /run/systemd/system exists, `PidFile none`,
#                      and an emulated /usr/bin/systemctl that answers only
#                        show -p MainPID --value ssh.service    the listener's pid
#                        show -p MainPID --value sshd.service   0
#                        is-active ssh.service                  active
#                        reload ssh.service                     SIGHUP to the listener
#                      (anything else: an error, exit 1) and records every call in
#                      /var/log/systemctl.calls (outside: DIR/hostI/var-log/systemctl.calls)
#   inetd              no listening sshd: a listener on ADDR:22 runs `sshd -i` per connection
#   no-pam             sshd_config `UsePAM no`, as Alpine's openssh-server (without -pam): sshd
#                      then refuses any account whose shadow password starts with `!` ("account
#                      is locked", which `useradd` and BusyBox `adduser -D` leave); apono's is `*`
# Tools are replaced, hidden or added with overlay mounts over /usr/sbin, /usr/bin and
# /var/log inside the host's mount namespace only; their upper dirs (what the host sees
# changed) are DIR/hostI/usr-sbin, DIR/hostI/usr-bin and DIR/hostI/var-log.
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

variants="debian pidfile-elsewhere no-pidfile no-include requiretty secure-path sudo-password
  shell-dash shell-zsh shell-tcsh busybox wheel selinux systemd inetd no-pam"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

variant_of() { # index: host i's FLEET_VARIANTS word, `debian` if none
  local words
  read -ra words <<< "${FLEET_VARIANTS:-}"
  echo "${words[$(($1 - 1))]:-debian}"
}

check_variants() { # n: refuse unknown variant names before starting anything
  local i flag flags
  for i in $(seq 1 "$1"); do
    IFS=+ read -ra flags <<< "$(variant_of "$i")"
    for flag in "${flags[@]}"; do
      case " $(echo $variants) " in
        *" $flag "*) ;;
        *) echo "fleet.sh: unknown variant '$flag' (host$i); known: $(echo $variants)" >&2; exit 2 ;;
      esac
    done
  done
}

has() { # flag: does the host being set up have this variant flag?
  local f
  for f in "${flags[@]}"; do [ "$f" = "$1" ] && return 0; done
  return 1
}

overlay_dir() { # root name: an overlay's upper dir for /usr/sbin, /usr/bin or /var/log
  mkdir -p "$1/ovl/$2.work" "$1/$2"
}

start_host() { # index root addr
  local i=$1 root=$2 addr=$3
  local variant flags
  variant=$(variant_of "$i")
  IFS=+ read -ra flags <<< "$variant"
  mkdir -p "$root/home" "$root/run"
  root=$(cd "$root" && pwd) # absolute: overlay mount options
  echo "$variant" > "$root/variant"
  cp -a /etc "$root/etc"
  rm -f "$root"/etc/ssh/ssh_host_*
  rm -rf "$root"/etc/ssh/sshd_config.d/* 2>/dev/null || true
  ssh-keygen -q -t ed25519 -N '' -C "fleet-host$i" -f "$root/etc/ssh/ssh_host_ed25519_key"

  # What the variants change: sshd_config, sudoers, apono's shell, commands run inside the
  # namespace before sshd (setup), overlays (uppers prepared here), and what serves port 22.
  local include='# Drop-ins first: with sshd, the first value of a keyword wins.
Include /etc/ssh/sshd_config.d/*.conf
' pidfile=/run/sshd.pid use_pam=yes shell=/bin/bash sudo_rule='apono ALL=(ALL) NOPASSWD:ALL'
  local extra_sudoers="" setup="" serve="exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config"
  has no-include && include=""
  if has pidfile-elsewhere; then
    pidfile=/run/latch-fleet/sshd.pid
    setup+="mkdir -p /run/latch-fleet; "
  fi
  has no-pidfile && pidfile=none
  has requiretty && extra_sudoers+=$'Defaults requiretty\n'
  has secure-path && extra_sudoers+=$'Defaults secure_path="/usr/local/bin:/usr/bin:/bin"\n'
  if has sudo-password; then
    sudo_rule='apono ALL=(ALL) ALL'
    echo "fleet-apono-password-$i" > "$root/apono_password"
    setup+="echo 'apono:fleet-apono-password-$i' | chpasswd; "
  fi
  if has no-pam; then
    use_pam=no
    setup+="usermod -p '*' apono; "
  fi
  has shell-dash && shell=/bin/dash
  has shell-zsh && shell=/bin/zsh
  has shell-tcsh && shell=/usr/bin/tcsh
  [ -x "$shell" ] || { echo "fleet.sh: host$i ($variant) needs $shell (see make setup)" >&2; exit 1; }
  if has wheel; then
    # As on RHEL: no `sudo` group, no %sudo rule; administrators are in `wheel`.
    sed -i '/^%sudo[[:space:]]/d' "$root/etc/sudoers"
    extra_sudoers+=$'%wheel ALL=(ALL) ALL\n'
    setup+="groupdel sudo; groupadd wheel; "
  fi
  if has busybox; then
    overlay_dir "$root" usr-sbin
    overlay_dir "$root" usr-bin
    local tool
    # Whiteouts: shadow's tools and Debian's Perl adduser family vanish from the host.
    for tool in useradd usermod userdel groupadd groupdel groupmod chpasswd chgpasswd \
      groupmems newusers adduser deluser addgroup delgroup; do
      [ -e "/usr/sbin/$tool" ] && mknod "$root/usr-sbin/$tool" c 0 0
    done
    for tool in gpasswd passwd chage; do
      [ -e "/usr/bin/$tool" ] && mknod "$root/usr-bin/$tool" c 0 0
    done
    cp "$repo/target/busybox/busybox" "$root/usr-bin/busybox"
    for tool in adduser addgroup deluser delgroup chpasswd; do
      rm -f "$root/usr-sbin/$tool"
      ln -s /usr/bin/busybox "$root/usr-sbin/$tool"
    done
    rm -f "$root/usr-bin/passwd"
    ln -s /usr/bin/busybox "$root/usr-bin/passwd"
  fi
  if has selinux; then
    overlay_dir "$root" usr-sbin
    overlay_dir "$root" var-log
    cat > "$root/usr-sbin/restorecon" <<'SH'
#!/bin/sh
# Emulated restorecon (fleet.sh, variant selinux): SELinux is not present here; this only
# records the call's arguments, one call per line.
echo "$*" >> /var/log/restorecon.calls 2>/dev/null
exit 0
SH
    chmod 0755 "$root/usr-sbin/restorecon"
    install -m 0666 /dev/null "$root/var-log/restorecon.calls"
  fi
  if has systemd; then
    pidfile=none
    overlay_dir "$root" usr-bin
    overlay_dir "$root" var-log
    cat > "$root/usr-bin/systemctl" <<'SH'
#!/bin/sh
# Emulated systemctl (fleet.sh, variant systemd): sshd runs as if ssh.service started it.
# Records every call's arguments, one call per line; answers only these.
echo "$*" >> /var/log/systemctl.calls 2>/dev/null
pid=$(cat /run/latch-fleet/ssh.service.mainpid 2>/dev/null) || pid=0
case "$*" in
  "show -p MainPID --value ssh.service") echo "$pid" ;;
  "show -p MainPID --value sshd.service") echo 0 ;;
  "is-active ssh.service") echo active ;;
  "reload ssh.service") kill -HUP "$pid" || exit 1 ;;
  *) echo "systemctl (fleet.sh emulation): not supported: $*" >&2; exit 1 ;;
esac
SH
    chmod 0755 "$root/usr-bin/systemctl"
    install -m 0666 /dev/null "$root/var-log/systemctl.calls"
    setup+="mkdir -p /run/systemd/system /run/latch-fleet; echo \$\$ > /run/latch-fleet/ssh.service.mainpid; "
  fi
  if has inetd; then
    [ -x /usr/bin/python3 ] || { echo "fleet.sh: host$i ($variant) needs /usr/bin/python3" >&2; exit 1; }
    cat > "$root/inetd.py" <<'PY'
# inetd for one host (fleet.sh, variant inetd): `sshd -i` per connection on ADDR:22.
import os, signal, socket, sys

signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped by the kernel
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], 22))
listener.listen(128)
while True:
    conn, _ = listener.accept()
    if os.fork() == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.dup2(conn.fileno(), 0)
        os.dup2(conn.fileno(), 1)
        os.execv("/usr/sbin/sshd", ["sshd", "-i", "-e", "-f", "/etc/ssh/sshd_config"])
    conn.close()
PY
    serve="exec /usr/bin/python3 -I '$root/inetd.py' $addr"
  fi
  # Overlays, mounted after the setup above (which may need the tools they hide).
  local mounts="" d
  for d in usr-sbin usr-bin var-log; do
    [ -d "$root/ovl/$d.work" ] || continue
    mounts+="mount -t overlay overlay -o 'lowerdir=/${d/-//},upperdir=$root/$d,workdir=$root/ovl/$d.work' '/${d/-//}'; "
  done
  if [ -n "$extra_sudoers" ]; then
    printf '%s' "$extra_sudoers" > "$root/etc/sudoers.d/latch-fleet-variant"
    chmod 0440 "$root/etc/sudoers.d/latch-fleet-variant"
  fi

  cat > "$root/etc/ssh/sshd_config" <<CONF
${include}ListenAddress $addr
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile $pidfile
UsePAM $use_pam
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
      useradd -m -s $shell apono
      install -d -m 0700 -o apono -g apono /home/apono/.ssh
      install -m 0600 -o apono -g apono '$dir/service_key.pub' /home/apono/.ssh/authorized_keys
      echo '$sudo_rule' > /etc/sudoers.d/apono
      chmod 0440 /etc/sudoers.d/apono
      $setup
      $mounts
      $serve
    " > "$root/sshd.log" 2>&1 < /dev/null &
  echo $! > "$root/ns.pid"
  echo "$addr $(cut -d' ' -f1-2 "$root/etc/ssh/ssh_host_ed25519_key.pub")" >> "$dir/known_hosts"
}

case "$cmd" in
  up)
    n=${3:?usage: fleet.sh up DIR N [BASE]}
    base=${4:-127.0.0}
    [ "$(id -u)" = 0 ] || { echo "fleet.sh: needs root (namespaces, bind mounts)" >&2; exit 1; }
    check_variants "$n"
    for i in $(seq 1 "$n"); do
      case "+$(variant_of "$i")+" in
        *+busybox+*) bash "$repo/tests/fleet/busybox.sh" "$repo/target/busybox"; break ;;
      esac
    done
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

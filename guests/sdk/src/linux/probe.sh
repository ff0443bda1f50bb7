# Latch's probe: what a grant, revoke or cleanup needs to know about this server, in one
# read. It changes nothing. Run as `sudo -n /bin/sh -c THIS latch-probe ACCOUNT [GROUP ...]`;
# ACCOUNT (may be empty) and the GROUPs are checked names, used only as quoted arguments.
# Output: sections, each a byte 0x1E, a name, a newline, then its lines. Only facts leave
# the server: of /etc/shadow, whether the password field is `*` and whether an expiry is set.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
m() { printf '\036%s\n' "$1"; }
m probe
m tools
# Name, path, and (for adduser: BusyBox's or not) the file it resolves to. Builtins only,
# but for that one readlink: this probe runs on every grant.
for t in useradd usermod userdel groupadd gpasswd adduser addgroup deluser delgroup \
    passwd chpasswd sshd ssh-keygen pkill kill systemctl restorecon; do
    for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
        if [ -x "$d/$t" ]; then
            if [ "$t" = adduser ]; then
                printf '%s %s %s\n' "$t" "$d/$t" "$(readlink -f "$d/$t")"
            else
                printf '%s %s %s\n' "$t" "$d/$t" "$d/$t"
            fi
            break
        fi
    done
done
if [ -f /etc/ssh/latch/user_ca.pub ]; then m ca; cat /etc/ssh/latch/user_ca.pub; fi
if [ -f /etc/ssh/latch/revoked_keys ]; then m krl; fi
if [ -f /etc/ssh/sshd_config.d/latch.conf ]; then m dropin; cat /etc/ssh/sshd_config.d/latch.conf; fi
m include
grep -i '^[[:space:]]*include[[:space:]]' /etc/ssh/sshd_config 2>/dev/null
if out=$(sshd -T 2>&1); then
    m sshd
    printf '%s\n' "$out" |
        grep -iE '^(trustedusercakeys|revokedkeys|pidfile|authorizedprincipals(file|command)) '
else
    m sshd-failed
    printf '%s\n' "$out" | head -n 5
fi
if [ -d /run/systemd/system ]; then
    m systemd
    for u in ssh.service sshd.service; do
        printf '%s %s\n' "$u" "$(systemctl show -p MainPID --value "$u" 2>/dev/null)"
    done
fi
# This session's ancestors: pid, parent, name and, for sshd's, the command line (tells which
# sshd serves this session, and whether it runs per connection).
m procs
pid=$$
while [ -r "/proc/$pid/status" ]; do
    ppid=0
    while read -r k v; do
        if [ "$k" = PPid: ]; then ppid=$v; fi
    done < "/proc/$pid/status"
    read -r comm < "/proc/$pid/comm"
    cmdline=
    case $comm in sshd*) cmdline=$(tr '\000\n\t' '   ' < "/proc/$pid/cmdline") ;; esac
    printf '%s %s %s\t%s\n' "$pid" "$ppid" "$comm" "$cmdline"
    [ "$ppid" -gt 0 ] || break
    pid=$ppid
done
if [ -n "$1" ] && line=$(getent passwd "$1"); then
    m account
    printf '%s\n' "$line"
    id -nG "$1"
    pw=other
    expire=none
    while IFS=: read -r n p _ _ _ _ _ e _; do
        if [ "$n" = "$1" ]; then
            case $p in '*') pw=star ;; '!'*) pw=locked ;; esac
            if [ -n "$e" ]; then expire=set; fi
            break
        fi
    done < /etc/shadow
    printf 'password=%s expire=%s\n' "$pw" "$expire"
fi
shift
m groups
for g in latch-managed "$@"; do
    if getent group "$g" > /dev/null; then printf '%s\n' "$g"; fi
done

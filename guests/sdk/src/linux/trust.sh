# Latch: prepare this server for Latch's certificates — the connector's user CA, its key
# revocation list (KRL), the sshd drop-in naming both, the group marking Latch's accounts —
# and make sshd read the drop-in. Run as
#   sudo -n /bin/sh -c THIS latch-trust CA_LINE NEW_KRL DROPIN GROUP_TOOL RELOAD TARGET
# where an empty argument skips that step. Each file is written beside itself and renamed
# over the old one, so sshd never reads a partial file. When the drop-in changed, `sshd -T`
# must show it in effect before sshd is reloaded; if it does not, the drop-in is removed
# again and the script exits 3. RELOAD is `systemd` (TARGET: the unit, `systemctl reload`),
# `signal` (TARGET: the listener's pid, SIGHUP) or empty (sshd runs per connection).
# sshd reads the CA file and the KRL at each login: only the drop-in needs a reload.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 022
tmp=
trap 'if [ -n "$tmp" ]; then rm -f -- "$tmp"; fi' EXIT
put() {
    mkdir -p -m 0755 -- "${1%/*}"
    tmp="${1%/*}/.latch.$$"
    printf '%s' "$2" > "$tmp"
    chmod 0644 -- "$tmp"
    mv -f -- "$tmp" "$1"
    tmp=
}
if [ -n "$1" ]; then put /etc/ssh/latch/user_ca.pub "$1"; fi
if [ -n "$2" ]; then
    mkdir -p -m 0755 /etc/ssh/latch
    tmp=/etc/ssh/latch/.latch.$$
    rm -f -- "$tmp"
    ssh-keygen -q -k -f "$tmp"
    chmod 0644 -- "$tmp"
    mv -f -- "$tmp" /etc/ssh/latch/revoked_keys
    tmp=
fi
if [ -n "$3" ]; then put /etc/ssh/sshd_config.d/latch.conf "$3"; fi
# SELinux: give what was written its policy's label (sshd reads only sshd-readable types).
if command -v restorecon > /dev/null 2>&1; then
    restorecon -RF /etc/ssh/latch
    if [ -n "$3" ]; then restorecon -F /etc/ssh/sshd_config.d/latch.conf; fi
fi
if [ -n "$4" ] && ! getent group latch-managed > /dev/null; then "$4" latch-managed; fi
if [ -n "$3" ]; then
    eff=$(sshd -T | grep -iE '^(trustedusercakeys|revokedkeys) ' || true)
    printf '\036sshd\n%s\n' "$eff"
    if ! printf '%s\n' "$eff" | grep -qix 'trustedusercakeys /etc/ssh/latch/user_ca.pub' ||
        ! printf '%s\n' "$eff" | grep -qix 'revokedkeys /etc/ssh/latch/revoked_keys'; then
        rm -f /etc/ssh/sshd_config.d/latch.conf
        exit 3
    fi
    case $5 in
        systemd) systemctl reload "$6" ;;
        signal) kill -HUP "$6" ;;
    esac
fi

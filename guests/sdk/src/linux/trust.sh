# Latch: make sshd trust the connector's user CA and honour its key revocation list (KRL).
# Run as `sudo -n /bin/sh -c THIS latch-trust CA_LINE NEW_KRL DROPIN`; an empty argument
# leaves that file as it is. Each file is written beside itself and renamed over the old
# one, so sshd never reads a partial file. Prints the effective `sshd -T` lines when the
# drop-in changed, for Latch to check before it reloads sshd.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 022
tmp=
trap 'if [ -n "$tmp" ]; then rm -f -- "$tmp"; fi' EXIT
put() { # PATH CONTENT
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
if [ -n "$3" ]; then
    printf '\036sshd\n'
    sshd -T | grep -iE '^(trustedusercakeys|revokedkeys) ' || true
fi

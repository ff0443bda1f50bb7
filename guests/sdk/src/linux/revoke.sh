# Latch: put every certificate with the key id on stdin (`id: GRANT`) on the KRL. Run as
# `sudo -n /bin/sh -c THIS latch-revoke`. Updates a copy, then renames it over the KRL.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 022
krl=/etc/ssh/latch/revoked_keys
tmp=/etc/ssh/latch/.latch.$$
trap 'rm -f -- "$tmp"' EXIT
cp -- "$krl" "$tmp"
ssh-keygen -q -k -u -f "$tmp" -s /etc/ssh/latch/user_ca.pub /dev/stdin
chmod 0644 -- "$tmp"
mv -f -- "$tmp" "$krl"
if command -v restorecon > /dev/null 2>&1; then restorecon -F "$krl"; fi

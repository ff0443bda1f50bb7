#!/usr/bin/env bash
# Build a BusyBox with the user-management applets, as Alpine has them, for the fleet's
# `busybox` variant (fleet.sh): adduser, addgroup, deluser, delgroup, passwd, chpasswd.
#
#   busybox.sh OUTDIR    builds OUTDIR/busybox (idempotent: a no-op when up to date)
#
# Debian's own busybox packages leave those applets out, so this builds Debian's busybox
# *source package* (upstream tarball only; Debian's patches are not needed to build it),
# from `make allnoconfig` plus only the applets above (and `chown`, which adduser calls
# internally). Dynamically linked against glibc; users and groups are read through the
# system's functions (NSS), written by BusyBox itself into /etc/{passwd,shadow,group,gshadow}.
# The source is downloaded once with `apt-get source --download-only busybox` into
# OUTDIR/src (a deb-src entry for bookworm is added if missing). Needs gcc, make, bzip2.
set -euo pipefail

out=${1:?usage: busybox.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/src
script_sha=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

dsc() { ls "$src"/busybox_*.dsc 2>/dev/null | head -n1; }

# Idempotence: same source package and same script -> nothing to do.
if [ -n "$(dsc)" ] && [ -x "$out/busybox" ] && [ -f "$out/stamp" ]; then
  version=$(sed -n 's/^Version: //p' "$(dsc)")
  if [ "$(cat "$out/stamp")" = "$version $script_sha" ]; then
    exit 0
  fi
fi

if [ -z "$(dsc)" ]; then
  # Make sure a deb-src entry exists (a fresh Debian 12 has only binary entries).
  if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    [ "$(id -u)" = 0 ] || { echo "busybox.sh: no deb-src entry, and not root to add one" >&2; exit 1; }
    cat > /etc/apt/sources.list.d/src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt where it can
  if ! (cd "$tmp" && apt-get source --download-only -qq busybox >/dev/null); then
    # The package lists may predate the deb-src entry.
    apt-get update -qq
    (cd "$tmp" && apt-get source --download-only -qq busybox >/dev/null)
  fi
  mkdir -p "$src"
  mv "$tmp"/busybox_* "$src"/
fi

version=$(sed -n 's/^Version: //p' "$(dsc)")
orig=$(ls "$src"/busybox_*.orig.tar.* | head -n1)
upstream=$(basename "$orig" | sed 's/^busybox_\(.*\)\.orig\.tar\..*$/\1/')
case "$upstream" in
  1.35.*) ;;
  *) echo "busybox.sh: warning: written for BusyBox 1.35, the source package is $version" >&2 ;;
esac

start=$(date +%s.%N)
build=$out/build
rm -rf "$build"
mkdir -p "$build"
tar -xf "$orig" -C "$build"
cd "$build/busybox-$upstream"

# Everything off, then only what the fleet's `busybox` host needs (values as Alpine's config:
# name checks on, LAST_ID 256000, sha512 passwords).
cat > "$build/mini.config" <<'CONFIG'
CONFIG_BUSYBOX=y
CONFIG_LONG_OPTS=y
CONFIG_FEATURE_SYSLOG=y
CONFIG_FEATURE_SHADOWPASSWDS=y
CONFIG_USE_BB_PWD_GRP=n
CONFIG_USE_BB_SHADOW=n
CONFIG_USE_BB_CRYPT=y
CONFIG_USE_BB_CRYPT_SHA=y
CONFIG_ADDUSER=y
CONFIG_FEATURE_CHECK_NAMES=y
CONFIG_LAST_ID=256000
CONFIG_FIRST_SYSTEM_ID=100
CONFIG_LAST_SYSTEM_ID=999
CONFIG_ADDGROUP=y
CONFIG_FEATURE_ADDUSER_TO_GROUP=y
CONFIG_DELUSER=y
CONFIG_DELGROUP=y
CONFIG_FEATURE_DEL_USER_FROM_GROUP=y
CONFIG_PASSWD=y
CONFIG_FEATURE_PASSWD_WEAK_CHECK=y
CONFIG_CHPASSWD=y
CONFIG_FEATURE_DEFAULT_PASSWD_ALGO="sha512"
CONFIG_CHOWN=y
CONFIG_DESKTOP=n
CONFIG_SH_IS_ASH=n
CONFIG_SH_IS_NONE=y
CONFIG_SHELL_ASH=n
CONFIG_STATIC=n
CONFIG
# (This kconfig ignores KCONFIG_ALLCONFIG on allnoconfig: set the options in .config, then
# let oldconfig settle the rest; the checks below make sure they held.)
make -s allnoconfig >/dev/null
while IFS= read -r line; do
  name=${line%%=*}
  sed -i "/^$name=/d; /^# $name is not set\$/d" .config
  case "$line" in
    *=n) echo "# $name is not set" >> .config ;;
    *) echo "$line" >> .config ;;
  esac
done < "$build/mini.config"
{ yes '' || true; } | make -s oldconfig >/dev/null
while IFS= read -r line; do
  name=${line%%=*}
  case "$line" in
    *=n) want="# $name is not set" ;;
    *) want=$line ;;
  esac
  grep -qxF "$want" .config || { echo "busybox.sh: '$line' did not hold in .config" >&2; exit 1; }
done < "$build/mini.config"
make -s -j"$(nproc)" busybox > "$build/make.log" 2>&1 || {
  cat "$build/make.log" >&2
  exit 1
}
install -m 0755 busybox "$out/busybox.new"
mv "$out/busybox.new" "$out/busybox"
cd "$out"
rm -rf "$build"
echo "$version $script_sha" > "$out/stamp"
echo "busybox.sh: built BusyBox $version in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s:" \
  "$("$out/busybox" --list | tr '\n' ' ')"

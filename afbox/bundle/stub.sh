#!/bin/sh
# afbox.run: the afbox facility in one file (a Python, afbox and its packages, XRootD) for x86_64
# Linux with glibc. `./afbox.run up` starts it; the first run checks this file and unpacks it once
# into ${AFBOX_HOME:-~/.cache/afbox}/rt/<sha256>/. What is inside: `./afbox.run bundle inspect`.
AFBOX_FORMAT=1
AFBOX_VERSION='@VERSION@'
AFBOX_SHA256='@SHA256@'
AFBOX_MANIFEST_BYTES=@MANIFEST_BYTES@
AFBOX_CHECKSUMS_BYTES=@CHECKSUMS_BYTES@
AFBOX_BOOT_BYTES=@BOOT_BYTES@
AFBOX_PAYLOAD_BYTES=@PAYLOAD_BYTES@
AFBOX_GLIBC='@GLIBC@'
AFBOX_PYTHON='@PYTHON@'
AFBOX_STUB_BYTES=@STUB_BYTES@
set -u

say() { printf 'afbox.run: %s\n' "$*" >&2; }
die() { say "$@"; exit 1; }

self=$0
case $self in */*) ;; *) self=$(command -v -- "$self") || die "cannot find myself ($0)" ;; esac
case $self in /*) ;; *) self=$(cd "$(dirname -- "$self")" && pwd)/$(basename -- "$self") ;; esac
[ -r "$self" ] || die "cannot read $self"

# The floor: the bundled programs need this glibc or newer; say so instead of failing in the loader.
case $(uname -m) in x86_64) ;; *) die "this bundle is for x86_64 Linux; this machine is $(uname -sm)" ;; esac
have=$(getconf GNU_LIBC_VERSION 2>/dev/null) || have=
have=${have#glibc }
case $have in
  [0-9]*.[0-9]*) ;;
  *) die "needs the GNU C library (glibc) $AFBOX_GLIBC or newer; this system has none (musl or another C library?). Install afbox with ./install.sh instead." ;;
esac
need_major=${AFBOX_GLIBC%%.*}; need_minor=${AFBOX_GLIBC#*.}
have_major=${have%%.*}; have_minor=${have#*.}; have_minor=${have_minor%%.*}
if [ "$have_major" -lt "$need_major" ] || { [ "$have_major" -eq "$need_major" ] && [ "$have_minor" -lt "$need_minor" ]; }; then
  die "needs glibc $AFBOX_GLIBC or newer; this system has glibc $have. Here, install afbox with ./install.sh (Python >= 3.11) instead."
fi

home=${AFBOX_HOME:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/afbox}
rt=$home/rt/$AFBOX_SHA256

unpack() {
  mkdir -p "$home/rt" || die "cannot create $home/rt (set AFBOX_HOME to a writable directory)"
  # One unpack at a time; a run that waited here finds the tree made by the other. Where locks do
  # not work (some network filesystems) the rename below still lets only one tree into place.
  if command -v flock >/dev/null 2>&1 && exec 9>>"$home/rt/.lock" && flock 9 2>/dev/null; then
    [ -f "$rt/.afbox-unpacked" ] && return 0
    rm -rf "$home/rt"/.unpack-*  # left by a run killed mid-way; none other runs while we hold the lock
  fi
  command -v sha256sum >/dev/null 2>&1 || die "needs sha256sum (coreutils) to check this file"
  say "first run: checking $self and unpacking it into $rt (once) ..."
  sum=$(tail -c +$((AFBOX_STUB_BYTES + 1)) "$self" | sha256sum) || die "cannot read $self"
  sum=${sum%% *}
  [ "$sum" = "$AFBOX_SHA256" ] || die "$self is damaged: its sha256 is $sum, expected $AFBOX_SHA256 (a truncated or altered copy?). Copy it again; nothing was unpacked."
  tmp=$(mktemp -d "$home/rt/.unpack-XXXXXX") || die "cannot create a directory in $home/rt"
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 130' INT TERM
  boot=$((AFBOX_STUB_BYTES + AFBOX_MANIFEST_BYTES + AFBOX_CHECKSUMS_BYTES + 1))
  tail -c +$boot "$self" | head -c "$AFBOX_BOOT_BYTES" | gzip -dc | tar -xf - -C "$tmp" \
    || die "unpacking into $home/rt failed (disk full?)"
  "$tmp/$AFBOX_PYTHON" -I -S "$tmp/.afbox/unpack.py" "$self" "$tmp" "$rt" || exit 1
  trap - EXIT INT TERM
}

[ -f "$rt/.afbox-unpacked" ] || unpack
exec 9>&-
PATH=$rt/usr/bin:$PATH
AFBOX_BUNDLE=$rt
AFBOX_BUNDLE_FILE=$self
OPENSSL_MODULES=$rt/usr/lib/x86_64-linux-gnu/ossl-modules  # the legacy ciphers xrootd's sss needs
export PATH AFBOX_BUNDLE AFBOX_BUNDLE_FILE OPENSSL_MODULES
unset PYTHONHOME  # another Python's home would send the bundled one's children (kernels, workers) there
exec "$rt/$AFBOX_PYTHON" -I -m afbox "$@"
exit 1

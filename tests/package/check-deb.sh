#!/usr/bin/env bash
# Builds the .deb with CPack from a built tree and checks it: the files a
# user needs are in it, its Depends name the libraries the binaries link,
# and, unpacked into a throwaway root, the binaries run (RPATH) and
# systemd-analyze accepts the units. lintian too, when it is installed.
#   check-deb.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1) ||
  { cat "$tmp/cpack.log"; exit 1; }
deb=$(find "$tmp" -maxdepth 1 -name 'wald_*.deb' | head -1)
[ -n "$deb" ] || { echo "no wald_*.deb made"; cat "$tmp/cpack.log"; exit 1; }
echo "package: $(basename "$deb")"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files"
missing=0
for f in /usr/bin/wald /usr/bin/wal-tail /usr/bin/wal-bench /usr/include/wald/client.h /usr/include/wald/wald.h \
         /usr/lib/systemd/system/wald.service /usr/lib/systemd/system/wald.socket \
         /usr/lib/sysusers.d/wald.conf /usr/lib/tmpfiles.d/wald.conf \
         /usr/share/bash-completion/completions/wald /usr/share/bash-completion/completions/wal-tail; do
  grep -qx "$f" "$tmp/files" || { echo "missing from the package: $f"; missing=1; }
done
for pat in '/usr/lib/(.*/)?libwald\.so\.0.*' '/usr/lib/(.*/)?cmake/wald/waldConfig\.cmake' '/usr/lib/(.*/)?pkgconfig/wald\.pc'; do
  grep -qE "^$pat\$" "$tmp/files" || { echo "missing from the package: $pat"; missing=1; }
done
if grep -q '^/usr/bin/wal-ship$' "$tmp/files"; then
  grep -qx /usr/lib/systemd/system/wal-ship.service "$tmp/files" || { echo "missing: wal-ship.service"; missing=1; }
fi
for page in "$build"/man/*.[138]; do
  [ -e "$page" ] || continue
  name=$(basename "$page")
  grep -qx "/usr/share/man/man${name##*.}/$name.gz" "$tmp/files" || { echo "missing from the package: man page $name.gz"; missing=1; }
done
outside=$(grep -v '^/usr/' "$tmp/files" | grep -v '/$' || true)
[ -z "$outside" ] || { echo "files outside /usr:"; echo "$outside"; missing=1; }
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libuv1 libisal2 libc6; do
  [[ "$depends" == *"$lib"* ]] || { echo "Depends lacks $lib"; missing=1; }
done
[ $missing -eq 0 ] || exit 1
dpkg-deb -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/wald" --version
"$tmp/root/usr/bin/wal-tail" --version >/dev/null
if command -v systemd-analyze >/dev/null; then
  # verify wants ExecStart to exist: point it into the unpacked root.
  sed "s|^ExecStart=/usr/bin/wald|ExecStart=$tmp/root/usr/bin/wald|" "$tmp/root/usr/lib/systemd/system/wald.service" \
    >"$tmp/wald.service"
  cp "$tmp/root/usr/lib/systemd/system/wald.socket" "$tmp/"
  systemd-analyze verify "$tmp/wald.socket" "$tmp/wald.service"
fi
# The maintainer scripts, run against the unpacked root as dpkg would with
# DPKG_ROOT: postinst makes the wald user and group from the package's own
# sysusers.d entry.
mkdir -p "$tmp/control" "$tmp/root/etc"
dpkg-deb -e "$deb" "$tmp/control"
for s in postinst prerm postrm triggers; do
  [ -e "$tmp/control/$s" ] || { echo "the package has no $s"; exit 1; }
done
: >"$tmp/root/etc/passwd"
: >"$tmp/root/etc/group"
DPKG_ROOT="$tmp/root" sh "$tmp/control/postinst" configure
grep -q '^wald:' "$tmp/root/etc/passwd" || { echo "postinst made no wald user"; exit 1; }
grep -q '^wald:' "$tmp/root/etc/group" || { echo "postinst made no wald group"; exit 1; }
DPKG_ROOT="$tmp/root" sh "$tmp/control/prerm" remove
DPKG_ROOT="$tmp/root" sh "$tmp/control/postrm" remove
echo "maintainer scripts: ok (wald user and group made)"
# lintian (when installed; it is not in install-deps): no errors. Its
# warnings are printed; README's packaging paragraph says which remain.
if command -v lintian >/dev/null; then
  lintian --tag-display-limit 0 "$deb" >"$tmp/lintian" 2>&1 || true
  cat "$tmp/lintian"
  if grep -q '^E: ' "$tmp/lintian"; then
    echo "lintian found errors"
    exit 1
  fi
fi
echo "package: ok"

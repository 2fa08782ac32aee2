#!/usr/bin/env bash
# Installs the build tree with DESTDIR into a temporary root, checks the tree
# (binaries, library, headers, CMake package, pkg-config file, systemd units),
# then builds and runs a find_package(wald) consumer and a pkg-config consumer
# against it.
#   run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
DESTDIR="$root" cmake --install "$build" >/dev/null
prefix="$root$(cmake -L -N "$build" | sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p')"
unitdir=$(cmake -L -N "$build" | sed -n 's/^WALD_SYSTEMD_UNITDIR:PATH=//p')
case "$unitdir" in /*) unitdir="$root$unitdir" ;; *) unitdir="$prefix/$unitdir" ;; esac
missing=0
for f in "$prefix/bin/wald" "$prefix/bin/wal-bench" "$prefix/include/wald/client.h" "$prefix/include/wald/wald.h" \
         "$unitdir/wald.service" "$unitdir/wald.socket"; do
  [ -e "$f" ] || { echo "missing from the install tree: ${f#"$root"}"; missing=1; }
done
for pat in 'libwald.so*' 'waldConfig.cmake' 'waldTargets.cmake' 'wald.pc'; do
  [ -n "$(find "$root" -name "$pat" | head -1)" ] || { echo "missing from the install tree: $pat"; missing=1; }
done
[ -n "$(find "$root" -path '*sysusers.d/wald.conf')" ] || { echo "missing: sysusers.d/wald.conf"; missing=1; }
grep -q "^ExecStart=$(cmake -L -N "$build" | sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p')/bin/wald " "$unitdir/wald.service" ||
  { echo "wald.service's ExecStart does not point at the installed binary"; missing=1; }
# Everything lands under the prefix unless a unit directory was given (issue #17).
outside=$(find "$root" -type f | grep -v "^$prefix/" || true)
[ -z "$outside" ] || { echo "installed outside the prefix:"; echo "${outside//$root/}"; missing=1; }
[ $missing -eq 0 ] || exit 1
echo "install tree: ok"
# The installed binaries run as they are: libwald.so is found by RPATH
# ($ORIGIN/../lib...), not by LD_LIBRARY_PATH (issue #17).
"$prefix/bin/wald" --version >/dev/null || { echo "the installed bin/wald does not run"; exit 1; }
echo "installed bin/wald --version: ok"

cmake -S "$src/tests/consumer" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/build" >/dev/null
libdir=$(dirname "$(find "$root" -name 'libwald.so' | head -1)")
LD_LIBRARY_PATH="$libdir" "$tmp/build/consumer"
echo "find_package(wald) consumer: ok"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -o "$tmp/pc" "$src/tests/consumer/pkgconfig_main.c" $(pkg-config --cflags --libs wald)
LD_LIBRARY_PATH="$libdir" "$tmp/pc"
echo "pkg-config consumer: ok"

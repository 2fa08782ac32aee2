#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a
# find_package(wald) consumer and a pkg-config consumer against it.
#   run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/tests/consumer" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/build" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name 'libwald.so' | head -1)")
LD_LIBRARY_PATH="$libdir" "$tmp/build/consumer"
echo "find_package(wald) consumer: ok"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -o "$tmp/pc" "$src/tests/consumer/pkgconfig_main.c" $(pkg-config --cflags --libs wald)
LD_LIBRARY_PATH="$libdir" "$tmp/pc"
echo "pkg-config consumer: ok"

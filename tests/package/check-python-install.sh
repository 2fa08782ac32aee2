#!/usr/bin/env bash
# pip install --no-build-isolation of clients/python into a fresh venv
# (Debian's python3 with its site packages: python3-flatbuffers and
# python3-setuptools; no download), from a copy of the tree so the checkout
# stays clean; then the installed package connects to a real daemon.
#   check-python-install.sh SOURCE_DIR WALD_BINARY
set -euo pipefail
src=$1 wald=$2
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
pid=""
mkdir -p "$tmp/src/clients" "$tmp/src/protocol"
cp -r "$src/clients/python" "$tmp/src/clients/"
cp "$src/protocol/wald.fbs" "$tmp/src/protocol/"
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/pip" install -q --no-build-isolation --no-index "$tmp/src/clients/python"
"$wald" --dir "$tmp/data" --socket "$tmp/wald.sock" --stats-interval 0 2>/dev/null &
pid=$!
cd "$tmp"
WALD_SOCKET="$tmp/wald.sock" "$tmp/venv/bin/python" - <<'PY'
import time
import wald
for _ in range(100):
    try:
        c = wald.connect()
        break
    except wald.DaemonGone:
        time.sleep(0.05)
with c:
    assert c.append_many([b"a", b"b"]) == [1, 2]
    assert [r.payload for r in c.read(1)] == [b"a", b"b"]
print("installed wald package: ok,", wald.__file__)
PY

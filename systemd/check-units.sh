#!/usr/bin/env bash
# Checks the unit files as systemd sees them: `systemd-analyze verify`, and
# the hardening score of `systemd-analyze security --offline=true`, which must
# be at most 1.5 for wald.service and 2.5 for wal-ship.service (which needs
# the network; lower is safer).
#   check-units.sh SOCKET_FILE BUILT_SERVICE_FILE BINARY [BUILT_SERVICE_FILE BINARY ...]
set -euo pipefail
socket=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$socket" "$tmp/wald.socket"
while [ $# -ge 2 ]; do
  service=$1 binary=$2
  shift 2
  name=$(basename "$service")
  # verify checks that ExecStart exists: point it at the binary just built.
  sed "s|^ExecStart=[^ ]*|ExecStart=$binary|" "$service" > "$tmp/$name"
  systemd-analyze verify "$tmp/wald.socket" "$tmp/$name"
  echo "systemd-analyze verify $name: ok"
  out=$(systemd-analyze security --offline=true --no-pager "$tmp/$name")
  score=$(printf '%s\n' "$out" | sed -n "s/.*Overall exposure level for $name: \([0-9.]*\).*/\1/p")
  limit=1.5
  [ "$name" = wal-ship.service ] && limit=2.5
  echo "$name exposure: $score (at most $limit wanted)"
  [ -n "$score" ] && awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s <= l) }'
done

#!/usr/bin/env bash
# Checks the unit files as systemd sees them: `systemd-analyze verify`, and
# the hardening score of `systemd-analyze security --offline=true`, which must
# be at most 1.5 (lower is safer).
#   check-units.sh BUILT_SERVICE_FILE SOCKET_FILE WALD_BINARY
set -euo pipefail
service=$1 socket=$2 binary=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify checks that ExecStart exists: point it at the binary just built.
sed "s|^ExecStart=[^ ]*|ExecStart=$binary|" "$service" > "$tmp/wald.service"
cp "$socket" "$tmp/wald.socket"
systemd-analyze verify "$tmp/wald.socket" "$tmp/wald.service"
echo "systemd-analyze verify: ok"
out=$(systemd-analyze security --offline=true --no-pager "$tmp/wald.service")
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for wald.service: \([0-9.]*\).*/\1/p')
echo "exposure: $score (at most 1.5 wanted)"
[ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 1.5) }'

#!/usr/bin/env bash
# Renders each man page with `man -l` and checks that it has its sections
# and, for a binary's page, the options of today's --help.
#   check-man.sh PAGE...
set -euo pipefail
status=0
for page in "$@"; do
  out=$(MANWIDTH=100 man -l "$page" 2>&1) || { echo "$page: man -l failed"; status=1; continue; }
  for section in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
    grep -q "^$section" <<<"$out" || { echo "$page: no $section section"; status=1; }
  done
  case "$(basename "$page")" in
    wald.8) want="--metrics-listen" ;;
    wal-tail.1) want="--follow" ;;
    wal-bench.1) want="--inflight" ;;
    wal-ship.1) want="--release-delay" ;;
    *) want="subscribe_async" ;;
  esac
  grep -q -- "$want" <<<"$out" || { echo "$page: does not mention $want"; status=1; }
  echo "$(basename "$page"): $(wc -l <<<"$out") lines"
done
exit $status

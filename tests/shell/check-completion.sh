#!/usr/bin/env bash
# Completes wald and wal-tail command lines with completion/wald.bash under
# bash-completion, as an interactive shell would, and checks the candidates.
#   check-completion.sh SCRIPT WALD WAL_TAIL
set -uo pipefail
script=$(realpath "$1") wald=$(realpath "$2") tail=$(realpath "$3")
if [ ! -f /usr/share/bash-completion/bash_completion ]; then
  echo "bash-completion is not installed (scripts/install-deps installs it)"
  exit 1
fi
source /usr/share/bash-completion/bash_completion
source "$script"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/log-a" "$work/log-b"
touch "$work/log-file" "$work/order.bfbs" "$work/notes.txt"

failures=0
# complete WORD...: COMPREPLY for the last word, as a shell would fill it.
complete_line() {
  COMP_WORDS=("$@")
  COMP_CWORD=$(($# - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  case $1 in
    *wal-tail) _wal_tail ;;
    *) _wald ;;
  esac
}
# expect "WANT" WORD...: WANT is the sorted candidates for the last word.
expect() {
  local want=$1 got
  shift
  complete_line "$@"
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | xargs)
  if [ "$got" != "$want" ]; then
    echo "FAIL: '${*:2}' completed to '$got', want '$want'"
    failures=$((failures + 1))
  else
    echo "ok: '${*:2}' -> '$got'"
  fi
}
# has "OPT" WORD...: the candidates include OPT.
has() {
  local opt=$1
  shift
  complete_line "$@"
  if printf '%s\n' "${COMPREPLY[@]}" | grep -qx -- "$opt"; then
    echo "ok: '${*:2}' offers $opt"
  else
    echo "FAIL: '${*:2}' does not offer $opt"
    failures=$((failures + 1))
  fi
}

cd "$work"
# wald: options, option values, subcommands and their own options.
expect "--verify-on-open --version" "$wald" --ve
for opt in --dir --socket --metrics-listen --retain-bytes --max-disk --recycle --config; do has "$opt" "$wald" --; done
expect "critical debug error info off trace warn" "$wald" --log-level ""
expect "all none time" "$wald" --stamp=
expect "hold holds release stats trim" "$wald" ""
expect "hold holds" "$wald" --dir log-a ho
expect "json openmetrics text" "$wald" stats --format ""
expect "--format" "$wald" --socket s.sock stats --fo
expect "" "$wald" --segment-size ""
expect "log-a log-b" "$wald" --dir log-
expect "log-a log-b log-file" "$wald" --socket log-
# wal-tail: options, --format's values, the directory, --schema's .bfbs.
for opt in --follow --from --to --lines --since --schema --verify --stats --version; do has "$opt" "$tail" --; done
expect "json" "$tail" --format j
expect "hex json raw text" "$tail" -n 5 --format ""
expect "log-a log-b" "$tail" log-
expect "" "$tail" -n ""
expect "order.bfbs" "$tail" --schema o
if [ "$failures" -ne 0 ]; then
  echo "$failures completion(s) wrong"
  exit 1
fi

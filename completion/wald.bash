# bash completion for wald and wal-tail. Installed twice, as
# share/bash-completion/completions/wald and .../wal-tail, so that
# bash-completion loads it for either command.
#
# Options, subcommands and the values of options with a fixed set ({a,b,c}
# in the help) are read from the program's own --help, the one that is being
# completed, so the completion never drifts from the binary.

# The long options in `CMD... --help`.
_wald_options() {
  "$@" --help 2>/dev/null | sed -n -E 's/^ {2}(-[A-Za-z],)?(--[A-Za-z0-9-]+).*/\2/p'
}

# The subcommands in `CMD --help`.
_wald_subcommands() {
  "$@" --help 2>/dev/null | sed -n -E '/^Subcommands:/,/^$/s/^ {2}([a-z][a-z-]*) .*/\1/p'
}

# True if option $1 of `CMD... --help` takes a value (a type follows it).
_wald_takes_value() {
  local opt=$1
  shift
  "$@" --help 2>/dev/null | grep -qE -- "^ {2}($opt,--[A-Za-z0-9-]+|(-[A-Za-z],)?$opt) [A-Z]+([: =]|\$)"
}

# The fixed values of option $1 in `CMD... --help`, if it lists them.
_wald_values() {
  local opt=$1
  shift
  "$@" --help 2>/dev/null | sed -n -E "s/^ {2}($opt,--[A-Za-z0-9-]+|(-[A-Za-z],)?$opt) [A-Z]+:\{([^}]*)\}.*/\3/p" |
    tr , ' '
}

# Completes the value of option $1 of `CMD...`; false if it takes none.
_wald_complete_value() {
  local opt=$1
  shift
  _wald_takes_value "$opt" "$@" || return 1
  local values
  values=$(_wald_values "$opt" "$@")
  if [[ -n $values ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$values" -- "$cur")
    return 0
  fi
  case $opt in
    --dir) _filedir -d ;;
    --schema) _filedir bfbs ;;
    --socket | --config) _filedir ;;
    *) ;;  # a number, a size, a time, an address: nothing to offer
  esac
  return 0
}

_wald() {
  local cur prev words cword split
  _init_completion -s || return
  local cmd=("${words[0]}") i
  for ((i = 1; i < cword; i++)); do
    if [[ ${words[i]} != -* ]] && ! _wald_takes_value "${words[i - 1]}" "${words[0]}"; then
      cmd+=("${words[i]}")  # the subcommand
      break
    fi
  done
  if [[ $prev == -* ]] && _wald_complete_value "$prev" "${cmd[@]}"; then
    return
  fi
  $split && return
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_wald_options "${cmd[@]}")" -- "$cur")
    [[ ${COMPREPLY[0]-} == *= ]] && compopt -o nospace
  elif ((${#cmd[@]} == 1)); then
    mapfile -t COMPREPLY < <(compgen -W "$(_wald_subcommands "${cmd[@]}")" -- "$cur")
  fi
}
complete -F _wald wald

_wal_tail() {
  local cur prev words cword split
  _init_completion -s || return
  if [[ $prev == -* ]] && _wald_complete_value "$prev" "${words[0]}"; then
    return
  fi
  $split && return
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_wald_options "${words[0]}")" -- "$cur")
  else
    _filedir -d  # the log directory
  fi
}
complete -F _wal_tail wal-tail

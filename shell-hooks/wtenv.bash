# wtenv shell integration for bash: eval "$(wtenv hook bash)" in ~/.bashrc.
#
# - `wtenv` is a function: `wtenv enter ID` changes this shell's directory.
#   The binary writes the target into the file named by WTENV_CD_FILE; the
#   function reads it and runs `\builtin cd --` (its output is never eval'd).
# - A prompt hook, for shells without direnv: entering a worktree with a
#   wtenv.toml or wtenv.json exports its variables; leaving it gives exactly
#   those back the values they had before (unset if they had none), as
#   direnv does (names in __WTENV_DIFF, old values in __WTENV_SAVED). When
#   the directory did not change since the last prompt, it does nothing;
#   after a `cd` inside the same worktree, the binary reloads only when a
#   file the last load depended on changed (__WTENV_LOADED), so a value set
#   by hand stays. `wtenv reload` loads now, whatever changed (after a
#   failure, once its cause is fixed).

wtenv() {
  local __wtenv_file __wtenv_dir __wtenv_rc=0
  if [[ $# -eq 1 && $1 == reload ]]; then
    unset __WTENV_LOADED
    __wtenv_load
    return
  fi
  # `trust`/`untrust` change what this worktree exports: the next prompt reloads.
  case ${1-} in trust | untrust) __WTENV_PWD= && unset __WTENV_LOADED ;; esac
  # Only `enter` changes the directory, through a file. Any other command
  # is the function's last: a shell leaves the function when its command
  # dies of Ctrl-C or the terminal closes, so a `run` or `up` stopped so
  # leaves no file behind, and its status is the binary's (130).
  case " $* " in
  *" enter "*) ;;
  *)
    __WTENV_EXE__ "$@"
    return
    ;;
  esac
  __wtenv_file=$(\command mktemp "${TMPDIR:-/tmp}/wtenv-cd.XXXXXX") || {
    __WTENV_EXE__ "$@"
    return
  }
  WTENV_CD_FILE=$__wtenv_file __WTENV_EXE__ "$@" || __wtenv_rc=$?
  __wtenv_dir=
  IFS= read -r -d '' __wtenv_dir <"$__wtenv_file" || :
  \command rm -f -- "$__wtenv_file"
  if [[ $__wtenv_rc -eq 0 && -n $__wtenv_dir ]]; then
    \builtin cd -- "$__wtenv_dir" || return
  fi
  return "$__wtenv_rc"
}

# Loads this directory's variables; returns wtenv's status.
__wtenv_load() {
  local __wtenv_out __wtenv_rc=0 __wtenv_direnv=
  # direnv's hook is installed in this shell too: the binary leaves a
  # worktree whose .envrc says `use wtenv` to it (README "Shell
  # integration"). PROMPT_COMMAND is looked at first, so that without
  # direnv no redirection (no system call) is made.
  if [[ ${PROMPT_COMMAND[*]-} == *_direnv_hook* ]] && declare -F _direnv_hook >/dev/null; then
    __wtenv_direnv=1
  fi
  # On failure the binary prints the reason on stderr and, on stdout, the
  # lines that unset what was exported before: nothing is left half-set.
  __wtenv_out=$(__WTENV_DIRENV=$__wtenv_direnv __WTENV_EXE__ env --format bash --hook) || __wtenv_rc=$?
  # Killed by a signal (Ctrl-C while it waited for a lock): it printed
  # nothing, neither loaded nor gave back; this directory is not marked
  # done, so the next prompt loads it. (bash itself leaves the function
  # at such a Ctrl-C, before this line.)
  if [[ $__wtenv_rc -gt 128 && -z $__wtenv_out ]]; then
    return "$__wtenv_rc"
  fi
  __WTENV_PWD=$PWD
  # `|| :`: a line bash cannot run (a name the user made read-only) is
  # said on stderr and ends neither the shell (errexit) nor the lines
  # after it (README "Shell integration").
  eval "$__wtenv_out" || :
  return "$__wtenv_rc"
}

__wtenv_hook() {
  local __wtenv_status=$?
  if [[ ${__WTENV_PWD-} != "$PWD" ]]; then
    __wtenv_load || :
  fi
  # `$?` given back to a PROMPT_COMMAND element added after this one;
  # but bash's errexit ends the shell at a PROMPT_COMMAND that fails, so
  # under `set -e` it returns 0 (README "Shell integration").
  if [[ $- == *e* ]]; then
    return 0
  fi
  return "$__wtenv_status"
}

# Installed last in PROMPT_COMMAND: an element before it, or one that
# prepends itself later (direnv, starship), sees the command's own `$?`
# and PIPESTATUS. Installed once: each element is looked at, a string's
# commands (`;`-separated) too, so sourcing this again adds nothing.
__wtenv_installed=
__wtenv_re='(^|[;&[:space:]])__wtenv_hook($|[;&[:space:]])'
for __wtenv_pc in ${PROMPT_COMMAND[@]+"${PROMPT_COMMAND[@]}"}; do
  if [[ $__wtenv_pc =~ $__wtenv_re ]]; then
    __wtenv_installed=1
  fi
done
if [[ -z $__wtenv_installed ]]; then
  if [[ $(declare -p PROMPT_COMMAND 2>&1) == "declare -a"* ]]; then
    PROMPT_COMMAND+=(__wtenv_hook)
  else
    # A string here (the array case is above). Its trailing blanks are
    # dropped, and a `;` or `&` it ends with is the separator (`;;` is a
    # syntax error): `history -a;` becomes `history -a;__wtenv_hook`.
    # shellcheck disable=SC2128
    __wtenv_pc=${PROMPT_COMMAND-}
    __wtenv_pc=${__wtenv_pc%"${__wtenv_pc##*[![:space:]]}"}
    # shellcheck disable=SC2178
    case $__wtenv_pc in
    '') PROMPT_COMMAND=__wtenv_hook ;;
    *';' | *'&') PROMPT_COMMAND=${__wtenv_pc}__wtenv_hook ;;
    *) PROMPT_COMMAND="$__wtenv_pc;__wtenv_hook" ;;
    esac
  fi
fi
unset __wtenv_installed __wtenv_pc __wtenv_re

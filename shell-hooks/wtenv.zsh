# wtenv shell integration for zsh: eval "$(wtenv hook zsh)" in ~/.zshrc.
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
  # integration").
  if (( ${+precmd_functions} )) && (( ${precmd_functions[(Ie)_direnv_hook]} )); then
    __wtenv_direnv=1
  fi
  # On failure the binary prints the reason on stderr and, on stdout, the
  # lines that unset what was exported before: nothing is left half-set.
  __wtenv_out=$(__WTENV_DIRENV=$__wtenv_direnv __WTENV_EXE__ env --format zsh --hook) || __wtenv_rc=$?
  # Killed by a signal (Ctrl-C while it waited for a lock): it printed
  # nothing, neither loaded nor gave back; this directory is not marked
  # done, so the next prompt loads it.
  if (( __wtenv_rc > 128 )) && [[ -z $__wtenv_out ]]; then
    return "$__wtenv_rc"
  fi
  typeset -g __WTENV_PWD=$PWD
  # A line zsh cannot run (a name the user made read-only, or an array)
  # would stop the whole eval: the binary puts each line in a block of
  # its own (`{ ...; } always { TRY_BLOCK_ERROR=0; }`), so the error is
  # said on stderr and the other lines run; `|| :` keeps err_exit from
  # ending the shell (README "Shell integration").
  eval "$__wtenv_out" || :
  return "$__wtenv_rc"
}

__wtenv_hook() {
  if [[ ${__WTENV_PWD-} != "$PWD" ]]; then
    __wtenv_load || :
  fi
}

autoload -Uz add-zsh-hook
add-zsh-hook precmd __wtenv_hook
add-zsh-hook chpwd __wtenv_hook

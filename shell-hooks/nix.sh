# wtenv for `nix develop`: the worktree's ports in the dev shell.
# In a devShell:  shellHook = ''eval "$(wtenv hook nix)"'';
#
# In a real `nix develop` shell the worktree's ports are held by that shell
# ($$), so `wtenv remove` refuses while it lives; an EXIT trap gives the
# holds back when it exits (ports it allocated are released, reservations
# stay), and the watcher `env --hold` starts gives them back when it ends
# without running the trap (`nix develop --command`, `exec`, a kill). A
# prompt hook or `wtenv env` inside the shell joins its hold. Under direnv
# (`use flake`, nix-direnv), the shellHook runs in direnv's short-lived
# bash (DIRENV_IN_ENVRC=1), whose pid dies at once: there it uses the
# worktree's sticky reservation and watches what `use wtenv` watches (the
# config and the worktree's stamp), exactly like `use wtenv`, and sets no
# trap. On failure the reason is on stderr, nothing of wtenv's is
# exported, and the shell still starts.

if [ "${DIRENV_IN_ENVRC-}" = 1 ]; then
  # Kept on failure: it is then the watch of the config where wtenv looks
  # for it (the worktree's root), as for `use wtenv`, so fixing it reloads.
  __wtenv_out=$(__WTENV_EXE__ env --format bash --direnv </dev/null) || :
else
  __wtenv_out=$(__WTENV_EXE__ env --format bash --hold "$$" </dev/null) || __wtenv_out=
  # Returns the status it was called with: a trap after it sees the
  # shell's exit status.
  __wtenv_release() {
    local __wtenv_rc=$?
    __WTENV_EXE__ release --hold "$1" </dev/null >/dev/null 2>&1 || :
    return "$__wtenv_rc"
  }
  # An EXIT trap the shellHook set before this one still runs, after the
  # release. Its text is taken from what bash itself prints, `trap --
  # 'TEXT' EXIT` (TEXT quoted by bash), and only that is eval'd, to
  # unquote it. A trap set after this one replaces it: the watcher of
  # `env --hold` releases then.
  __wtenv_trap=$(trap -p EXIT)
  case $__wtenv_trap in
  "trap -- '"*"' EXIT")
    __wtenv_trap=${__wtenv_trap#"trap -- "}
    eval "__wtenv_trap=${__wtenv_trap%" EXIT"}"
    ;;
  *) __wtenv_trap= ;;
  esac
  case $__wtenv_trap in
  '__wtenv_release "$$"'*) ;;
  '') __wtenv_trap='__wtenv_release "$$"' ;;
  *) __wtenv_trap='__wtenv_release "$$"'$'\n'$__wtenv_trap ;;
  esac
  trap -- "$__wtenv_trap" EXIT
  unset __wtenv_trap
fi
eval "$__wtenv_out"
unset __wtenv_out

# wtenv for `nix develop`: the worktree's ports in the dev shell.
# In a devShell:  shellHook = ''eval "$(wtenv hook nix)"'';
#
# In a real `nix develop` shell the ports it allocates are held by that
# shell ($$): they are released once it is gone (swept by the next wtenv
# command). Under direnv (`use flake`, nix-direnv), the shellHook runs in
# direnv's short-lived bash (DIRENV_IN_ENVRC=1), whose pid dies at once:
# there it uses the worktree's sticky reservation, exactly like `use wtenv`.
# On failure the reason is on stderr, nothing of wtenv's is exported, and
# the shell still starts.

if [ "${DIRENV_IN_ENVRC-}" = 1 ]; then
  __wtenv_out=$(__WTENV_EXE__ env --format bash </dev/null) || __wtenv_out=
else
  __wtenv_out=$(__WTENV_EXE__ env --format bash --hold "$$" </dev/null) || __wtenv_out=
fi
eval "$__wtenv_out"
unset __wtenv_out

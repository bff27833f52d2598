# wtenv for direnv: defines `use_wtenv`, so an .envrc can say `use wtenv`.
# Install once:  wtenv hook direnv > "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib/wtenv.sh"
# or, per project, in .envrc:  eval "$(wtenv hook direnv)"; use wtenv
#
# Loads the worktree's ports (sticky reservations, allocated on first use),
# and watches the config and one small per-worktree stamp file that changes
# when the worktree's ports change; never the shared registry. It never
# prompts, never blocks on input and starts no background process. On
# failure (a port conflict, a corrupt registry) the reason is on stderr,
# nothing of wtenv's is exported, and the rest of the .envrc still runs.

use_wtenv() {
  local wtenv_exe=__WTENV_EXE__ wtenv_out
  # The path recorded when this file was written may be gone (an upgrade,
  # a garbage-collected Nix store path): fall back to the one on PATH.
  [[ -x $wtenv_exe ]] || wtenv_exe=wtenv
  if wtenv_out=$("$wtenv_exe" env --format bash --direnv </dev/null); then
    eval "$wtenv_out"
  else
    # What wtenv prints on failure: the watch of the config where it looks
    # for it (the worktree's root), so fixing it reloads.
    eval "$wtenv_out"
    log_error "wtenv: the worktree's ports were not loaded (reason above); fix it, then run 'direnv reload'"
  fi
}

# wtenv shell integration for fish: `wtenv hook fish | source` in
# ~/.config/fish/config.fish.
#
# - `wtenv` is a function: `wtenv enter ID` changes this shell's directory.
#   The binary writes the target into the file named by WTENV_CD_FILE; the
#   function reads it and runs `builtin cd --` (its output is never eval'd).
# - A prompt hook, for shells without direnv: entering a worktree with a
#   wtenv.toml or wtenv.json exports its variables; leaving it gives exactly
#   those back the values they had before (unset if they had none), as
#   direnv does (names in __WTENV_DIFF, old values in __WTENV_SAVED). When
#   the directory did not change since the last prompt, it does nothing;
#   after a `cd` inside the same worktree, the binary reloads only when a
#   file the last load depended on changed (__WTENV_LOADED), so a value set
#   by hand stays. `wtenv reload` loads now, whatever changed (after a
#   failure, once its cause is fixed).

function wtenv --description 'wtenv, able to change the directory (wtenv enter)'
    if test (count $argv) -eq 1; and test "$argv[1]" = reload
        set -e __WTENV_LOADED
        __wtenv_load
        return
    end
    # `trust`/`untrust` change what this worktree exports: the next prompt reloads.
    if contains -- "$argv[1]" trust untrust
        set -g __WTENV_PWD ''
        set -e __WTENV_LOADED
    end
    # Only `enter` changes the directory, through a file. Any other command
    # is the function's last: a `run` or `up` stopped by Ctrl-C or a closed
    # terminal leaves no file behind.
    if not contains -- enter $argv
        __WTENV_EXE__ $argv
        return $status
    end
    set -l __wtenv_tmp /tmp
    set -q TMPDIR[1]; and test -n "$TMPDIR"; and set __wtenv_tmp $TMPDIR
    set -l __wtenv_file (command mktemp "$__wtenv_tmp/wtenv-cd.XXXXXX")
    or begin
        __WTENV_EXE__ $argv
        return
    end
    WTENV_CD_FILE=$__wtenv_file __WTENV_EXE__ $argv
    set -l __wtenv_rc $status
    set -l __wtenv_dir (string collect --no-trim-newlines <$__wtenv_file)
    command rm -f -- $__wtenv_file
    if test $__wtenv_rc -eq 0; and test -n "$__wtenv_dir"
        builtin cd -- $__wtenv_dir; or return
    end
    return $__wtenv_rc
end

# Loads this directory's variables; returns wtenv's status.
function __wtenv_load
    # direnv's hook is installed in this shell too: the binary leaves a
    # worktree whose .envrc says `use wtenv` to it (README "Shell
    # integration").
    set -l __wtenv_direnv
    functions -q __direnv_export_eval; and set __wtenv_direnv 1
    # On failure the binary prints the reason on stderr and, on stdout,
    # the lines that unset what was exported before: nothing is left
    # half-set.
    __WTENV_DIRENV=$__wtenv_direnv __WTENV_EXE__ env --format fish --hook | source
    set -l __wtenv_rc $pipestatus[1]
    # Killed by a signal (Ctrl-C while it waited for a lock): it neither
    # loaded nor gave back; this directory is not marked done, so the
    # next prompt loads it.
    if test $__wtenv_rc -le 128
        set -g __WTENV_PWD $PWD
    end
    return $__wtenv_rc
end

function __wtenv_hook --on-variable PWD --on-event fish_prompt
    if test "$__WTENV_PWD" != "$PWD"
        __wtenv_load
    end
end

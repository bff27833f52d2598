//! The names no config may export, trusted or not, grouped by why: the one
//! list of them ([`REFUSED`], [`REFUSED_PREFIXES`]) and the reason an
//! error gives ([`refused_name`]). The README lists each group with its
//! reason ("Trust"); a test holds it to this list.

use super::env::is_env_name;

/// A group of names refused for one reason.
#[derive(Debug)]
pub struct Refused {
    pub names: &'static [&'static str],
    /// Why, as the error says it after "NAME is refused: ".
    pub why: &'static str,
}

/// Every name refused, by group. Each one runs code or changes what runs
/// (the shell, the dynamic loader, bash's arithmetic) the moment a shell
/// enters the worktree,
/// acts on the user's shell or files by being set, or is a name a shell
/// cannot set at all, which would leave the prompt hook's `eval` half done
/// (zsh stops at the first line it cannot run). Prefixes are in
/// [`REFUSED_PREFIXES`].
pub const REFUSED: &[Refused] = &[
    Refused {
        // bash's and POSIX's, then their zsh and fish equivalents: zsh's
        // arrays tied to PATH, CDPATH and its function and module paths,
        // its prompts (PROMPT is PS1, run with prompt_subst) and the
        // commands it runs for a redirection alone; fish's own PATH
        // entries, and where it loads functions and completions from,
        // and its key bindings (interactive fish runs the function
        // `fish_key_bindings` names when it changes: any function, one
        // of the user's included; a name that is no function runs
        // nothing); mail messages, which bash and zsh expand (`$(...)` runs).
        names: &[
            "PATH",
            "HOME",
            "SHELL",
            "IFS",
            "ENV",
            "BASH_ENV",
            "PROMPT_COMMAND",
            "PS0",
            "PS1",
            "PS2",
            "PS3",
            "PS4",
            "SHELLOPTS",
            "BASHOPTS",
            "CDPATH",
            "ZDOTDIR",
            "PWD",
            "MAILPATH",
            "path",
            "cdpath",
            "fpath",
            "FPATH",
            "module_path",
            "MODULE_PATH",
            "prompt",
            "PROMPT",
            "PROMPT2",
            "PROMPT3",
            "PROMPT4",
            "RPROMPT",
            "RPROMPT2",
            "RPS1",
            "RPS2",
            "SPROMPT",
            "PROMPT_EOL_MARK",
            "NULLCMD",
            "READNULLCMD",
            "fish_user_paths",
            "fish_function_path",
            "fish_complete_path",
            "fish_key_bindings",
        ],
        why: "it controls the shell, so a repository setting it would run code on `cd`",
    },
    Refused {
        // Found by setting every variable name of bash, zsh and fish to
        // `a[$(touch CANARY)]` in each shell, `-c` and interactive (see
        // the commit that added them): bash gives RANDOM, SRANDOM, OPTIND
        // and HISTCMD the integer attribute, so a value assigned to one is
        // evaluated as arithmetic at once, and evaluates MAILCHECK as
        // arithmetic at an interactive prompt; arithmetic expands a
        // subscript, `$(...)` included. zsh's and fish's ran nothing.
        names: &["RANDOM", "SRANDOM", "OPTIND", "HISTCMD", "MAILCHECK"],
        why: "bash evaluates it as arithmetic, and a subscript there runs `$(...)` (`a[$(cmd)]`), so a repository setting it would run code on `cd`",
    },
    Refused {
        names: &["UID", "EUID", "GID", "EGID", "USERNAME"],
        why: "zsh changes the shell's user or group when it is set, so a repository setting it would switch a root shell to another user",
    },
    Refused {
        // bash truncates the history file when HISTFILESIZE is set; the
        // shell writes its history into HISTFILE; bash and zsh drop the
        // history they hold beyond HISTSIZE when it is set (0: all of
        // it), and zsh writes at most SAVEHIST lines to its file; TMOUT
        // ends an idle shell; bash closes the descriptor BASH_XTRACEFD
        // named when it is unset again (2 is stderr); GLOBIGNORE turns on
        // dotglob and changes what `rm *` removes.
        names: &[
            "HISTFILE",
            "HISTFILESIZE",
            "HISTSIZE",
            "SAVEHIST",
            "TMOUT",
            "BASH_XTRACEFD",
            "GLOBIGNORE",
        ],
        why: "the shell acts on it as soon as it is set (its history file, an idle shell's exit, a closed descriptor, what a glob matches), so a repository setting it would change your shell and files on `cd`",
    },
    Refused {
        // `zsh -c 'typeset +'` with every module zsh ships loaded: the
        // read-only ones and the arrays and hashes an `export NAME=value`
        // stops the prompt hook's `eval` on (HISTCMD, one of them, is in
        // bash's arithmetic group above); then fish's read-only ones.
        names: &[
            "ARGC",
            "LINENO",
            "PPID",
            "TTYIDLE",
            "ZSH_EVAL_CONTEXT",
            "ZSH_SUBSHELL",
            "ZFTP_SESSION",
            "EPOCHREALTIME",
            "EPOCHSECONDS",
            "ZCURSES_COLORS",
            "ZCURSES_COLOR_PAIRS",
            "aliases",
            "argv",
            "builtins",
            "commands",
            "dirstack",
            "dis_aliases",
            "dis_builtins",
            "dis_functions",
            "dis_functions_source",
            "dis_galiases",
            "dis_patchars",
            "dis_reswords",
            "dis_saliases",
            "epochtime",
            "errnos",
            "fignore",
            "funcfiletrace",
            "funcsourcetrace",
            "funcstack",
            "functions",
            "functions_source",
            "functrace",
            "galiases",
            "history",
            "historywords",
            "jobdirs",
            "jobstates",
            "jobtexts",
            "keymaps",
            "langinfo",
            "mailpath",
            "manpath",
            "mapfile",
            "modules",
            "nameddirs",
            "options",
            "parameters",
            "patchars",
            "pipestatus",
            "psvar",
            "reswords",
            "saliases",
            "signals",
            "status",
            "sysparams",
            "termcap",
            "terminfo",
            "userdirs",
            "usergroups",
            "watch",
            "widgets",
            "zcurses_attrs",
            "zcurses_colors",
            "zcurses_keycodes",
            "zcurses_windows",
            "zgdbm_tied",
            "zle_bracketed_paste",
            "zsh_eval_context",
            "zsh_scheduled_events",
            "FISH_VERSION",
            "SHLVL",
            "fish_kill_signal",
            "fish_killring",
            "fish_pid",
            "hostname",
            "status_generation",
            "umask",
            "version",
        ],
        why: "it is a special parameter of zsh or fish, which the shell will not set (read-only, or an array), so the prompt hook could not export it",
    },
];

/// Prefixes of refused names: bash's exported functions, the loaders of
/// Linux and macOS, wtenv's own variables, and its shell hooks' (the hook
/// trusts `__WTENV_DIFF` and `__WTENV_SAVED` to say what it exported and
/// what to restore: a config setting them could make it restore any
/// `PATH`).
pub const REFUSED_PREFIXES: &[&str] = &[
    "BASH_FUNC_",
    "LD_",
    "DYLD_",
    "WTENV_",
    "__WTENV_",
    "__wtenv_",
];

/// Why `name` may not be exported by a config, if it may not.
pub fn refused_name(name: &str) -> Option<String> {
    if !is_env_name(name) {
        return Some(format!(
            "{name:?} is not a valid environment variable name (ASCII letters, digits, '_', not starting with a digit)"
        ));
    }
    if let Some(group) = REFUSED.iter().find(|g| g.names.contains(&name)) {
        return Some(format!("{name} is refused: {}", group.why));
    }
    REFUSED_PREFIXES
        .iter()
        .find(|p| name.starts_with(*p))
        .map(|p| match *p {
            "WTENV_" => format!("{name} is refused: WTENV_* variables belong to wtenv itself"),
            "__WTENV_" | "__wtenv_" => format!(
                "{name} is refused: {p}* variables belong to wtenv's shell hooks, which would restore what they say"
            ),
            _ => format!(
                "{name} is refused: {p}* variables control the shell or the dynamic loader, so a repository setting one would run code on `cd`"
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_in_one_group_once() {
        let mut all: Vec<&str> = REFUSED
            .iter()
            .flat_map(|g| g.names.iter().copied())
            .collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "a name listed twice");
        for name in all {
            assert!(is_env_name(name), "{name}");
            assert!(
                !REFUSED_PREFIXES.iter().any(|p| name.starts_with(p)),
                "{name}"
            );
        }
    }

    #[test]
    fn each_group_says_its_own_reason() {
        for (name, why) in [
            ("PATH", "controls the shell"),
            ("fish_user_paths", "controls the shell"),
            ("fish_key_bindings", "controls the shell"),
            ("PROMPT", "controls the shell"),
            ("RANDOM", "evaluates it as arithmetic"),
            ("MAILCHECK", "evaluates it as arithmetic"),
            ("UID", "switch a root shell"),
            ("HISTFILE", "acts on it as soon as it is set"),
            ("HISTSIZE", "acts on it as soon as it is set"),
            ("SAVEHIST", "acts on it as soon as it is set"),
            ("argv", "special parameter of zsh or fish"),
            ("status", "special parameter of zsh or fish"),
            ("LD_PRELOAD", "dynamic loader"),
        ] {
            let reason = refused_name(name).unwrap();
            assert!(
                reason.starts_with(&format!("{name} is refused: ")),
                "{reason}"
            );
            assert!(reason.contains(why), "{reason}");
        }
        // Gated by trust, not refused.
        for name in ["NODE_OPTIONS", "MAIL", "SECONDS", "PATHS", "Path", "PORT"] {
            assert_eq!(refused_name(name), None, "{name}");
        }
    }
}

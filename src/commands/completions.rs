//! `wtenv completions SHELL`: clap's completion script on stdout, without
//! the hidden subcommands and flags (`--help` hides them; clap_complete's
//! scripts would offer them, its generators list every item of the tree);
//! fish's with the values of positional arguments that have fixed
//! choices, which bash's and zsh's offer and clap_complete's fish
//! generator leaves out; bash's and fish's offering nothing after `help
//! COMMAND`, where they offered file names.

use clap::builder::ArgGroup;
use clap::{Command, CommandFactory};

use crate::commands::Cli;
use crate::error::Result;
use crate::exit::Outcome;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> Result<Outcome> {
    output::stdout(&script(args.shell))?;
    Ok(Outcome::SUCCESS)
}

/// The completion script for `shell`.
pub fn script(shell: clap_complete::Shell) -> String {
    let mut cmd = shown(&Cli::command());
    let mut buf = Vec::new();
    // `generate` builds `cmd`: global arguments are then in every
    // subcommand, as the fish lines below need them.
    clap_complete::generate(shell, &mut cmd, "wtenv", &mut buf);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if shell == clap_complete::Shell::Fish {
        text = fish_mended(&text);
        text.push_str(&fish_after_help(&cmd));
        text.push_str(&fish_positionals(&cmd));
    }
    if shell == clap_complete::Shell::Bash {
        text = text.replacen(BASH_DISPATCH, BASH_DISPATCH_MENDED, 1);
    }
    text
}

/// Where clap_complete's bash function, which has found the command the
/// words before the cursor name (`wtenv__subcmd__help__subcmd__list` for
/// `wtenv help list`), completes for it.
const BASH_DISPATCH: &str = "\n    case \"${cmd}\" in\n";

/// [`BASH_DISPATCH`], first turning off, after `help COMMAND`, the
/// fallback to file names (`complete -o default`, which the script sets
/// for the words it offers nothing for: `run -- CMD`'s, `export`'s DIR):
/// nothing follows a command there (wtenv's commands have no subcommands
/// of their own). `compopt` is bash 4's: older ones keep offering files.
const BASH_DISPATCH_MENDED: &str = "
    # After `help COMMAND` nothing follows, file names included.
    if [[ \"${cmd}\" == wtenv__subcmd__help__subcmd__* ]]; then
        compopt +o default +o bashdefault 2>/dev/null
    fi
    case \"${cmd}\" in
";

/// The generated `__fish_wtenv_needs_command`'s parse of the words before
/// the command, which fails on a last global option still waiting for its
/// value (`wtenv --color `): no completion then held, and fish offered
/// files instead of `--color`'s values.
const FISH_NEEDS_COMMAND_PARSE: &str =
    "    argparse -s (__fish_wtenv_global_optspecs) -- $cmd 2>/dev/null\n    or return\n";

/// [`FISH_NEEDS_COMMAND_PARSE`], where a failed parse whose last word is
/// a global option taking a value (a long one: `--color`) is parsed again
/// without it: with no command before it, the command is still needed,
/// and `--color`'s own line offers its values.
const FISH_NEEDS_COMMAND_MENDED: &str = "    argparse -s (__fish_wtenv_global_optspecs) -- $cmd 2>/dev/null
    or begin
        # The last word a global option waiting for its value (`wtenv --color `).
        set -l takes_value (__fish_wtenv_global_optspecs | string replace -rf -- '^(?:./)?(..+)=$' '--$1')
        set -q cmd[1]; and contains -- $cmd[-1] $takes_value
        or return 1
        set -e cmd[-1]
        argparse -s (__fish_wtenv_global_optspecs) -- $cmd 2>/dev/null
        and not set -q argv[1]
    end
    or return
";

/// clap_complete's fish script, mended where it offers files for what has
/// values: after a global option such as `--color` before the command
/// ([`FISH_NEEDS_COMMAND_MENDED`]), and after `help`, whose lines offering
/// the commands held only while no command was seen, `help` among them
/// (itself seen, so never). A test holds each mend applied, so that a
/// new clap_complete that writes these lines otherwise is noticed.
fn fish_mended(text: &str) -> String {
    let text = text.replacen(FISH_NEEDS_COMMAND_PARSE, FISH_NEEDS_COMMAND_MENDED, 1);
    text.lines()
        .map(|line| {
            let help =
                "-n \"__fish_wtenv_using_subcommand help; and not __fish_seen_subcommand_from ";
            match line.split_once(help) {
                Some((head, rest)) => match rest.split_once(" help\" ") {
                    Some((seen, tail)) => format!("{head}{help}{seen}\" {tail}\n"),
                    None => format!("{line}\n"),
                },
                None => format!("{line}\n"),
            }
        })
        .collect()
}

/// fish's line that offers no file names after `help COMMAND` (fish
/// offers them where no line says `-f`): nothing follows a command
/// there, or, for one with subcommands, those, which clap_complete's
/// lines for `help` offer. `help` itself is not among the commands seen:
/// the word `help` is (see [`fish_mended`]). Empty without a `help`
/// subcommand.
fn fish_after_help(cmd: &Command) -> String {
    let Some(help) = cmd.find_subcommand("help") else {
        return String::new();
    };
    let names: Vec<&str> = help
        .get_subcommands()
        .map(Command::get_name)
        .filter(|&name| name != "help")
        .collect();
    let condition = format!(
        "__fish_wtenv_using_subcommand help; and __fish_seen_subcommand_from {}",
        names.join(" ")
    );
    format!(
        "complete -c wtenv -n {} -f\n",
        crate::shell::quote_fish(&condition)
    )
}

/// Whether the word being completed is the positional argument number
/// `$argv[1]` (from 0) of the subcommand, whose options are `$argv[2..]`
/// (argparse's optspecs): the options before the subcommand are read
/// past as the generated `__fish_wtenv_needs_command` does, then the
/// subcommand's own, with their values.
const FISH_POSITIONAL_AT: &str = "
function __fish_wtenv_positional_at
    set -l at $argv[1]
    set -l specs $argv[2..-1]
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_wtenv_global_optspecs) -- $cmd 2>/dev/null
    or return 1
    set -e argv[1]
    argparse $specs -- $argv 2>/dev/null
    or return 1
    test (count $argv) -eq $at
end
";

/// fish's lines offering the values of each subcommand's positional
/// arguments that have fixed choices (`hook TARGET`, `completions
/// SHELL`, `export FORMAT`), as bash's and zsh's scripts do: clap_complete's
/// fish generator completes options only. Made from the built command
/// (`cmd`), as the rest of the script is, at the argument's position
/// only, so that a later positional (`export FORMAT DIR`) still
/// completes files. Empty when no subcommand has such an argument.
fn fish_positionals(cmd: &Command) -> String {
    use crate::shell::quote_fish;
    let mut lines = String::new();
    for sub in cmd.get_subcommands() {
        let mut positionals: Vec<_> = sub.get_positionals().collect();
        positionals.sort_by_key(|a| a.get_index());
        let specs: Vec<String> = sub.get_arguments().filter_map(optspec).collect();
        for (at, arg) in positionals.iter().enumerate() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| {
                    let help = v.get_help().map(|h| h.to_string()).unwrap_or_default();
                    format!("{}\\t{}", quote_fish(v.get_name()), quote_fish(&help))
                })
                .collect();
            if values.is_empty() {
                continue;
            }
            let names = sub.get_name_and_visible_aliases();
            let condition = format!(
                "__fish_wtenv_using_subcommand {}; and __fish_wtenv_positional_at {at} {}",
                names.join(" "),
                specs.join(" ")
            );
            lines.push_str(&format!(
                "complete -c wtenv -n {} -f -a {}\n",
                quote_fish(&condition),
                quote_fish(&values.join(" "))
            ));
        }
    }
    if lines.is_empty() {
        return lines;
    }
    format!("{FISH_POSITIONAL_AT}{lines}")
}

/// An option as fish's `argparse` names it: `v/verbose`, `registry=` (it
/// takes a value); `None` for a positional argument.
fn optspec(arg: &clap::Arg) -> Option<String> {
    let mut spec = match (arg.get_short(), arg.get_long()) {
        (Some(short), Some(long)) => format!("{short}/{long}"),
        (Some(short), None) => short.to_string(),
        (None, Some(long)) => long.to_owned(),
        (None, None) => return None,
    };
    if arg.get_num_args().is_some_and(|n| n.takes_values()) {
        spec.push('=');
    }
    Some(spec)
}

/// `cmd` as `--help` shows it: the same command without its hidden
/// subcommands and arguments, at every level. clap cannot take an item
/// out of a command, so the command is made anew with what a completion
/// script reads of it (names, helps, aliases, arguments, the settings that
/// shape the help flag, the version flag and the help subcommand). Called
/// before the tree is built: global arguments are still only where they
/// are declared, and are propagated when the generator builds it.
fn shown(cmd: &Command) -> Command {
    let args: Vec<_> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .cloned()
        .collect();
    // Each derived `Args` struct is a group of its fields: keep the groups,
    // less the arguments taken out (a group naming one would not build).
    let groups: Vec<_> = cmd
        .get_groups()
        .filter_map(|g| {
            let members: Vec<_> = g
                .get_args()
                .filter(|id| args.iter().any(|a| a.get_id() == *id))
                .cloned()
                .collect();
            let mut g = g.clone();
            (!members.is_empty()).then(|| {
                ArgGroup::new(g.get_id().clone())
                    .args(members)
                    .multiple(g.is_multiple())
                    .required(g.is_required_set())
            })
        })
        .collect();
    let mut out = Command::new(cmd.get_name().to_owned())
        .visible_aliases(cmd.get_visible_aliases().map(str::to_owned))
        .args(args)
        .groups(groups)
        .subcommands(
            cmd.get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(shown),
        )
        .subcommand_required(cmd.is_subcommand_required_set())
        .arg_required_else_help(cmd.is_arg_required_else_help_set())
        .allow_external_subcommands(cmd.is_allow_external_subcommands_set())
        .args_conflicts_with_subcommands(cmd.is_args_conflicts_with_subcommands_set())
        .subcommand_negates_reqs(cmd.is_subcommand_negates_reqs_set())
        .subcommand_precedence_over_arg(cmd.is_subcommand_precedence_over_arg_set())
        .allow_missing_positional(cmd.is_allow_missing_positional_set())
        .disable_help_flag(cmd.is_disable_help_flag_set())
        .disable_help_subcommand(cmd.is_disable_help_subcommand_set())
        .disable_version_flag(cmd.is_disable_version_flag_set())
        .propagate_version(cmd.is_propagate_version_set());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        out = out.long_about(about.clone());
    }
    if let Some(v) = cmd.get_version() {
        out = out.version(v.to_owned());
    }
    if let Some(v) = cmd.get_long_version() {
        out = out.long_version(v.to_owned());
    }
    if let Some(name) = cmd.get_subcommand_value_name() {
        out = out.subcommand_value_name(name.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use clap_complete::Shell;

    use super::*;

    const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

    fn generated(shell: Shell, mut cmd: Command) -> String {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "wtenv", &mut buf);
        String::from_utf8(buf).unwrap()
    }

    /// The hidden subcommands and flags (their long names) of the tree.
    fn hidden(cmd: &Command, commands: &mut Vec<String>, flags: &mut Vec<String>) {
        for a in cmd.get_arguments().filter(|a| a.is_hide_set()) {
            flags.push(a.get_long().expect("hidden flags are long").to_owned());
        }
        for c in cmd.get_subcommands() {
            if c.is_hide_set() {
                commands.push(c.get_name().to_owned());
            }
            hidden(c, commands, flags);
        }
    }

    /// Whether `text` offers the flag `--long`, as each shell's script
    /// spells one (`--log` is not `--log-limit`).
    fn offers(shell: Shell, text: &str, long: &str) -> bool {
        match shell {
            Shell::Bash => text
                .split(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == '|')
                .any(|word| word == format!("--{long}")),
            Shell::Zsh => {
                text.contains(&format!("'--{long}=[")) || text.contains(&format!("'--{long}["))
            }
            Shell::Fish => text.lines().any(|line| {
                line.contains(&format!(" -l {long} ")) || line.ends_with(&format!(" -l {long}"))
            }),
            _ => unreachable!(),
        }
    }

    /// Whether `text` offers the subcommand `name`, as each shell's script
    /// spells one (the name alone is in every `wtenv`, for `env`).
    fn offers_command(shell: Shell, text: &str, name: &str) -> bool {
        match shell {
            Shell::Bash => text.contains(&format!("wtenv,{name})")),
            Shell::Zsh => text.contains(&format!("\n'{name}:")),
            Shell::Fish => text.contains(&format!(" -a \"{name}\" ")),
            _ => unreachable!(),
        }
    }

    #[test]
    fn scripts_offer_no_hidden_subcommand_or_flag_and_every_shown_one() {
        let cli = Cli::command();
        let (mut commands, mut flags) = (Vec::new(), Vec::new());
        hidden(&cli, &mut commands, &mut flags);
        assert_eq!(commands, ["__listen-exec", "__watch"]);
        assert_eq!(flags, ["unit", "log", "log-limit", "setsid", "await-start"]);
        for shell in SHELLS {
            let text = script(shell);
            for command in &commands {
                assert!(!text.contains(command.as_str()), "{shell}: {command}");
            }
            assert!(!text.contains("Internal:"), "{shell}");
            for long in &flags {
                // `up` has a --log-limit of its own, shown.
                if long != "log-limit" {
                    assert!(!offers(shell, &text, long), "{shell}: --{long} offered");
                }
            }
            for c in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
                let name = c.get_name();
                assert!(offers_command(shell, &text, name), "{shell}: {name}");
            }
            for long in ["grace", "skip-occupied", "registry", "detach", "log-limit"] {
                assert!(offers(shell, &text, long), "{shell}: --{long} not offered");
            }
        }
    }

    /// Each of [`fish_mended`]'s mends applies to the script clap_complete
    /// writes: the parse it replaces is there once, and every line
    /// offering a command after `help` lists `help` among the seen ones.
    #[test]
    fn the_fish_mends_apply_to_the_generated_script() {
        let mut cmd = shown(&Cli::command());
        let raw = generated(Shell::Fish, cmd.clone());
        assert_eq!(raw.matches(FISH_NEEDS_COMMAND_PARSE).count(), 1, "{raw}");
        let mended = script(Shell::Fish);
        assert!(mended.contains(FISH_NEEDS_COMMAND_MENDED), "{mended}");
        cmd.build();
        let after_help: Vec<&str> = mended
            .lines()
            .filter(|l| l.contains("__fish_wtenv_using_subcommand help; and not "))
            .collect();
        let shown_commands = cmd.get_subcommands().count();
        assert_eq!(after_help.len(), shown_commands, "{mended}");
        for line in after_help {
            assert!(!line.contains(" help\" "), "{line}");
        }
    }

    /// The bash mend ([`BASH_DISPATCH_MENDED`]) applies to the script
    /// clap_complete writes: its dispatch is there once, and the commands
    /// after `help` are named as the mend expects.
    #[test]
    fn the_bash_mend_applies_to_the_generated_script() {
        let raw = generated(Shell::Bash, shown(&Cli::command()));
        assert_eq!(raw.matches(BASH_DISPATCH).count(), 1, "{raw}");
        assert!(
            raw.contains("\n        wtenv__subcmd__help__subcmd__list)\n"),
            "{raw}"
        );
        let mended = script(Shell::Bash);
        assert_eq!(mended.matches(BASH_DISPATCH_MENDED).count(), 1, "{mended}");
    }

    /// fish's lines for positionals with fixed choices are made for the
    /// subcommands of `wtenv` (the only level `fish_positionals` walks):
    /// a subcommand of a subcommand with one would be left out.
    #[test]
    fn positionals_with_fixed_choices_are_at_the_first_level_only() {
        fn deeper(cmd: &Command, depth: usize, found: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                if depth > 0
                    && sub
                        .get_positionals()
                        .any(|a| !a.get_possible_values().is_empty())
                {
                    found.push(sub.get_name().to_owned());
                }
                deeper(sub, depth + 1, found);
            }
        }
        let mut cli = shown(&Cli::command());
        cli.build();
        let mut found = Vec::new();
        deeper(&cli, 0, &mut found);
        assert_eq!(found, Vec::<String>::new());
        let fish = fish_positionals(&cli);
        for sub in ["hook", "export", "completions"] {
            assert!(
                fish.contains(&format!("'__fish_wtenv_using_subcommand {sub}; and ")),
                "{sub}: {fish}"
            );
        }
    }

    /// `run --log-limit` is hidden, `up --log-limit` is not: the one is
    /// offered after `up` only.
    #[test]
    fn a_flag_hidden_in_one_subcommand_stays_in_another() {
        let text = script(Shell::Fish);
        let with = |sub: &str| {
            text.lines().any(|l| {
                l.contains(&format!("__fish_wtenv_using_subcommand {sub}\""))
                    && l.contains(" -l log-limit")
            })
        };
        assert!(with("up") && !with("run"), "{text}");
    }

    /// A command with nothing hidden is made anew as it was: the same
    /// script, byte for byte, for each subcommand of wtenv's that has no
    /// hidden item (run's flags, `__listen-exec` and `__watch` are the only ones).
    #[test]
    fn a_command_with_nothing_hidden_gives_the_same_script() {
        let cli = Cli::command();
        let mut checked = 0;
        for c in cli.get_subcommands() {
            let (mut commands, mut flags) = (Vec::new(), Vec::new());
            hidden(c, &mut commands, &mut flags);
            if c.is_hide_set() || !commands.is_empty() || !flags.is_empty() {
                continue;
            }
            for shell in SHELLS {
                assert_eq!(
                    generated(shell, shown(c)),
                    generated(shell, c.clone()),
                    "{shell}: {}",
                    c.get_name()
                );
            }
            checked += 1;
        }
        assert!(checked > 10, "{checked}");
    }
}

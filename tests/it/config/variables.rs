//! Variable names: not valid, exported twice, made from a service's name
//! (the hint says so), or refused because they run code on `cd`.

use super::assert_refused;
use crate::support::{TestEnv, run};

#[test]
fn an_invalid_env_var_name_is_exit_1_naming_the_key() {
    assert_refused(
        "[services.web]\nenv = [\"PORT\", \"WEB-PORT\"]\n",
        "services.web.env",
        "not a valid environment variable name",
    );
    assert_refused(
        "[services.web]\n[env]\n\"API URL\" = \"http://localhost:{port.web}\"\n",
        "env.\"API URL\"",
        "not a valid environment variable name",
    );
    // `é` is a letter, but not one a name may hold: the rule says ASCII.
    assert_refused(
        "[services.web]\n[env]\n\"CAF\u{c9}\" = \"x\"\n",
        "env.\"CAF\u{c9}\"",
        "not a valid environment variable name (ASCII letters, digits, '_', not starting with a digit)",
    );
}

#[test]
fn duplicate_env_names_across_services_are_exit_1_naming_the_key() {
    assert_refused(
        "[services.api]\nenv = \"PORT\"\n[services.web]\nenv = [\"WEB_PORT\", \"PORT\"]\n",
        "services.web.env",
        "PORT is also exported by services.api",
    );
}

/// A service whose name makes no variable a shell can export (`1web`
/// gives `1WEB_PORT`, `ld` gives `LD_PORT`): the error names
/// `services.1web.env`, a key the file does not have, and the hint was
/// "fix the file". It says where the name comes from and what to set,
/// in the syntax of the file in use.
#[test]
fn a_variable_made_from_a_service_name_says_so_in_the_hint() {
    let t = TestEnv::new();
    std::fs::remove_file(t.repo.join("wtenv.toml")).unwrap();
    for (file, text, hint) in [
        (
            "wtenv.toml",
            "[services.1web]\n",
            "hint: 1WEB_PORT is made from the service's name: rename the service, or name its variable: set [services.1web] env = [\"NAME\"] in wtenv.toml\n",
        ),
        (
            "wtenv.json",
            r#"{"services": {"ld": {}}}"#,
            "hint: LD_PORT is made from the service's name: rename the service, or name its variable: set \"services\": {\"ld\": {\"env\": [\"NAME\"]}} in wtenv.json\n",
        ),
    ] {
        let path = t.repo.join(file);
        std::fs::write(&path, text).unwrap();
        let out = run(&mut t.wtenv(&["env"]));
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr
                .contains(&format!("invalid config {}: services.", path.display())),
            "{out}"
        );
        assert!(out.stderr.contains(hint), "{file}: want {hint:?}: {out}");
        std::fs::remove_file(&path).unwrap();
    }
    assert!(t.allocations().is_empty());
}

/// Names that run code on `cd` (or steer wtenv) are refused in every
/// config, trusted or not, in `[env]` and in a service's `env`.
#[test]
fn refused_variable_names_are_exit_1_naming_the_key() {
    for name in [
        "PATH",
        "PROMPT_COMMAND",
        "BASH_ENV",
        "LD_PRELOAD",
        "WTENV_STATE_DIR",
        "BASH_FUNC_ls",
        "PS1",
        // Set on `cd`, HISTSIZE=0 dropped everything typed before it
        // (bash and zsh), and SAVEHIST cuts zsh's history file.
        "HISTSIZE",
        "SAVEHIST",
    ] {
        assert_refused(
            &format!("[services.web]\n[env]\n{name:?} = \"x\"\n"),
            &format!("env.{name}"),
            "is refused",
        );
        assert_refused(
            &format!("[services.web]\nenv = [\"WEB_PORT\", {name:?}]\n"),
            "services.web.env",
            "is refused",
        );
    }
    assert_refused("[env]\nX = \"a\\u0000b\"\n", "env.X", "NUL byte");
    // A name that is not a bare key is quoted in the key: `env.A.B` read
    // as key `B` of a table `env.A`.
    assert_refused(
        "[env]\n\"A.B\" = \"x\"\n",
        "env.\"A.B\"",
        "is not a valid environment variable name",
    );
}

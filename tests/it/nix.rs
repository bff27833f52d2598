//! `wtenv hook nix` in a real `nix develop`, the `lib` helper of
//! `flake.nix`, and the flake itself (nixpkgs cannot be fetched on the
//! test machines, so the fixtures are flakes with no inputs).

use std::path::Path;
use std::process::Command;

use crate::shell::{read_env, var};
use crate::support::{Run, TestEnv, run};

mod beside_prompt_hook;
mod trap;
mod watcher;

/// `bash -c SCRIPT` in the main worktree, as a devShell's shellHook runs
/// without Nix: `{hook}` stands for the line it evals (`wtenv hook nix`)
/// and `{wtenv}` for the binary. Bounded by 60 s; the shell's EXIT trap
/// has run once this returns.
pub fn bash_with_hook(t: &TestEnv, script: &str) -> Run {
    let exe = env!("CARGO_BIN_EXE_wtenv");
    let script = script
        .replace("{hook}", &format!("eval \"$('{exe}' hook nix)\""))
        .replace("{wtenv}", &format!("'{exe}'"));
    let mut cmd = Command::new("bash");
    t.apply_env(&mut cmd);
    crate::support::run_bounded(
        cmd.args(["-c", &script]).current_dir(&t.repo),
        std::time::Duration::from_secs(60),
    )
}

fn manifest(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Nix isolated: no binary cache, an empty flake registry.
/// `nix develop REPO --command bash -c` (the script is the next arg): the
/// test flake's shellHook runs first.
pub fn nix_develop(t: &TestEnv) -> Command {
    let mut cmd = nix_cmd(t, "nix");
    cmd.args([
        "develop",
        t.repo.to_str().unwrap(),
        "--command",
        "bash",
        "-c",
    ]);
    cmd
}

fn nix_cmd(t: &TestEnv, program: &str) -> Command {
    let registry = t.root().join("flake-registry.json");
    std::fs::write(&registry, r#"{"flakes":[],"version":2}"#).unwrap();
    let mut cmd = Command::new(program);
    t.apply_env(&mut cmd);
    cmd.env(
        "NIX_CONFIG",
        format!(
            "experimental-features = nix-command flakes\nsubstituters =\nflake-registry = {}\n",
            registry.display()
        ),
    );
    cmd
}

/// A no-input flake in the repository whose devShell's shellHook is the
/// one `nix/lib.nix` (the real file, copied) returns for this binary.
pub fn write_test_flake(t: &TestEnv) {
    std::fs::copy(manifest("nix/lib.nix"), t.repo.join("lib.nix")).unwrap();
    let flake = format!(
        r#"{{
  outputs = {{ self }}:
    let wtenvLib = import ./lib.nix; in {{
      hookPath = wtenvLib.shellHook {{ }};
      hookPackage = wtenvLib.shellHook {{ package = "/nix/store/x-wtenv-0.1.0"; }};
      hookQuoted = wtenvLib.shellHook {{ exe = "/opt/it's $(here)/wtenv"; }};
      devShells.x86_64-linux.default = derivation {{
        name = "devshell"; system = "x86_64-linux";
        builder = "/bin/bash"; outputs = [ "out" ];
        shellHook = wtenvLib.shellHook {{ exe = "{exe}"; }};
      }};
    }};
}}
"#,
        exe = env!("CARGO_BIN_EXE_wtenv")
    );
    std::fs::write(t.repo.join("flake.nix"), flake).unwrap();
    t.git(&["add", "flake.nix", "lib.nix"]);
    t.git(&["commit", "-q", "-m", "flake"]);
}

fn nix_eval(t: &TestEnv, attr: &str) -> Run {
    let mut cmd = nix_cmd(t, "nix");
    cmd.args(["eval", "--raw", &format!(".#{attr}")])
        .current_dir(&t.repo);
    run(&mut cmd)
}

#[test]
fn flake_nix_parses() {
    for file in ["flake.nix", "nix/lib.nix"] {
        let out = run(Command::new("nix-instantiate")
            .args(["--parse", file])
            .current_dir(manifest("")));
        assert_eq!(out.code, Some(0), "{file}: {out}");
    }
    // The package's source filter keeps what include_str! needs.
    let flake = std::fs::read_to_string(manifest("flake.nix")).unwrap();
    assert!(flake.contains("\"shell-hooks\""));
}

#[test]
fn lib_shell_hook_evaluates_to_an_eval_of_wtenv_hook_nix() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let out = nix_eval(&t, "hookPath");
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, r#"eval "$('wtenv' hook nix)""#);
    let out = nix_eval(&t, "hookPackage");
    assert_eq!(
        out.stdout, r#"eval "$('/nix/store/x-wtenv-0.1.0/bin/wtenv' hook nix)""#,
        "{out}"
    );
    let out = nix_eval(&t, "hookQuoted");
    assert_eq!(
        out.stdout, r#"eval "$('/opt/it'\''s $(here)/wtenv' hook nix)""#,
        "{out}"
    );
}

#[test]
fn nix_develop_shell_gets_ports_held_by_itself_and_swept_after_it_exits() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let other = t.add_worktree("other");
    let (env_file, reg_file) = (t.root().join("develop.env"), t.root().join("during.json"));
    let mut cmd = nix_develop(&t);
    cmd.arg(format!(
        "env -0 > '{}'; cp '{}' '{}'; echo \"pids $$ $PPID\"",
        env_file.display(),
        t.registry_path().display(),
        reg_file.display()
    ))
    .current_dir(&t.repo);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out}");
    let env = read_env(&env_file);
    let port = t.ports.start;
    assert_eq!(var(&env, "PORT"), Some(port.to_string().as_str()), "{out}");
    assert_eq!(var(&env, "WTENV_WORKTREE"), t.repo.to_str());
    // While the shell ran, the port was held by it, not reserved.
    let during: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reg_file).unwrap()).unwrap();
    let alloc = &during["allocations"][0];
    assert_eq!(alloc["port"], port, "{during}");
    assert_eq!(alloc["reserved"], false, "{during}");
    let holder = alloc["holders"][0]["pid"].as_u64().unwrap();
    let pids: Vec<u64> = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pids "))
        .unwrap()
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        pids.contains(&holder),
        "holder {holder} is not the shell {pids:?}"
    );
    // The shell is gone: its watcher released its hold, or the next
    // command sweeps it.
    let next = run(&mut t.wtenv_in(&other, &["env"]));
    assert_eq!(next.code, Some(0), "{next}");
    let left: Vec<_> = t
        .allocations()
        .into_iter()
        .filter(|(_, _, w)| w == &t.repo)
        .collect();
    assert!(left.is_empty(), "the nix shell's hold survived: {left:?}");
    // The other worktree got the lowest free port: the swept one.
    assert!(
        next.stdout.contains(&format!("export PORT='{port}'")),
        "{next}"
    );
}

#[test]
fn nix_hook_under_direnv_uses_the_sticky_reservation() {
    let t = TestEnv::new();
    write_test_flake(&t);
    std::fs::write(t.repo.join(".envrc"), "use flake\n").unwrap();
    let mut allow = nix_cmd(&t, "direnv");
    allow.args(["allow", "."]).current_dir(&t.repo);
    let out = run(&mut allow);
    assert_eq!(out.code, Some(0), "{out}");
    let env_file = t.root().join("direnv.env");
    let mut exec = nix_cmd(&t, "direnv");
    exec.args(["exec", ".", "sh", "-c"])
        .arg(format!("env -0 > '{}'", env_file.display()))
        .current_dir(&t.repo);
    let out = run(&mut exec);
    assert_eq!(out.code, Some(0), "{out}");
    let env = read_env(&env_file);
    assert_eq!(
        var(&env, "PORT"),
        Some(t.ports.start.to_string().as_str()),
        "{out}"
    );
    // Reserved, not held by direnv's short-lived bash, which no watcher
    // waits for.
    let reg = t.registry();
    assert_eq!(reg["allocations"][0]["reserved"], true, "{reg}");
    assert!(reg["allocations"][0].get("holders").is_none(), "{reg}");
    assert!(!t.state_dir().join("watch").exists());
}

#[test]
fn nix_develop_with_a_conflict_shows_the_reason_and_the_shell_still_runs() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let _busy = crate::support::PyListener::start(&t.root(), "4", "127.0.0.1", t.ports.start, "");
    let env_file = t.root().join("develop.env");
    let mut cmd = nix_develop(&t);
    cmd.arg(format!(
        "env -0 > '{}'; echo shell works",
        env_file.display()
    ))
    .current_dir(&t.repo);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("shell works"), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "Port conflict detected in feature range {}.",
            t.ports.range()
        )),
        "{out}"
    );
    let env = read_env(&env_file);
    for name in ["PORT", "WTENV_WORKTREE", "WTENV_PORTS"] {
        assert_eq!(var(&env, name), None, "{name}: {out}");
    }
    assert!(t.allocations().is_empty());
}

/// A stand-in for nixpkgs with just what `flake.nix` uses. Its
/// `buildRustPackage` builds nothing, but fails unless the source the
/// flake hands it holds what cargo reads (shell-hooks/ included: the
/// binary embeds it) and nothing else.
const FAKE_NIXPKGS: &str = r#"{
  outputs = { self }:
    let
      lib = {
        genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
        hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
        removePrefix = p: s:
          if lib.hasPrefix p s
          then builtins.substring (builtins.stringLength p) (builtins.stringLength s) s
          else s;
        cleanSourceWith = { src, filter, name ? "source" }: builtins.path { path = src; inherit filter name; };
        licenses = { mit = "mit"; asl20 = "asl20"; };
      };
      pkgsFor = system: {
        inherit lib;
        stdenv.hostPlatform.system = system;
        rustPlatform.buildRustPackage = args: derivation {
          name = "${args.pname}-${args.version}";
          inherit system;
          builder = "/bin/sh";
          src = args.src;
          lockFile = args.cargoLock.lockFile;
          # Stands in for cargo: fails unless the source holds what the
          # build reads, and nothing else.
          args = [ "-c" ''
            set -e
            for f in Cargo.toml Cargo.lock src/main.rs src/commands/hook.rs shell-hooks/wtenv.bash shell-hooks/nix.sh; do
              test -f "$src/$f" || { echo "missing $f" >&2; exit 1; }
            done
            for f in README.md target flake.nix nix; do
              test ! -e "$src/$f" || { echo "unexpected $f" >&2; exit 1; }
            done
            /bin/mkdir -p $out/bin
            printf '#!/bin/sh\necho fake wtenv\n' > $out/bin/wtenv
          '' ];
        } // { meta = args.meta; };
        mkShell = args: derivation {
          name = "devshell"; inherit system; builder = "/bin/sh"; args = [ "-c" "echo > $out" ];
          inputsFrom = map (d: d.name) args.inputsFrom;
          packages = builtins.length args.packages;
        };
      } // lib.genAttrs [ "cargo" "rustc" "clippy" "rustfmt" "cargo-nextest" "rust-analyzer"
        "direnv" "zsh" "fish" "shellcheck" "hyperfine" "tmux" "python3" "git" ] (n: n);
    in {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ] pkgsFor;
    };
}
"#;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The real `flake.nix`, consumed as the README says (its `nixpkgs`
/// following the consumer's, here the stand-in): every output evaluates,
/// the package builds from a source that has shell-hooks/ and no more, and
/// `lib.shellHook` points at the package's binary.
#[test]
fn flake_outputs_evaluate_and_build_against_a_stand_in_nixpkgs() {
    let t = TestEnv::new();
    let root = t.root();
    let (fake, proj, consumer) = (root.join("fake"), root.join("proj"), root.join("consumer"));
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("flake.nix"), FAKE_NIXPKGS).unwrap();
    std::fs::create_dir_all(&proj).unwrap();
    for file in ["flake.nix", "Cargo.toml", "Cargo.lock", "README.md"] {
        std::fs::copy(manifest(file), proj.join(file)).unwrap();
    }
    for dir in ["nix", "src", "shell-hooks"] {
        copy_tree(&manifest(dir), &proj.join(dir));
    }
    t.git_in(&proj, &["init", "-q", "-b", "main"]);
    t.git_in(&proj, &["add", "-A"]);
    t.git_in(&proj, &["commit", "-q", "-m", "flake"]);
    std::fs::create_dir_all(&consumer).unwrap();
    std::fs::write(
        consumer.join("flake.nix"),
        format!(
            r#"{{
  inputs.nixpkgs.url = "path:{fake}";
  inputs.wtenv.url = "git+file://{proj}";
  inputs.wtenv.inputs.nixpkgs.follows = "nixpkgs";
  outputs = {{ self, nixpkgs, wtenv }}: {{
    packages.x86_64-linux.default = wtenv.packages.x86_64-linux.default;
    overlay = (wtenv.overlays.default nixpkgs.legacyPackages.x86_64-linux {{ }}).wtenv.name;
    app = wtenv.apps.x86_64-linux.default.program;
    devShell = wtenv.devShells.x86_64-linux.default.name;
    hook = wtenv.lib.shellHook {{ package = wtenv.packages.x86_64-linux.default; }};
  }};
}}
"#,
            fake = fake.display(),
            proj = proj.display()
        ),
    )
    .unwrap();
    let flake = format!("path:{}", consumer.display());
    let mut build = nix_cmd(&t, "nix");
    build.args(["build", "--no-link", "--no-write-lock-file", &flake]);
    let out = run(&mut build);
    assert_eq!(out.code, Some(0), "{out}");
    let eval = |attr: &str| {
        let mut cmd = nix_cmd(&t, "nix");
        cmd.args([
            "eval",
            "--raw",
            "--no-write-lock-file",
            &format!("{flake}#{attr}"),
        ]);
        let out = run(&mut cmd);
        assert_eq!(out.code, Some(0), "{attr}: {out}");
        out.stdout
    };
    let version = format!("wtenv-{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(eval("overlay"), version);
    assert_eq!(eval("devShell"), "devshell");
    let app = eval("app");
    assert!(
        app.starts_with("/nix/store/") && app.ends_with(&format!("-{version}/bin/wtenv")),
        "{app}"
    );
    assert_eq!(eval("hook"), format!(r#"eval "$('{app}' hook nix)""#));
}

/// `nix develop` at a real terminal (tmux) in `dir`: its interactive shell's
/// pid once its first line ran, with the tmux session.
fn nix_develop_in_tmux(t: &TestEnv, dir: &Path, tag: &str) -> (crate::support::Tmux, u32) {
    let conf = t.root().join("nix.conf");
    let registry = t.root().join("flake-registry.json");
    std::fs::write(&registry, r#"{"flakes":[],"version":2}"#).unwrap();
    std::fs::write(
        &conf,
        format!(
            "experimental-features = nix-command flakes\nsubstituters =\nflake-registry = {}\n",
            registry.display()
        ),
    )
    .unwrap();
    let tmux = crate::support::Tmux::start(t, dir, &["bash", "--norc", "--noprofile", "-i"]);
    tmux.line(
        t,
        &format!(
            "NIX_CONFIG=\"$(cat '{}')\" nix develop '{}'",
            conf.display(),
            dir.display()
        ),
    );
    let ready = t.root().join(format!("ready-{tag}"));
    tmux.line(t, &format!("echo \"$$\" > '{}'", ready.display()));
    assert!(
        crate::support::wait_for(std::time::Duration::from_secs(120), || {
            std::fs::read_to_string(&ready).is_ok_and(|s| s.ends_with('\n'))
        }),
        "nix develop did not start: {}",
        tmux.pane(t)
    );
    let pid = std::fs::read_to_string(&ready)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (tmux, pid)
}

fn alive(pid: u32) -> bool {
    wtenv::process::ProcessId::of(pid).is_some()
}

/// A `nix develop` shell exits normally: at once nothing shows held and
/// `validate` passes (its EXIT trap gave the holds back), also when the
/// README's bash prompt hook runs in it (`~/.bashrc`) and after a
/// `wtenv env` inside it: both join the shell's hold instead of making
/// the port a reservation.
#[test]
fn nix_develop_exit_leaves_nothing_held_with_the_prompt_hook_or_env_inside() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let bashrc = t.root().join("home/.bashrc");
    for (round, inside) in ["plain", "bashrc", "env"].into_iter().enumerate() {
        if inside == "bashrc" {
            std::fs::write(
                &bashrc,
                format!("eval \"$('{}' hook bash)\"\n", env!("CARGO_BIN_EXE_wtenv")),
            )
            .unwrap();
        } else {
            let _ = std::fs::remove_file(&bashrc);
        }
        let (tmux, shell) = nix_develop_in_tmux(&t, &t.repo, &round.to_string());
        let done = t.root().join(format!("done-{round}"));
        let line = match inside {
            "env" => format!(
                "'{}' env >/dev/null; echo \"$PORT $__WTENV_DIFF\" > '{}'",
                env!("CARGO_BIN_EXE_wtenv"),
                done.display()
            ),
            _ => format!("echo \"$PORT ${{__WTENV_DIFF-}}\" > '{}'", done.display()),
        };
        tmux.line(&t, &line);
        assert!(
            crate::support::wait_for(std::time::Duration::from_secs(60), || {
                std::fs::read_to_string(&done).is_ok_and(|s| s.ends_with('\n'))
            }),
            "{inside}: {}",
            tmux.pane(&t)
        );
        let seen = std::fs::read_to_string(&done).unwrap();
        assert!(
            seen.starts_with(&format!("{} ", t.ports.start)),
            "{inside}: {seen:?} {}",
            tmux.pane(&t)
        );
        if inside == "bashrc" {
            assert!(
                seen.contains("PORT"),
                "the prompt hook did not run: {seen:?}"
            );
        }
        let reg = t.registry();
        let a = &reg["allocations"][0];
        assert_eq!(a["reserved"], false, "{inside}: made sticky: {reg}");
        assert_eq!(a["holders"][0]["pid"], shell, "{inside}: {reg}");

        tmux.line(&t, "exit");
        assert!(
            crate::support::wait_for(std::time::Duration::from_secs(60), || !alive(shell)),
            "{inside}: the shell did not exit: {}",
            tmux.pane(&t)
        );
        for view in [&["ports"][..], &["list"], &["validate", "-v"]] {
            let out = run(&mut t.wtenv(view));
            assert!(!out.stdout.contains("held"), "{inside}: {view:?}: {out}");
            assert_eq!(out.code, Some(0), "{inside}: {view:?}: {out}");
        }
        assert!(
            t.allocations().is_empty(),
            "{inside}: {:?}",
            t.allocations()
        );
    }
}

/// `remove` refuses while a `nix develop` shell lives in a worktree whose
/// ports were already reserved (the shell is recorded as a holder all the
/// same); `--force` removes it and names the shell it left running.
#[test]
fn remove_refuses_under_a_nix_develop_shell_of_a_reserved_worktree() {
    let t = TestEnv::new();
    write_test_flake(&t);
    let out = run(&mut t.wtenv(&[
        "create",
        "--purpose",
        "feature",
        "--identifier",
        "shell",
        "--ports",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    let wt = t.root().join("repo.worktrees/feature-shell");
    let (_tmux, shell) = nix_develop_in_tmux(&t, &wt, "rm");
    let reg = t.registry();
    assert_eq!(reg["allocations"][0]["reserved"], true, "{reg}");
    assert_eq!(reg["allocations"][0]["holders"][0]["pid"], shell, "{reg}");
    let out = run(&mut t.wtenv(&["remove", "shell"]));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!("held by pid {shell}: ")),
        "{out}"
    );
    assert!(wt.exists());
    let out = run(&mut t.wtenv(&["remove", "--force", "shell"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "warning: left running: port {} (app): held by pid {shell}: ",
            t.ports.start
        )),
        "{out}"
    );
    assert!(!wt.exists());
}

/// Under direnv `use flake`, the nix hook watches what `use wtenv` watches:
/// editing `wtenv.toml` reloads, and so does a command that gives the
/// worktree's port away (its stamp); another worktree's allocation does not.
#[test]
fn nix_hook_under_direnv_reloads_on_the_config_and_the_stamp() {
    let t = TestEnv::new();
    write_test_flake(&t);
    std::fs::write(t.repo.join(".envrc"), "use flake\n").unwrap();
    let other = t.add_worktree("other");
    let mut allow = nix_cmd(&t, "direnv");
    allow.args(["allow", "."]).current_dir(&t.repo);
    assert_eq!(run(&mut allow).code, Some(0));
    let wtenv = env!("CARGO_BIN_EXE_wtenv");
    let script = format!(
        "cd '{repo}'\neval \"$(direnv export bash)\"\necho \"loaded=$PORT\"\n\
         (cd '{other}' && '{wtenv}' env >/dev/null)\n\
         echo \"registry: [$(direnv export json)]\"\n\
         sleep 1.1; touch wtenv.toml\n\
         echo \"config: [$(direnv export json | head -c 1)]\"\n\
         eval \"$(direnv export bash)\"\n\
         '{wtenv}' release 2>/dev/null\n\
         echo \"stamp: [$(direnv export json | head -c 1)]\"\n",
        repo = t.repo.display(),
        other = other.display(),
    );
    let mut cmd = nix_cmd(&t, "bash");
    let out = run(cmd
        .args(["--noprofile", "--norc", "-euo", "pipefail", "-c", &script])
        .current_dir(t.root()));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(&format!("loaded={}\n", t.ports.start)),
        "{out}"
    );
    assert!(out.stdout.contains("registry: []\n"), "{out}");
    assert!(out.stdout.contains("config: [{]\n"), "{out}");
    assert!(out.stdout.contains("stamp: [{]\n"), "{out}");
}

/// Under direnv `use flake`, a load that fails on an invalid `wtenv.toml`
/// still watches it, as `use wtenv` does: fixing it reloads.
#[test]
fn nix_hook_under_direnv_reloads_once_a_failing_config_is_fixed() {
    let t = TestEnv::new();
    write_test_flake(&t);
    std::fs::write(t.repo.join(".envrc"), "use flake\n").unwrap();
    let mut allow = nix_cmd(&t, "direnv");
    allow.args(["allow", "."]).current_dir(&t.repo);
    assert_eq!(run(&mut allow).code, Some(0));
    crate::direnv::fails_then_reloads_once_fixed(&t, &t.repo, nix_cmd(&t, "bash"));
}

/// A config generated by Nix is a link into the Nix store: read, though it
/// leads out of the worktree (any other such link is refused: see
/// `hostile::configs::a_config_linked_anywhere_but_the_nix_store_is_refused_and_never_quoted`).
#[test]
fn a_config_linked_into_the_nix_store_is_read() {
    let t = TestEnv::new();
    let config = t.repo.join("wtenv.toml");
    let source = t.root().join("wtenv.toml");
    std::fs::copy(&config, &source).unwrap();
    let out = run(nix_cmd(&t, "nix").args(["store", "add-file", source.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out}");
    let stored = out.stdout.trim();
    assert!(stored.starts_with("/nix/store/"), "{out}");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink(stored, &config).unwrap();
    let out = run(&mut t.wtenv(&["env"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("export PORT="), "{out}");
}

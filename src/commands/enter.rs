//! `wtenv enter ID`: create-or-enter. Prints the worktree's path on stdout
//! and, when `WTENV_CD_FILE` names a file, writes the absolute path (no
//! newline) into it: the shell function `wtenv` reads that file and runs
//! `\builtin cd --` (never an eval of free-form output). The file is
//! opened first, so one that cannot be written refuses the command before
//! anything is made.
//!
//! An existing worktree (made by `create` or by hand) is found by its
//! identifier; its ports are made sure of (sticky: usually the read-only
//! fast path). A missing one is created with its ports, all or nothing;
//! when its branch exists already (the worktree was removed, the branch
//! kept), that branch is checked out again.

use std::path::Path;

use crate::context::Ctx;
use crate::create;
use crate::error::{Error, Result};
use crate::exit::Outcome;
use crate::output;
use crate::process::printable_path;
use crate::settings::CD_FILE;
use crate::worktrees;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worktree's identifier (its directory name for one made by hand).
    pub identifier: String,
    /// The purpose: to tell worktrees apart, and for a new one (default:
    /// `[worktrees] default_purpose`).
    #[arg(long)]
    pub purpose: Option<String>,
    /// The base revision, if the worktree is created (default: HEAD).
    #[arg(long, value_name = "BASE")]
    pub branch: Option<String>,
    /// Skip ports that are occupied on the system instead of failing.
    #[arg(long)]
    pub skip_occupied: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<Outcome> {
    // Opened before anything is made: a file it cannot write refuses the
    // command while the worktree and the registry are as they were.
    let mut cd_file = CdFile::open()?;
    let (here, config, entries) = worktrees::entries(ctx)?;
    let path = match worktrees::find(
        &entries,
        &args.identifier,
        args.purpose.as_deref(),
        |by_purpose| match by_purpose {
            true => "add --purpose to say which one".into(),
            // Same purpose: `enter` takes no path, the shell does.
            false => "cd into the one you mean; 'wtenv list' shows them".into(),
        },
    )? {
        Some(entry) => {
            let root = entry
                .worktree
                .as_ref()
                .map(|w| w.root.clone())
                .ok_or_else(|| not_a_worktree(entry, &here.common_dir))?;
            let scope = ctx.scope_at(&root)?;
            crate::ports::reserve(ctx, &scope, args.skip_occupied)?;
            root
        }
        None => {
            let purpose = args
                .purpose
                .clone()
                .unwrap_or_else(|| config.worktrees.default_purpose.clone());
            let plan = create::plan(
                ctx,
                &purpose,
                &args.identifier,
                args.branch.as_deref(),
                None,
                args.skip_occupied,
            )?;
            create::execute(ctx, &plan, true, true)?.path
        }
    };
    if let Some(cd_file) = &mut cd_file {
        cd_file.write(&path)?;
    }
    output::stdout(&format!("{}\n", path.display()))?;
    Ok(Outcome::SUCCESS)
}

/// The refusal for a worktree git still lists (it keeps the record it
/// was found by) whose directory is gone, or is there without its `.git`
/// file: creating it again would fail on git's record (its branch is
/// still checked out there), and entering it finds no worktree. One that
/// is another repository's own is said so, never sent to `repair`.
fn not_a_worktree(entry: &worktrees::Entry, common_dir: &Path) -> Error {
    let path = crate::shell::quote_in_message(&entry.path);
    if let Some(refused) = entry.another_repositorys(common_dir, "nothing was entered") {
        refused
    } else if entry.path.is_dir() {
        Error::not_found(format!(
            "worktree {} is listed by git but its directory is not a worktree any more (its .git file is missing or broken)",
            printable_path(&entry.path)
        ))
        .with_hint(format!(
            "restore its .git file with 'git worktree repair' (run here), then enter again; or remove it: wtenv remove {path}"
        ))
    } else {
        Error::not_found(format!(
            "worktree {} is listed by git but its directory is gone",
            printable_path(&entry.path)
        ))
        .with_hint(format!(
            "forget it and release its ports (its branch is kept), then enter again to make it anew: wtenv remove {path}"
        ))
    }
}

/// What `WTENV_CD_FILE` is for, said in each refusal of it.
const WHAT_IT_IS: &str = "WTENV_CD_FILE names the file enter writes the worktree's path into, for the shell function `wtenv` to cd there (the function sets it to a file mktemp makes)";

/// The file `WTENV_CD_FILE` names, open; the `WTENV_CD_FILE` contract:
/// the absolute path, no newline. One this command made and did not
/// write (it failed on the way) is removed again.
struct CdFile {
    path: &'static Path,
    file: std::fs::File,
    made: bool,
    written: bool,
}

impl CdFile {
    fn open() -> Result<Option<CdFile>> {
        let Some(path) = crate::settings::cd_file() else {
            return Ok(None);
        };
        let path = Path::new(path);
        // Relative, it would be written where `enter` runs: into the
        // worktree the user stands in, a file of their checkout.
        if !path.is_absolute() {
            return Err(Error::invalid(format!(
                "{CD_FILE} {} is not an absolute path: enter would write the worktree's path into a file of the current directory",
                printable_path(path)
            ))
            .with_hint(format!("{WHAT_IT_IS}: set it to an absolute path, or unset it")));
        }
        let could_not = || format!("could not write {CD_FILE} {}", printable_path(path));
        let (file, made) = crate::files::open_own(path).map_err(|e| {
            // A directory, or what the kernel keeps this user from opening,
            // is said as what is there (`files::refusal_of`).
            match e.at(path) {
                crate::files::OpenError::Io(e) => Error::io(could_not(), e).with_hint(format!(
                    "{WHAT_IT_IS}: name a file in a directory of yours, or unset it"
                )),
                crate::files::OpenError::Refused(r) => {
                    Error::refused(format!("{}: {r}", could_not())).with_hint(format!(
                        "{WHAT_IT_IS}: name a regular file of yours, or unset it"
                    ))
                }
            }
        })?;
        Ok(Some(CdFile {
            path,
            file,
            made,
            written: false,
        }))
    }

    fn write(&mut self, worktree: &Path) -> Result<()> {
        use std::io::Write;
        self.written = true;
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all(worktree.as_os_str().as_encoded_bytes()))
            .map_err(|e| {
                Error::io(
                    format!("could not write {CD_FILE} {}", printable_path(self.path)),
                    e,
                )
            })
    }
}

impl Drop for CdFile {
    fn drop(&mut self) {
        if self.made && !self.written {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

//! One line of the registry: an allocation parsed with its strings
//! borrowed from the line, and the key the lines are sorted by. Shared by
//! every reader that looks at lines one by one ([`super::view`],
//! [`super::find`], [`super::part`]).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Allocation, Hold};

/// The allocation in `object` (one line's JSON object, without its
/// indent, comma and newline), if it is one, exactly as [`Allocation`]
/// reads it.
pub fn parse(object: &[u8]) -> Option<AllocationView<'_>> {
    std::str::from_utf8(object)
        .ok()
        .and_then(|text| serde_json::from_str::<AllocationView>(text).ok())
}

/// [`Allocation`] with its strings borrowed where the JSON has no escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationView<'a> {
    pub port: u16,
    #[serde(borrow)]
    pub service: Cow<'a, str>,
    #[serde(borrow)]
    pub purpose: Cow<'a, str>,
    #[serde(borrow)]
    pub repository: Cow<'a, str>,
    #[serde(borrow)]
    pub worktree: Cow<'a, str>,
    #[serde(borrow)]
    pub created: Cow<'a, str>,
    pub reserved: bool,
    #[serde(default)]
    pub holders: Vec<Hold>,
    #[serde(default)]
    pub adhoc: bool,
}

impl AllocationView<'_> {
    pub fn into_owned(self) -> Allocation {
        let AllocationView {
            port,
            service,
            purpose,
            repository,
            worktree,
            created,
            reserved,
            holders,
            adhoc,
        } = self;
        Allocation {
            port,
            service: service.into_owned(),
            purpose: purpose.into_owned(),
            repository: PathBuf::from(repository.into_owned()),
            worktree: PathBuf::from(worktree.into_owned()),
            created: created.into_owned(),
            reserved,
            holders,
            adhoc,
        }
    }
}

/// Which worktree's entries to keep (paths as bytes: both sides are
/// canonical, see [`Allocation::belongs_to`]).
#[derive(Clone, Copy)]
pub struct Key<'k> {
    repository: &'k [u8],
    worktree: &'k [u8],
}

impl<'k> Key<'k> {
    pub fn new(repository: &'k Path, worktree: &'k Path) -> Key<'k> {
        Key {
            repository: repository.as_os_str().as_bytes(),
            worktree: worktree.as_os_str().as_bytes(),
        }
    }

    pub fn wants(&self, a: &AllocationView) -> bool {
        a.worktree.as_bytes() == self.worktree && a.repository.as_bytes() == self.repository
    }

    /// Where `a` stands to this key in the order `serialize` writes:
    /// by repository, then worktree, as bytes.
    pub fn order(&self, a: &AllocationView) -> Ordering {
        (a.repository.as_bytes(), a.worktree.as_bytes()).cmp(&(self.repository, self.worktree))
    }
}

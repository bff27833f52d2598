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

/// Which entries to keep: one worktree's, or every worktree's of one
/// repository (paths as bytes: both sides are canonical, see
/// [`Allocation::belongs_to`]).
#[derive(Clone, Copy)]
pub struct Key<'k> {
    repository: &'k [u8],
    /// `None`: every worktree of the repository.
    worktree: Option<&'k [u8]>,
}

impl<'k> Key<'k> {
    pub fn new(repository: &'k Path, worktree: &'k Path) -> Key<'k> {
        Key {
            repository: repository.as_os_str().as_bytes(),
            worktree: Some(worktree.as_os_str().as_bytes()),
        }
    }

    /// The entries of every worktree of `repository`: adjacent in the
    /// file too, since the lines are sorted by repository first.
    pub fn repository(repository: &'k Path) -> Key<'k> {
        Key {
            repository: repository.as_os_str().as_bytes(),
            worktree: None,
        }
    }

    pub fn wants(&self, a: &AllocationView) -> bool {
        self.order(a) == Ordering::Equal
    }

    /// [`wants`](Key::wants) for an allocation already parsed.
    pub fn wants_owned(&self, a: &Allocation) -> bool {
        self.order_of(
            a.repository.as_os_str().as_bytes(),
            a.worktree.as_os_str().as_bytes(),
        ) == Ordering::Equal
    }

    /// Where `a` stands to this key in the order `serialize` writes:
    /// by repository, then worktree, as bytes.
    pub fn order(&self, a: &AllocationView) -> Ordering {
        self.order_of(a.repository.as_bytes(), a.worktree.as_bytes())
    }

    fn order_of(&self, repository: &[u8], worktree: &[u8]) -> Ordering {
        repository
            .cmp(self.repository)
            .then_with(|| self.worktree.map_or(Ordering::Equal, |w| worktree.cmp(w)))
    }
}

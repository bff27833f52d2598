//! One worktree's allocations, parsed without copying the others.
//!
//! `env` runs on every `cd` and needs only its own worktree's entries, but
//! the registry holds every worktree's. Parsing all of them into owned
//! [`Allocation`]s (five heap strings each) was most of `env`'s time on a
//! registry of 1,000 entries, much of it page faults on fresh heap. This
//! parse borrows each entry's strings from the file's bytes, keeps the
//! entries of one worktree, and copies only those.
//!
//! It accepts what [`RegistryData`] accepts, or less, never more: the
//! entries have the same fields, unknown ones refused (the conversion
//! below names every field of both structs, so the compiler keeps them
//! equal); unknown, missing or repeated top-level keys are refused. When it
//! refuses, the caller runs the full parse, which accepts or says exactly
//! what is wrong.

use std::borrow::Cow;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Allocation, Hold, RegistryData, VERSION};

/// The entries of `worktree` (of `repository`) in a registry file's bytes;
/// `None` when the bytes are not a registry of this version.
pub fn parse(bytes: &[u8], repository: &Path, worktree: &Path) -> Option<RegistryData> {
    let key = Key {
        repository: repository.as_os_str().as_bytes(),
        worktree: worktree.as_os_str().as_bytes(),
    };
    // One UTF-8 check of the whole file is cheaper than one per string,
    // which is what parsing bytes (rather than a str) does.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let data = key.deserialize(&mut de).ok()?;
    de.end().ok()?;
    (data.version == VERSION).then_some(data)
}

/// [`Allocation`] with its strings borrowed where the JSON has no escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocationView<'a> {
    port: u16,
    #[serde(borrow)]
    service: Cow<'a, str>,
    #[serde(borrow)]
    purpose: Cow<'a, str>,
    #[serde(borrow)]
    repository: Cow<'a, str>,
    #[serde(borrow)]
    worktree: Cow<'a, str>,
    #[serde(borrow)]
    created: Cow<'a, str>,
    reserved: bool,
    #[serde(default)]
    holders: Vec<Hold>,
}

impl AllocationView<'_> {
    fn into_owned(self) -> Allocation {
        let AllocationView {
            port,
            service,
            purpose,
            repository,
            worktree,
            created,
            reserved,
            holders,
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
        }
    }
}

/// Which worktree's entries to keep (paths as bytes: both sides are
/// canonical, see [`Allocation::belongs_to`]).
#[derive(Clone, Copy)]
struct Key<'k> {
    repository: &'k [u8],
    worktree: &'k [u8],
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Version,
    Allocations,
}

const FIELDS: &[&str] = &["version", "allocations"];

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = RegistryData;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RegistryData, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = RegistryData;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a wtenv registry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RegistryData, A::Error> {
        let mut version = None;
        let mut allocations = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Version if version.is_none() => version = Some(map.next_value()?),
                Field::Allocations if allocations.is_none() => {
                    allocations = Some(map.next_value_seed(Entries(self))?);
                }
                Field::Version => return Err(de::Error::duplicate_field(FIELDS[0])),
                Field::Allocations => return Err(de::Error::duplicate_field(FIELDS[1])),
            }
        }
        Ok(RegistryData {
            version: version.ok_or_else(|| de::Error::missing_field(FIELDS[0]))?,
            allocations: allocations.ok_or_else(|| de::Error::missing_field(FIELDS[1]))?,
        })
    }
}

/// The `allocations` array, filtered while it is read.
struct Entries<'k>(Key<'k>);

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = Vec<Allocation>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Allocation>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = Vec<Allocation>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of allocations")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Allocation>, A::Error> {
        let mut mine = Vec::new();
        while let Some(a) = seq.next_element::<AllocationView<'de>>()? {
            if a.worktree.as_bytes() == self.0.worktree
                && a.repository.as_bytes() == self.0.repository
            {
                mine.push(a.into_owned());
            }
        }
        Ok(mine)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn full(bytes: &[u8], repository: &Path, worktree: &Path) -> Option<RegistryData> {
        let mut data = serde_json::from_slice::<RegistryData>(bytes)
            .ok()
            .filter(|d| d.version == VERSION)?;
        data.allocations
            .retain(|a| a.belongs_to(repository, worktree));
        Some(data)
    }

    /// Where the view accepts, the full parse accepts and agrees.
    fn agrees(text: &str) {
        let (repo, wt) = (Path::new("/r/.git"), Path::new("/r"));
        if let Some(view) = parse(text.as_bytes(), repo, wt) {
            assert_eq!(Some(view), full(text.as_bytes(), repo, wt), "{text}");
        }
    }

    const ENTRY: &str = r#"{"port": 5000, "service": "app", "purpose": "feature", "repository": "/r/.git", "worktree": "/r", "created": "2026-01-01T00:00:00Z", "reserved": true}"#;

    #[test]
    fn keeps_only_the_worktrees_entries_and_unescapes() {
        let other = ENTRY
            .replace("\"/r\"", "\"/other\"")
            .replace("5000", "5001");
        let escaped = ENTRY
            .replace("\"app\"", r#""a\"p\u00e9""#)
            .replace("5000", "5002");
        let held = ENTRY.replace(
            "\"reserved\": true",
            r#""reserved": false, "holders": [{"pid": 7, "start_time": 9, "command": "npm", "pgid": 7}]"#,
        );
        let text =
            format!(r#"{{"version": 1, "allocations": [{ENTRY}, {other}, {escaped}, {held}]}}"#);
        let data = parse(text.as_bytes(), Path::new("/r/.git"), Path::new("/r")).unwrap();
        let ports: Vec<u16> = data.allocations.iter().map(|a| a.port).collect();
        assert_eq!(ports, [5000, 5002, 5000]);
        assert_eq!(data.allocations[1].service, "a\"p\u{e9}");
        assert_eq!(data.allocations[2].holders[0].command, "npm");
        agrees(&text);
    }

    #[test]
    fn refuses_what_the_full_parse_refuses() {
        let refused = [
            String::new(),
            "{".into(),
            "[1, []]".into(),
            r#"{"version": 2, "allocations": []}"#.into(),
            r#"{"version": 1}"#.into(),
            r#"{"allocations": []}"#.into(),
            r#"{"version": 1, "allocations": [], "extra": 1}"#.into(),
            r#"{"version": 1, "version": 1, "allocations": []}"#.into(),
            r#"{"version": 1, "allocations": []} trailing"#.into(),
            format!(
                r#"{{"version": 1, "allocations": [{}]}}"#,
                ENTRY.replace("}", r#", "note": "x"}"#)
            ),
            format!(
                r#"{{"version": 1, "allocations": [{}]}}"#,
                ENTRY.replace("5000", "70000")
            ),
            format!(
                r#"{{"version": 1, "allocations": [{}]}}"#,
                ENTRY.replace(r#""service": "app", "#, "")
            ),
        ];
        for text in refused {
            let view = parse(text.as_bytes(), Path::new("/r/.git"), Path::new("/r"));
            assert_eq!(view, None, "accepted: {text}");
        }
    }

    proptest! {
        /// Random edits of a valid file: the view never accepts what the
        /// full parse refuses, and never disagrees with it.
        #[test]
        fn never_accepts_more_than_the_full_parse(
            cut in 0usize..400,
            insert in prop::sample::select(vec!["", "\"", "}", "]", ",", "1", "\"x\":1,", "null", "{}"]),
        ) {
            let text = format!(r#"{{"version": 1, "allocations": [{ENTRY}, {ENTRY}]}}"#);
            let at = cut.min(text.len());
            let mut edited = text.clone();
            edited.insert_str(at, insert);
            agrees(&edited);
            edited = text.clone();
            edited.replace_range(at..(at + 1).min(text.len()), "");
            agrees(&edited);
        }
    }
}

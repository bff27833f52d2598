//! Purposes and their port ranges: `name = "LO-HI"` or, with overflow
//! ranges tried in order, `name = ["LO-HI", ...]`. Every range of every
//! purpose is disjoint from every other (the rule is the README's,
//! "Configuration").

use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;

use super::Checker;
use crate::error::Result;

/// Ports below this need privileges; refused in config (allocation rule 6).
pub const MIN_PORT: u16 = 1024;

/// Built-in purposes, used when the config has no `[purposes]` table.
pub const DEFAULT_PURPOSES: &[(&str, PortRange)] = &[
    ("feature", PortRange::new(5000, 5099)),
    ("bugfix", PortRange::new(5100, 5199)),
    ("hotfix", PortRange::new(5200, 5299)),
    ("experiment", PortRange::new(5300, 5399)),
];

/// An inclusive port range, `start <= end`, both `>= MIN_PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    const fn new(start: u16, end: u16) -> PortRange {
        PortRange { start, end }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// Parses `"5000-5099"`; the error says what is wrong with it. START
    /// and END are ASCII digits, nothing else: no sign, no space, no
    /// leading zero (`"021000"` is no port number anyone means; Rust's
    /// own parse would take all three).
    pub fn parse(text: &str) -> std::result::Result<PortRange, String> {
        let bad = || format!("expected \"START-END\" (e.g. \"5000-5099\"), got {text:?}");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        // A number past the last port is named, not called a bad shape:
        // "5000-70000" has the shape, and one of its numbers is wrong.
        let port = |side: &str| {
            if !is_digits(side) || (side.len() > 1 && side.starts_with('0')) {
                return Err(bad());
            }
            side.parse::<u16>().map_err(|_| {
                format!(
                    "range {text:?}: {side} is not a port; ports go up to {}",
                    u16::MAX
                )
            })
        };
        let start = port(a)?;
        let end = port(b)?;
        if start > end {
            return Err(format!("range {text:?} is reversed: {start} > {end}"));
        }
        if start < MIN_PORT {
            return Err(format!(
                "range {text:?} starts below {MIN_PORT}; privileged ports are refused"
            ));
        }
        Ok(PortRange { start, end })
    }
}

/// `text` is a number written in decimal digits, of any size.
fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A purpose's ranges, tried in order (the first, then the overflow
/// ranges): never empty, pairwise disjoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ranges(Vec<PortRange>);

impl Ranges {
    /// `None` when `ranges` is empty.
    pub fn new(ranges: Vec<PortRange>) -> Option<Ranges> {
        (!ranges.is_empty()).then_some(Ranges(ranges))
    }

    pub fn one(range: PortRange) -> Ranges {
        Ranges(vec![range])
    }

    pub fn iter(&self) -> impl Iterator<Item = PortRange> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(port))
    }

    /// How many ports the ranges hold together.
    pub fn size(&self) -> usize {
        self.0
            .iter()
            .map(|r| usize::from(r.end - r.start) + 1)
            .sum()
    }

    /// `range 5000-5099` or `ranges 5400-5499, 15400-15499`: for messages.
    pub fn label(&self) -> String {
        let word = if self.0.len() == 1 { "range" } else { "ranges" };
        format!("{word} {self}")
    }
}

/// `5400-5499, 15400-15499`.
impl fmt::Display for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The built-in purposes.
pub(super) fn defaults() -> BTreeMap<String, Ranges> {
    DEFAULT_PURPOSES
        .iter()
        .map(|(n, r)| (n.to_string(), Ranges::one(*r)))
        .collect()
}

impl Checker<'_> {
    /// The `[purposes]` table as read (file order, so an overlap names
    /// the later purpose) into ranges sorted by purpose name.
    pub(super) fn purposes(
        &self,
        raw: IndexMap<String, Vec<String>>,
    ) -> Result<BTreeMap<String, Ranges>> {
        let mut purposes: BTreeMap<String, Ranges> = BTreeMap::new();
        // Every range so far, start to end. They are disjoint, so only the
        // one that starts last at or before a new range's end can overlap
        // it: O(log n) a range, where a config may list thousands.
        let mut taken: BTreeMap<u16, u16> = BTreeMap::new();
        for (name, texts) in raw {
            self.check_name("purposes", &name, "a purpose name")?;
            let key = format!("purposes.{name}");
            let mut ranges: Vec<PortRange> = Vec::new();
            for text in texts {
                let range = PortRange::parse(&text).map_err(|r| self.err(&key, r))?;
                let overlapped = taken
                    .range(..=range.end)
                    .next_back()
                    .is_some_and(|(_, end)| *end >= range.start);
                if overlapped {
                    // Name the first it overlaps: by purpose name, then
                    // this purpose's own earlier ranges.
                    let (other, r) = purposes
                        .iter()
                        .flat_map(|(n, rs)| rs.iter().map(move |r| (n.as_str(), r)))
                        .chain(ranges.iter().map(|r| (name.as_str(), *r)))
                        .find(|(_, r)| range.overlaps(r))
                        .expect("an overlapped range is among those taken");
                    return Err(self.err(
                        &key,
                        format!(
                            "range {range} overlaps purposes.{other} ({r}); ranges must be disjoint"
                        ),
                    ));
                }
                taken.insert(range.start, range.end);
                ranges.push(range);
            }
            let ranges = Ranges::new(ranges).ok_or_else(|| {
                self.err(
                    &key,
                    "expected a range \"START-END\" or an array of them, got an empty array",
                )
            })?;
            purposes.insert(name, ranges);
        }
        if purposes.is_empty() {
            return Err(self.err("purposes", "at least one purpose is needed"));
        }
        Ok(purposes)
    }
}

//! The file's shape as serde reads it, TOML and JSON alike: tables and
//! typed values, nothing checked beyond types. What the values mean (a
//! range, a variable name) is checked by the concept modules when they
//! turn this into a [`super::Config`]; a value whose refusal is made as
//! it is read (`retries`, a duration: [`ReadDuration`]) is the value's
//! error, placed at its line and column as a type error is.
//!
//! Every optional key is `#[serde(default, deserialize_with = ...)]`:
//! absent is `None`, but a JSON `null` is a type error like any other
//! wrong type, not a silent "absent". Tables are read as tables only
//! ([`table`]): serde would also fill a struct from an array. A key given
//! twice in one table (JSON allows it, TOML's syntax does not), known or
//! not, is an error placed where it is given the second time ([`twice`]).
//!
//! What a type error expects is said in words both formats share
//! (`array`, `string`), or as [`TABLE`], which a JSON file's message calls
//! an object ([`super::Syntax::type_words`]).

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// What a table's type error expects: `expected a table, got array`.
pub(super) const TABLE: &str = "a table";

/// The top level.
#[derive(Deserialize)]
pub(super) struct RawConfig {
    #[serde(default, deserialize_with = "table")]
    pub worktrees: Option<RawWorktrees>,
    #[serde(default, deserialize_with = "table")]
    pub allocation: Option<RawAllocation>,
    /// `name = "LO-HI"` or `name = ["LO-HI", ...]`, as a list either way.
    #[serde(default, deserialize_with = "present_purposes")]
    pub purposes: Option<IndexMap<String, Vec<String>>>,
    #[serde(default, deserialize_with = "services")]
    pub services: Option<IndexMap<String, RawService>>,
    #[serde(default, deserialize_with = "entries")]
    pub env: Option<IndexMap<String, String>>,
}

/// The keys the table at `path` (its keys, outermost first; empty for the
/// top level) may have, in the order of its struct: the struct's own
/// fields as serde reads them ([`fields`]), so no list is kept beside
/// it. `None` where the keys are names the file chooses (`[purposes]`,
/// `[services]`, `[env]`) or where there is no table.
pub(super) fn keys_at(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        [] => fields::<RawConfig>(),
        ["worktrees"] => fields::<RawWorktrees>(),
        ["allocation"] => fields::<RawAllocation>(),
        ["services", _] => fields::<RawService>(),
        ["services", _, "health"] => fields::<RawHealth>(),
        _ => return None,
    })
}

#[derive(Deserialize)]
pub(super) struct RawWorktrees {
    #[serde(default, deserialize_with = "present")]
    pub root: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub branch: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub default_purpose: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub direnv_allow: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct RawAllocation {
    #[serde(default, deserialize_with = "present")]
    pub skip_occupied: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct RawService {
    /// `env = "NAME"` or `env = ["NAME", ...]`.
    #[serde(default, deserialize_with = "present_names")]
    pub env: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub run: Option<String>,
    #[serde(default, deserialize_with = "positive_duration")]
    pub ready_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "table")]
    pub health: Option<RawHealth>,
    #[serde(default, deserialize_with = "present_list")]
    pub depends_on: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub restart: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub socket: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub bind: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawHealth {
    #[serde(default, deserialize_with = "present")]
    pub http: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub cmd: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub tcp: Option<bool>,
    #[serde(default, deserialize_with = "positive_duration")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "positive_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub start_period: Option<Duration>,
    #[serde(default, deserialize_with = "present_retries")]
    pub retries: Option<u32>,
}

/// A duration as written: text (`"30s"`, `"30"`) or a number of seconds
/// (`30`, `0.5`), read by [`super::services::duration`].
pub(super) enum RawDuration {
    Text(String),
    /// The seconds, and the number as the file wrote it, for a refusal.
    Seconds(f64, String),
}

/// A duration ([`RawDuration`]), read as it is read, so that a refusal is
/// the value's error, placed at its line and column as a type error is.
/// `positive`: a deadline or a period, which must be longer than zero.
struct ReadDuration {
    positive: bool,
}

impl ReadDuration {
    fn read<E: de::Error>(&self, raw: RawDuration) -> Result<Duration, E> {
        super::services::duration(raw, self.positive).map_err(E::custom)
    }
}

impl Visitor<'_> for ReadDuration {
    type Value = Duration;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("seconds (30) or a duration (\"30s\")")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
        self.read(RawDuration::Text(s.to_owned()))
    }
    // `as f64` rounds past 2^53 seconds: far over a year, refused either
    // way.
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        self.read(RawDuration::Seconds(n as f64, n.to_string()))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        self.read(RawDuration::Seconds(n as f64, n.to_string()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
        self.read(RawDuration::Seconds(n, format!("{n:?}")))
    }
}

/// `start_period`: any duration, zero included.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(ReadDuration { positive: false })
        .map(Some)
}

/// `ready_timeout`, `interval`, `timeout`: longer than zero.
fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(ReadDuration { positive: true }).map(Some)
}

/// The field names serde's derive gives `T` (`FIELDS`, which it keeps
/// private): `T` is asked to read itself from a deserializer that notes
/// the names a struct hands it and reads nothing. Empty for a type that is
/// not a plain struct (a `flatten`ed one asks for a map).
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("the fields are noted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut noted: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut noted));
    noted
}

/// A key that is there: its value, of its type (`null` included in the
/// type check).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A table's entries, in file order. A key given twice (JSON allows it) is
/// an error ([`twice`]), not "the last one wins".
fn entries<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
    d: D,
) -> Result<Option<IndexMap<String, V>>, D::Error> {
    struct Entries<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
        type Value = IndexMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(TABLE)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = IndexMap::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(twice(&mut map));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Entries(PhantomData)).map(Some)
}

/// The services: tables, each read as [`table`] reads one (serde's derive
/// would read a service from its map as it comes, and expect a `struct
/// RawService`).
fn services<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<IndexMap<String, RawService>>, D::Error> {
    struct Service(RawService);
    impl<'de> Deserialize<'de> for Service {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct_table(d).map(Service)
        }
    }
    let map: Option<IndexMap<String, Service>> = entries(d)?;
    Ok(map.map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect()))
}

/// A key that holds a table: [`struct_table`].
fn table<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    struct_table(d).map(Some)
}

/// A table, and only a table, read as a struct, each of its keys once
/// ([`Once`]).
pub(super) fn struct_table<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    struct Table<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Table<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(TABLE)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let map = Once {
                map,
                seen: HashSet::new(),
            };
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Table(PhantomData))
}

/// A struct's table with every key checked to be there once, known or
/// unknown: serde's derive would refuse a known one in its own words
/// ("duplicate field") and let an unknown one pass, to be ignored twice.
struct Once<A> {
    map: A,
    seen: HashSet<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Once<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key::<String>()? else {
            return Ok(None);
        };
        if !self.seen.insert(key.clone()) {
            return Err(twice(&mut self.map));
        }
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// The error for the key `map` has just read, given a second time in its
/// table: `it is given twice`. It is raised as the key's value is read,
/// so that it comes with the key's path (`services.web.zz`, which
/// `serde_path_to_error` makes as a value is read) and, in JSON, with the
/// line and column where that value begins.
fn twice<'de, A: MapAccess<'de>>(map: &mut A) -> A::Error {
    const TWICE: &str = "it is given twice";
    struct Twice;
    impl<'de> DeserializeSeed<'de> for Twice {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
            Err(de::Error::custom(TWICE))
        }
    }
    // `Twice` never reads a value: this is its error, or the file's.
    map.next_value_seed(Twice)
        .map_or_else(|e| e, |()| de::Error::custom(TWICE))
}

fn present_purposes<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<IndexMap<String, Vec<String>>>, D::Error> {
    /// One purpose's value, as a list.
    struct Purpose(Vec<String>);
    impl<'de> Deserialize<'de> for Purpose {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Strings {
                one: true,
                expecting: "a string \"START-END\" or an array of them",
            })
            .map(Purpose)
        }
    }
    let map: Option<IndexMap<String, Purpose>> = entries(d)?;
    Ok(map.map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect()))
}

fn present_names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    d.deserialize_any(Strings {
        one: true,
        expecting: "a string or an array of strings",
    })
    .map(Some)
}

fn present_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    d.deserialize_any(Strings {
        one: false,
        expecting: "an array of service names",
    })
    .map(Some)
}

/// `retries`: a whole number from 1 to 1000.
fn present_retries<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    struct Retries;
    const EXPECTING: &str = "a whole number from 1 to 1000";
    impl Visitor<'_> for Retries {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(EXPECTING)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u32, E> {
            u32::try_from(n)
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(n), &EXPECTING))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u32, E> {
            match u64::try_from(n) {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(E::invalid_value(de::Unexpected::Signed(n), &EXPECTING)),
            }
        }
        // JSON has one type of number: `3.0` (or `1e3`) is a whole number
        // there, and refusing it as "not a whole number" contradicted itself.
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<u32, E> {
            if n.fract() == 0.0 && (1.0..=1000.0).contains(&n) {
                Ok(n as u32)
            } else {
                Err(E::invalid_value(de::Unexpected::Float(n), &EXPECTING))
            }
        }
    }
    d.deserialize_any(Retries).map(Some)
}

/// An array of strings, or (`one`) a single string standing for an array
/// of one.
struct Strings {
    one: bool,
    expecting: &'static str,
}

impl<'de> Visitor<'de> for Strings {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<String>, E> {
        if self.one {
            Ok(vec![s.to_owned()])
        } else {
            Err(E::invalid_type(de::Unexpected::Str(s), &self))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(items)
    }
}

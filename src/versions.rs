//! State another wtenv wrote: a file of wtenv's (the registry, a
//! background record) this one cannot read is refused and left as it is,
//! never read as empty, overwritten, renamed or deleted (the rule, and
//! why: docs/ARCHITECTURE.md, "Versions"). A field this wtenv does not
//! know is said with its likely cause first: a newer wtenv wrote it.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The field serde's "unknown field" error names, as the file spells it;
/// `None` for any other error.
fn unknown_field(e: &serde_json::Error) -> Option<String> {
    let text = e.to_string();
    let rest = text.strip_prefix("unknown field `")?;
    // serde writes the name as the file spells it, then `, expected ...`
    // (or `, there are no fields`).
    let name = rest
        .split_once("`, expected")
        .or_else(|| rest.split_once("`, there are no fields"))?
        .0;
    Some(name.to_owned())
}

/// `it was probably written by a newer wtenv: line 4 has a field this
/// wtenv does not know, `leader_start``, when `e` (the error of reading
/// `bytes` as a `T`) is serde's "unknown field" and the fields `T` does
/// not know are all that keeps `bytes` from reading as one: a file that
/// lacks a field or holds a wrong value is no newer wtenv's (`None`, said
/// in the caller's words for it).
pub fn newer_field<T: DeserializeOwned>(bytes: &[u8], e: &serde_json::Error) -> Option<String> {
    let first = unknown_field(e)?;
    let mut value: Value = serde_json::from_slice(bytes).ok()?;
    let mut unknown = first.clone();
    // One name a round: a bound, for a file with many.
    for _ in 0..32 {
        remove_key(&mut value, &unknown);
        match serde_json::from_value::<T>(value.clone()) {
            Ok(_) => {
                return Some(format!(
                    "it was probably written by a newer wtenv: line {} has a field this wtenv does not know, `{}`",
                    e.line(),
                    crate::process::printable(&first)
                ));
            }
            Err(e) => unknown = unknown_field(&e)?,
        }
    }
    None
}

/// Removes the key `name` from every object in `value`.
fn remove_key(value: &mut Value, name: &str) {
    match value {
        Value::Object(map) => {
            map.remove(name);
            map.values_mut().for_each(|v| remove_key(v, name));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove_key(v, name)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Hold {
        pid: u32,
        #[serde(default)]
        inner: Vec<Hold>,
    }

    fn newer(text: &str) -> Option<String> {
        let e = serde_json::from_str::<Hold>(text).unwrap_err();
        newer_field::<Hold>(text.as_bytes(), &e)
    }

    #[test]
    fn a_field_this_wtenv_does_not_know_is_named_with_its_line() {
        assert_eq!(
            newer("{\"pid\": 1,\n\"leader_start\": 2}").unwrap(),
            "it was probably written by a newer wtenv: line 2 has a field this wtenv does not know, `leader_start`"
        );
        // Several, nested: the first is named.
        let nested = "{\"pid\": 1, \"inner\": [{\"pid\": 2, \"b\": 3}], \"a\": 1}";
        assert!(newer(nested).unwrap().ends_with("`b`"), "{nested}");
        // Named escaped.
        let escaped = newer("{\"pid\": 1, \"a`b\\u001b\": 1}").unwrap();
        assert!(escaped.ends_with(r"`a`b\u{1b}`"), "{escaped}");
    }

    #[test]
    fn a_file_that_is_wrong_besides_is_no_newer_wtenvs() {
        for other in [
            "{\"leader_start\": 2}",
            "{\"pid\": \"x\", \"leader_start\": 2}",
            "{\"pid\": 1, \"inner\": [{\"b\": 3}]}",
            "{\"pid\": \"x\"}",
            "{",
        ] {
            assert_eq!(newer(other), None, "{other}");
        }
    }
}

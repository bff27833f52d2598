//! What `systemctl --user show` says of units: one call for every unit a
//! command asks about (`systemctl --user show -p A -p B -- U1 U2 ...`),
//! and the one parser of its output, by unit.

use std::process::Stdio;

/// The properties of some units, as one `systemctl show` gave them.
#[derive(Debug, Default)]
pub struct Shown {
    /// Each unit asked for, with its `KEY=VALUE` lines.
    units: Vec<(String, Vec<(String, String)>)>,
}

/// Asks the user manager, in one `systemctl --user show`, for
/// `properties` of each of `units`; `None` when none answered (no user
/// manager, `systemctl` missing). A unit it does not know is answered
/// all the same (`LoadState=not-found`, empty values).
pub fn ask<S: AsRef<str>>(units: &[S], properties: &[&str]) -> Option<Shown> {
    if units.is_empty() {
        return Some(Shown::default());
    }
    let mut args = vec!["show".to_owned(), "--property=Id".to_owned()];
    args.extend(properties.iter().map(|p| format!("--property={p}")));
    args.push("--".into());
    args.extend(units.iter().map(|u| u.as_ref().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = super::systemctl(&args).stderr(Stdio::null()).output();
    match out {
        Ok(o) if o.status.success() => Some(parse(&String::from_utf8_lossy(&o.stdout), units)),
        _ => None,
    }
}

/// `systemctl show` output for `units`: a block of `KEY=VALUE` lines per
/// unit, in the order they were asked for, an empty line between two.
/// `Id` is always asked ([`ask`]), so no block is empty and the blocks
/// keep their places (a unit named by an alias has its `Id` by its own
/// name: the place, not the `Id`, says which unit a block is of).
pub fn parse<S: AsRef<str>>(text: &str, units: &[S]) -> Shown {
    let mut blocks = vec![Vec::new()];
    for line in text.lines() {
        if line.is_empty() {
            if blocks.last().is_some_and(|b: &Vec<_>| !b.is_empty()) {
                blocks.push(Vec::new());
            }
            continue;
        }
        if let (Some((key, value)), Some(block)) = (line.split_once('='), blocks.last_mut()) {
            block.push((key.to_owned(), value.to_owned()));
        }
    }
    Shown {
        units: units
            .iter()
            .map(|u| u.as_ref().to_owned())
            .zip(blocks)
            .collect(),
    }
}

impl Shown {
    /// The value of `property` for `unit` (its first, when repeated);
    /// empty when not shown (a unit not asked for, a property it has not).
    pub fn get(&self, unit: &str, property: &str) -> &str {
        self.units
            .iter()
            .find(|(name, _)| name == unit)
            .and_then(|(_, lines)| lines.iter().find(|(k, _)| k == property))
            .map_or("", |(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from the user manager the integration tests start: an
    /// exported unit (linked into the manager's directory), a transient
    /// one (`up -d`), one it does not know, and a socket unit, asked
    /// together.
    const EXPORTED: &str = "\
Id=wtenv-repo_f10b355d-sockwt-sock.service
FragmentPath=/tmp/wtenv-testKM9scQ/config/systemd/user/wtenv-repo_f10b355d-sockwt-sock.service
Transient=no

Id=wtenv-repo_f10b355d-repo-web.service
FragmentPath=/tmp/wtenv-testKM9scQ/run/systemd/transient/wtenv-repo_f10b355d-repo-web.service
Transient=yes

Id=wtenv-nothing.service
FragmentPath=
Transient=no

Id=wtenv-repo_f10b355d-sockwt-sock.socket
FragmentPath=/tmp/wtenv-testKM9scQ/config/systemd/user/wtenv-repo_f10b355d-sockwt-sock.socket
Transient=no
";

    /// Captured likewise: the state of a running transient unit, of a
    /// loaded inactive one and of one the manager does not know.
    const LIVE: &str = "\
MainPID=9133
NRestarts=0
Id=wtenv-repo_7ea21d56-repo-web.service
LoadState=loaded
ActiveState=active
ActiveEnterTimestampMonotonic=85584857332

MainPID=0
NRestarts=0
Id=wtenv-repo_7ea21d56-sockwt-sock.service
LoadState=loaded
ActiveState=inactive
ActiveEnterTimestampMonotonic=0

MainPID=0
NRestarts=0
Id=wtenv-nothing.service
LoadState=not-found
ActiveState=inactive
ActiveEnterTimestampMonotonic=0
";

    #[test]
    fn each_block_is_the_unit_asked_for_in_its_place() {
        let units = [
            "wtenv-repo_f10b355d-sockwt-sock.service",
            "wtenv-repo_f10b355d-repo-web.service",
            "wtenv-nothing.service",
            "wtenv-repo_f10b355d-sockwt-sock.socket",
        ];
        let shown = parse(EXPORTED, &units);
        assert_eq!(shown.get(units[0], "Transient"), "no");
        assert_eq!(
            shown.get(units[0], "FragmentPath"),
            "/tmp/wtenv-testKM9scQ/config/systemd/user/wtenv-repo_f10b355d-sockwt-sock.service"
        );
        assert_eq!(shown.get(units[1], "Transient"), "yes");
        assert_eq!(shown.get(units[2], "FragmentPath"), "");
        assert!(shown.get(units[3], "FragmentPath").ends_with(".socket"));
        // Not asked for, or not shown: empty.
        assert_eq!(shown.get("other.service", "Transient"), "");
        assert_eq!(shown.get(units[0], "MainPID"), "");

        let units = [
            "wtenv-repo_7ea21d56-repo-web.service",
            "wtenv-repo_7ea21d56-sockwt-sock.service",
            "wtenv-nothing.service",
        ];
        let shown = parse(LIVE, &units);
        assert_eq!(shown.get(units[0], "MainPID"), "9133");
        assert_eq!(shown.get(units[1], "ActiveState"), "inactive");
        assert_eq!(shown.get(units[2], "LoadState"), "not-found");
    }

    #[test]
    fn a_unit_named_by_an_alias_is_found_by_its_place() {
        let text = "Id=real.service\nTransient=no\n\nId=b.service\nTransient=yes\n";
        let shown = parse(text, &["alias.service", "b.service"]);
        assert_eq!(shown.get("alias.service", "Transient"), "no");
        assert_eq!(shown.get("b.service", "Transient"), "yes");
    }
}

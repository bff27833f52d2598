//! Registries for the readers' tests: entries, files in the written
//! layout, and what the full parse makes of them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;

use super::layout::{self, serialize};
use super::{
    Allocation, FILE_NAME, Hold, Registry, RegistryData, VERSION, check_ports, now_rfc3339,
};

pub fn full(bytes: &[u8], repository: &Path, worktree: &Path) -> Option<RegistryData> {
    let mut data = serde_json::from_slice::<RegistryData>(bytes)
        .ok()
        .filter(|d| d.version == VERSION && check_ports(&d.allocations).is_ok())?;
    data.allocations
        .retain(|a| a.belongs_to(repository, worktree));
    Some(data)
}

pub const REPO: &str = "/r/.git";
pub const WT: &str = "/r";

/// `entries` as the lines of the layout wtenv writes.
pub fn layout_of(entries: &[&str]) -> String {
    format!(
        "{}\n  {}\n]}}\n",
        layout::header(VERSION),
        entries.join(",\n  ")
    )
}

pub fn allocation() -> impl Strategy<Value = Allocation> {
    let text = "[a-z/\"\\\\é\n\t\u{1}, ]{0,12}";
    (
        any::<u16>(),
        text,
        text,
        0u8..5,
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(port, service, command, mine, reserved, pid)| Allocation {
            port,
            service: service.clone(),
            purpose: service,
            repository: REPO.into(),
            worktree: ["/r/other", WT, "/r/a", "/a", "/z"][usize::from(mine)].into(),
            created: "2026-01-01T00:00:00Z".into(),
            reserved,
            adhoc: false,
            holders: if reserved {
                vec![]
            } else {
                vec![Hold {
                    pid,
                    start_time: 7,
                    command,
                    pgid: Some(pid),
                    leader_start: None,
                    session: None,
                    unit: None,
                }]
            },
        })
}

/// What wtenv writes of `allocations` (made by [`allocation`]): one port
/// per service of a worktree, the first of each kept.
pub fn one_per_service(allocations: &mut Vec<Allocation>) {
    let mut services = std::collections::HashSet::new();
    allocations
        .retain(|a| services.insert((a.repository.clone(), a.worktree.clone(), a.service.clone())));
}

pub fn written(allocations: Vec<Allocation>) -> Vec<u8> {
    serialize(&RegistryData {
        version: VERSION,
        allocations,
    })
    .unwrap()
}

pub const ENTRY: &str = r#"{"port": 5000, "service": "app", "purpose": "feature", "repository": "/r/.git", "worktree": "/r", "created": "2026-01-01T00:00:00Z", "reserved": true}"#;

/// An empty registry in a private temporary directory.
pub fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let reg = Registry::new(dir.path().join(FILE_NAME));
    (dir, reg)
}

/// A reserved allocation of worktree `/r` of `/r/.git`.
pub fn alloc(port: u16) -> Allocation {
    Allocation {
        port,
        service: "app".into(),
        purpose: "feature".into(),
        repository: "/r/.git".into(),
        worktree: "/r".into(),
        created: now_rfc3339(),
        reserved: true,
        holders: vec![],
        adhoc: false,
    }
}

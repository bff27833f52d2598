//! The registry and allocation through the real binary.

use crate::support::{TestEnv, run};

#[test]
fn env_allocates_lowest_port_and_is_sticky() {
    let t = TestEnv::new();
    let first = run(&mut t.wtenv(&["env"]));
    assert_eq!(first.code, Some(0), "{first}");
    assert!(
        first
            .stdout
            .contains(&format!("export PORT='{}'\n", t.ports.start)),
        "{first}"
    );
    let again = run(&mut t.wtenv(&["env"]));
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(t.allocations().len(), 1);
}

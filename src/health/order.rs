//! Start order of `wtenv up`'s services: dependencies first, ties in
//! config order, and the config error for a cycle or an unknown name.

use std::collections::BTreeSet;
use std::fmt;

/// A dependency problem: a config error naming the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    /// `service` depends on `missing`, which is not a service.
    Unknown { service: String, missing: String },
    /// These services depend on each other in a ring (first repeated last).
    Cycle(Vec<String>),
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::Unknown { service, missing } => {
                write!(
                    f,
                    "service {service} depends on {missing:?}, which is not a service"
                )
            }
            OrderError::Cycle(ring) => write!(f, "dependency cycle: {}", ring.join(" -> ")),
        }
    }
}

/// Checks a dependency graph (`(service, its depends_on)` in config
/// order): every name known, no cycle. The first problem found, in config
/// order, so the message is stable.
pub fn find_cycle(graph: &[(&str, &[String])]) -> Result<(), OrderError> {
    let index = |name: &str| graph.iter().position(|(n, _)| *n == name);
    for (service, deps) in graph {
        for d in deps.iter() {
            if index(d).is_none() {
                return Err(OrderError::Unknown {
                    service: (*service).to_owned(),
                    missing: d.clone(),
                });
            }
        }
    }
    // Depth-first search with colours; the grey path is the ring.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    fn visit(
        i: usize,
        graph: &[(&str, &[String])],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Grey;
        path.push(i);
        for d in graph[i].1.iter() {
            let j = graph
                .iter()
                .position(|(n, _)| n == d)
                .expect("names checked above");
            match marks[j] {
                Mark::Grey => {
                    let from = path.iter().position(|&p| p == j).expect("grey is on path");
                    let mut ring = path[from..].to_vec();
                    ring.push(j);
                    return Some(ring);
                }
                Mark::White => {
                    if let Some(ring) = visit(j, graph, marks, path) {
                        return Some(ring);
                    }
                }
                Mark::Black => {}
            }
        }
        path.pop();
        marks[i] = Mark::Black;
        None
    }
    let mut marks = vec![Mark::White; graph.len()];
    for i in 0..graph.len() {
        if marks[i] == Mark::White
            && let Some(ring) = visit(i, graph, &mut marks, &mut Vec::new())
        {
            return Err(OrderError::Cycle(
                ring.into_iter().map(|i| graph[i].0.to_owned()).collect(),
            ));
        }
    }
    Ok(())
}

/// The services (indices into `graph`) to start from `wanted`: `wanted`
/// and everything it depends on, in a dependency order (a service after
/// its dependencies; otherwise config order). The graph must have passed
/// [`find_cycle`].
pub fn start_order(graph: &[(&str, &[String])], wanted: &[usize]) -> Vec<usize> {
    let index = |name: &str| graph.iter().position(|(n, _)| *n == name);
    let mut needed = BTreeSet::new();
    let mut stack: Vec<usize> = wanted.to_vec();
    while let Some(i) = stack.pop() {
        if needed.insert(i) {
            stack.extend(graph[i].1.iter().filter_map(|d| index(d)));
        }
    }
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    while placed.len() < needed.len() {
        let before = placed.len();
        for &i in &needed {
            if !placed.contains(&i)
                && graph[i]
                    .1
                    .iter()
                    .all(|d| index(d).is_some_and(|j| placed.contains(&j)))
            {
                placed.insert(i);
                order.push(i);
            }
        }
        assert!(placed.len() > before, "start_order needs an acyclic graph");
    }
    order
}

/// Whether a service can start: all its dependencies are ready.
pub fn may_start(deps: &[String], ready: &BTreeSet<String>) -> bool {
    deps.iter().all(|d| ready.contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph<'a>(edges: &'a [(&'a str, Vec<String>)]) -> Vec<(&'a str, &'a [String])> {
        edges.iter().map(|(n, d)| (*n, d.as_slice())).collect()
    }

    fn deps(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn dependencies_start_first_and_ties_keep_config_order() {
        let edges = [
            ("api", deps(&["db"])),
            ("db", deps(&[])),
            ("cache", deps(&[])),
            ("web", deps(&["api", "cache"])),
        ];
        let g = graph(&edges);
        assert_eq!(find_cycle(&g), Ok(()));
        // Rounds: db, cache first (config order), then api, then web.
        assert_eq!(start_order(&g, &[0, 1, 2, 3]), vec![1, 2, 0, 3]);
    }

    #[test]
    fn asking_for_one_service_brings_its_dependencies() {
        let edges = [
            ("api", deps(&["db"])),
            ("db", deps(&[])),
            ("other", deps(&[])),
            ("web", deps(&["api"])),
        ];
        let g = graph(&edges);
        assert_eq!(start_order(&g, &[3]), vec![1, 0, 3]);
    }

    #[test]
    fn a_cycle_names_its_ring() {
        let edges = [
            ("a", deps(&["b"])),
            ("b", deps(&["c"])),
            ("c", deps(&["a"])),
            ("d", deps(&[])),
        ];
        let e = find_cycle(&graph(&edges)).unwrap_err();
        assert_eq!(e, OrderError::Cycle(deps(&["a", "b", "c", "a"])));
        assert_eq!(e.to_string(), "dependency cycle: a -> b -> c -> a");
        let edges = [("a", deps(&["a"]))];
        assert_eq!(
            find_cycle(&graph(&edges)),
            Err(OrderError::Cycle(deps(&["a", "a"])))
        );
    }

    #[test]
    fn an_unknown_dependency_names_both() {
        let edges = [("web", deps(&["api"]))];
        let e = find_cycle(&graph(&edges)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "service web depends on \"api\", which is not a service"
        );
    }

    #[test]
    fn a_service_may_start_once_its_dependencies_are_ready() {
        let mut ready = BTreeSet::new();
        assert!(may_start(&[], &ready));
        assert!(!may_start(&deps(&["db"]), &ready));
        ready.insert("db".to_owned());
        assert!(may_start(&deps(&["db"]), &ready));
    }
}

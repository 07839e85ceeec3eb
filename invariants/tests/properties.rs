//! Properties of the pure parsers and evaluators, over generated input:
//! request paths, host names, the function route matcher, the routing
//! evaluator and the config log's diff/apply. Each property is something
//! the edge or the coordinator relies on, stated once for every input the
//! generators reach rather than for the cases someone thought of. Where a
//! fuzz target checks the same thing, the property calls that target's
//! check (`outpost_invariants`), so each invariant is written once: the
//! generators here reach deep structure quickly, the fuzzers odd bytes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use protocol::config::{
    Change, ChangeBatch, Entry, EnvKind, HostKind, HostTarget, Key, Keyspace, ProjectRuntime,
};
use protocol::functions::{FunctionEntry, RouteTable};
use protocol::hash::BlobHash;
use protocol::host::normalize_host;
use protocol::routing::{route, Action, Decision, RoutingConfig, Rule};

// ---- request paths -------------------------------------------------------

/// Request targets: mostly path-like (segments of a small alphabet with
/// dots, percent escapes and slashes), sometimes anything printable.
fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(
            prop_oneof![
                Just("a".to_string()),
                Just("..".to_string()),
                Just(".".to_string()),
                Just("%2e%2E".to_string()),
                Just("%2f".to_string()),
                Just("%5c".to_string()),
                Just("%00".to_string()),
                Just("%".to_string()),
                Just("%e2%82%ac".to_string()),
                Just("%ff".to_string()),
                Just("".to_string()),
                "[a-z0-9._~-]{1,12}",
            ],
            0..8,
        )
        .prop_flat_map(|segs| (Just(segs), any::<bool>(), "(\\?[a-z=&]{0,8})?"))
        .prop_map(|(segs, slash, query)| {
            let mut t = format!("/{}", segs.join("/"));
            if slash {
                t.push('/');
            }
            t + &query
        }),
        1 => "\\PC{0,64}",
        // Near the length limit.
        1 => (250usize..=255, 1usize..=5, any::<bool>()).prop_map(|(len, n, slash)| {
            let mut t = String::new();
            for _ in 0..n {
                t.push('/');
                t.push_str(&"x".repeat(len));
            }
            if slash {
                t.push('/');
            }
            t
        }),
    ]
}

proptest! {
    /// An accepted path stays inside the bundle (the `request_path` fuzz
    /// target's check, over path-shaped targets).
    #[test]
    fn an_accepted_request_path_stays_inside_the_bundle(t in target()) {
        outpost_invariants::requests::path(t.as_bytes());
    }

    /// Names are case-insensitive, a port and one trailing dot do not name
    /// another site, and normalising twice changes nothing.
    #[test]
    fn host_names_normalise_to_one_form(
        labels in proptest::collection::vec("[a-zA-Z0-9-]{1,64}", 1..5),
        port in proptest::option::of(0u32..70000),
        dot in any::<bool>(),
    ) {
        let name = labels.join(".");
        let mut raw = name.clone();
        if dot {
            raw.push('.');
        }
        if let Some(port) = port {
            raw.push_str(&format!(":{port}"));
        }
        match normalize_host(&raw) {
            Ok(n) => {
                prop_assert!(port.is_none_or(|p| p <= 65535), "port {port:?} accepted");
                prop_assert_eq!(n.as_ref(), name.to_ascii_lowercase());
                let again = normalize_host(&n).map(|h| h.into_owned());
                prop_assert_eq!(again, Ok(n.to_string()));
                prop_assert!(n.len() <= 253);
                prop_assert!(n.split('.').all(|l| !l.is_empty() && l.len() <= 63));
            }
            Err(_) => prop_assert!(
                normalize_host(&name).is_err() || port.is_some_and(|p| p > 65535),
                "{raw:?} refused although {name:?} is a name"
            ),
        }
    }

    /// Anything at all: refused, or in the one form (the `host_header`
    /// fuzz target's check).
    #[test]
    fn any_host_header_is_refused_or_normal(raw in "\\PC{0,80}") {
        outpost_invariants::requests::host(raw.as_bytes());
    }
}

// ---- the function route matcher ------------------------------------------

fn route_pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from),
            2 => prop_oneof![Just(":x"), Just(":y")].prop_map(String::from),
            1 => Just("*".to_string()),
        ],
        0..4,
    )
    .prop_map(|segs| format!("/{}", segs.join("/")))
}

fn request_segments() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")].prop_map(String::from),
        0..5,
    )
}

fn entry() -> FunctionEntry {
    FunctionEntry {
        component: BlobHash::of(b"component"),
        size: 1,
        timeout_ms: 1000,
        memory_bytes: 1 << 20,
    }
}

proptest! {
    /// A match binds exactly the route's parameters to the request's
    /// segments; a literal route always wins its own path; only a route
    /// that matches is returned.
    #[test]
    fn the_route_matcher_binds_what_the_route_names(
        patterns in proptest::collection::btree_set(route_pattern(), 0..8),
        segments in request_segments(),
    ) {
        let functions: BTreeMap<String, FunctionEntry> = patterns
            .iter()
            .filter(|p| protocol::functions::validate_route(p).is_ok())
            .map(|p| (p.clone(), entry()))
            .collect();
        let table = RouteTable::new(&functions);
        let found = table.matched(&segments);
        if let Some(m) = &found {
            let segs: Vec<&str> = m.route.split('/').filter(|s| !s.is_empty()).collect();
            let params = segs.iter().filter(|s| s.starts_with(':')).count();
            prop_assert_eq!(m.params.len(), params, "{} for {:?}", m.route, segments);
            for (i, s) in segs.iter().enumerate() {
                match *s {
                    "*" => break,
                    p if p.starts_with(':') => prop_assert!(m.params.iter().any(|(n, v)| n == &p[1..] && v == &segments[i])),
                    lit => prop_assert_eq!(Some(lit), segments.get(i).map(String::as_str)),
                }
            }
            if !segs.contains(&"*") {
                prop_assert_eq!(segs.len(), segments.len());
            }
        }
        let literal = format!("/{}", segments.join("/"));
        if functions.contains_key(&literal) {
            prop_assert_eq!(found.map(|m| m.route), Some(literal.as_str()));
        }
    }
}

// ---- the routing evaluator -----------------------------------------------

fn source() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => prop_oneof![Just("a"), Just("b"), Just("old")].prop_map(String::from),
            1 => Just(":x".to_string()),
            1 => Just(":rest*".to_string()),
            1 => Just("*".to_string()),
        ],
        0..4,
    )
    .prop_map(|segs| format!("/{}", segs.join("/")))
}

fn destination() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/new/:x".to_string()),
        Just("/index.html".to_string()),
        Just("/b/:rest*".to_string()),
        Just("/:splat".to_string()),
        Just("/$1".to_string()),
        Just("https://ext.example/:x".to_string()),
        Just("/to?from=:x".to_string()),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        source(),
        destination(),
        prop_oneof![
            Just(Action::Redirect { status: 301 }),
            Just(Action::Redirect { status: 308 }),
            Just(Action::Rewrite { status: 200 }),
            Just(Action::Rewrite { status: 404 }),
        ],
        any::<bool>(),
    )
        .prop_map(|(source, destination, action, force)| Rule {
            source,
            query: Vec::new(),
            destination,
            action,
            force,
        })
}

fn config() -> impl Strategy<Value = RoutingConfig> {
    (
        proptest::collection::vec(rule(), 0..6),
        any::<bool>(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(rules, clean_urls, trailing_slash)| RoutingConfig {
            rules,
            headers: Vec::new(),
            clean_urls,
            trailing_slash,
        })
        .prop_filter("a valid config", |c| c.validate().is_ok())
}

fn rooted_path() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("b"),
                Just("old"),
                Just("x.html"),
                Just("c d")
            ],
            0..4,
        ),
        any::<bool>(),
    )
        .prop_map(|(segs, slash)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash && p.len() > 1 {
                p.push('/');
            }
            p
        })
}

proptest! {
    /// An unforced rule never shadows an existing path; a same-site
    /// redirect never leaves the site (the routing fuzz targets' check, over
    /// generated configs and paths).
    #[test]
    fn each_decision_holds(
        cfg in config(),
        path in rooted_path(),
        query in proptest::option::of("[a-z]{1,3}=[a-z]{0,3}"),
        exists in any::<bool>(),
    ) {
        outpost_invariants::routing::decision_holds(&cfg, &path, query.as_deref(), exists);
    }

    /// The first rule that answers decides: rules after it change nothing.
    #[test]
    fn the_first_matching_rule_wins(
        cfg in config(),
        more in proptest::collection::vec(rule(), 1..4),
        path in rooted_path(),
        exists in any::<bool>(),
    ) {
        let decided = route(&cfg, &path, None, |_| exists);
        let longer = RoutingConfig {
            rules: cfg.rules.iter().cloned().chain(more).collect(),
            ..cfg.clone()
        };
        prop_assume!(longer.validate().is_ok());
        if decided != Decision::Pass {
            prop_assert_eq!(route(&longer, &path, None, |_| exists), decided);
        }
    }
}

// ---- the config log ------------------------------------------------------

fn change() -> impl Strategy<Value = Change> {
    let host = "[a-c]{1,2}\\.example";
    prop_oneof![
        (host, "[a-c]", "[0-9]", any::<bool>()).prop_map(|(h, project, deployment, preview)| {
            Change {
                key: Key::Host(h),
                value: Some(Entry::Host(HostTarget {
                    bundle: BlobHash::of(deployment.as_bytes()),
                    project,
                    deployment,
                    env: if preview {
                        EnvKind::Preview
                    } else {
                        EnvKind::Production
                    },
                    kind: HostKind::Production,
                })),
            }
        }),
        host.prop_map(|h| Change {
            key: Key::Host(h),
            value: None
        }),
        "[a-c]".prop_map(|p| Change {
            key: Key::Project(p),
            value: Some(Entry::Project(ProjectRuntime::default())),
        }),
        "[a-c]".prop_map(|p| Change {
            key: Key::Project(p),
            value: None
        }),
    ]
}

/// A keyspace as the coordinator builds one: through versioned batches.
fn keyspace() -> impl Strategy<Value = Keyspace> {
    proptest::collection::vec(proptest::collection::vec(change(), 0..6), 0..4).prop_map(|batches| {
        let mut ks = Keyspace::default();
        for changes in batches {
            let version = ks.version + 1;
            ks.apply(&ChangeBatch { version, changes })
                .expect("generated changes are valid");
        }
        ks
    })
}

proptest! {
    /// An edge at `a` that applies the diff to `b` holds exactly `b`.
    #[test]
    fn applying_a_diff_reaches_the_newer_keyspace(a in keyspace(), b in keyspace()) {
        let changes = a.diff(&b).unwrap();
        let mut c = a.clone();
        c.apply(&ChangeBatch { version: a.version + 1, changes }).unwrap();
        prop_assert_eq!(c.entries, b.entries);
    }

    /// A batch that does not follow the head changes nothing.
    #[test]
    fn an_out_of_order_batch_changes_nothing(
        a in keyspace(),
        changes in proptest::collection::vec(change(), 1..4),
        skip in 2u64..5,
    ) {
        let mut c = a.clone();
        let refused = c.apply(&ChangeBatch { version: a.version + skip, changes }).is_err();
        prop_assert!(refused, "a batch skipping versions was applied");
        prop_assert_eq!(c, a);
    }
}

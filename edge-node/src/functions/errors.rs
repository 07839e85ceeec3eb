//! Error tracking, the edge's side: an instance's failures folded per
//! (project, deployment, route, kind, message, frames) into
//! [`ErrorReport`]s, with a count, first and last times and the first
//! failure's request as the sample. `crate::errorship` takes them every
//! second and ships them to the coordinator.
//!
//! Only failures get here: the success path never touches the reporter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::errors::{
    bounded, ErrorReport, FailureKind, MAX_FRAME, MAX_FRAMES, MAX_MESSAGE, MAX_PATH,
};

/// Distinct failures kept per interval; the failures of any more are
/// counted as dropped.
pub const MAX_KEYS: usize = 1000;
// The bounds `ErrorReport::validate` applies to these fields.
const MAX_NAME: usize = 128;
const MAX_ROUTE: usize = 1024;
const MAX_METHOD: usize = 16;
const MAX_REQUEST_ID: usize = 64;

/// What failures must share to fold into one report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FailureKey {
    project: String,
    deployment: String,
    route: String,
    kind: FailureKind,
    message: String,
    frames: Vec<String>,
}

impl FailureKey {
    /// Every field cut to its bound (`frames` are already, see [`frames`]).
    pub fn new(
        project: &str,
        deployment: &str,
        route: &str,
        kind: FailureKind,
        message: &str,
        frames: Vec<String>,
    ) -> Self {
        FailureKey {
            project: bounded(project, MAX_NAME),
            deployment: bounded(deployment, MAX_NAME),
            route: bounded(route, MAX_ROUTE),
            kind,
            message: bounded(message, MAX_MESSAGE),
            frames,
        }
    }
}

/// The request of a report's first failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    status: u16,
    request_id: String,
    method: String,
    path: String,
    stderr: Vec<String>,
}

impl Sample {
    /// `path` loses its query; `stderr` is the request's tail as kept by
    /// its log sinks (already bounded).
    pub fn new(
        status: u16,
        request_id: &str,
        method: &str,
        path: &str,
        stderr: Vec<String>,
    ) -> Self {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        Sample {
            status,
            request_id: bounded(request_id, MAX_REQUEST_ID),
            method: bounded(method, MAX_METHOD),
            path: bounded(path, MAX_PATH),
            stderr,
        }
    }
}

struct Folded {
    sample: Sample,
    first_ms: i64,
    last_ms: i64,
    count: u32,
}

#[derive(Default)]
struct State {
    folded: HashMap<FailureKey, Folded>,
    /// Failures not kept because `folded` was full.
    dropped: u64,
}

/// What [`ErrorReporter::take`] hands over.
#[derive(Debug, Default)]
pub struct TakenErrors {
    pub reports: Vec<ErrorReport>,
    /// Failures of the interval left out (more than [`MAX_KEYS`] distinct).
    pub dropped: u64,
}

/// The node's folded failures since the last [`ErrorReporter::take`].
/// One per runtime ([`super::FunctionRuntime::errors`]).
#[derive(Default)]
pub struct ErrorReporter {
    // A std hash map: messages come from guests (SipHash resists floods).
    state: Mutex<State>,
}

impl ErrorReporter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one failure at `at_ms`. `sample` is only called for the
    /// first failure of its key in the interval.
    pub fn record(&self, key: FailureKey, at_ms: i64, sample: impl FnOnce() -> Sample) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let full = state.folded.len() >= MAX_KEYS;
        match state.folded.get_mut(&key) {
            Some(f) => {
                f.count = f.count.saturating_add(1);
                f.first_ms = f.first_ms.min(at_ms);
                f.last_ms = f.last_ms.max(at_ms);
            }
            None if full => state.dropped += 1,
            None => {
                let f = Folded {
                    sample: sample(),
                    first_ms: at_ms,
                    last_ms: at_ms,
                    count: 1,
                };
                state.folded.insert(key, f);
            }
        }
    }

    /// The reports of the interval, which starts afresh.
    pub fn take(&self) -> TakenErrors {
        let state = std::mem::take(&mut *self.state.lock().unwrap_or_else(|e| e.into_inner()));
        let mut reports: Vec<ErrorReport> = state
            .folded
            .into_iter()
            .map(|(k, f)| ErrorReport {
                project: k.project,
                deployment: k.deployment,
                route: k.route,
                kind: k.kind,
                message: k.message,
                frames: k.frames,
                stderr: f.sample.stderr,
                status: f.sample.status,
                request_id: f.sample.request_id,
                method: f.sample.method,
                path: f.sample.path,
                first_ms: f.first_ms,
                last_ms: f.last_ms,
                count: f.count,
            })
            .collect();
        reports.sort_by_key(|r| r.first_ms);
        TakenErrors {
            reports,
            dropped: state.dropped,
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A trap's message: the trap itself (`wasm trap: …`), else the first
/// line of the innermost error.
pub fn trap_message(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => {
            let root = error.root_cause().to_string();
            root.lines().next().unwrap_or("").to_string()
        }
    }
}

/// The guest's backtrace, innermost first, without the frames of the Rust
/// runtime; empty without one.
pub fn frames(error: &wasmtime::Error) -> Vec<String> {
    let Some(trace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return Vec::new();
    };
    let names = trace.frames().iter().map(|f| match f.func_name() {
        Some(name) => demangle(name),
        None => format!("<wasm function {}>", f.func_index()),
    });
    guest_frames(names.collect())
}

/// Rust names demangled without their hash; others as they are.
pub fn demangle(name: &str) -> String {
    let s = format!("{:#}", rustc_demangle::demangle(name));
    // Names a linker demangled already still carry the legacy hash.
    match s.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head.to_string()
        }
        _ => s,
    }
}

/// Frames of the Rust runtime, panic machinery, bindings and libc.
const RUNTIME_PREFIXES: &[&str] = &[
    "core::",
    "std::",
    "alloc::",
    "<core::",
    "<std::",
    "<alloc::",
    "__rust",
    "rust_panic",
    "rust_begin_unwind",
    "panic_abort",
    "wit_bindgen",
    "<wit_bindgen",
    "wasip2::",
    "<wasip2::",
    "abort",
    "__wasm_call_ctors",
    "cabi_",
    "wasi:",
];

/// Drops the runtime's frames so the first is the guest's own code (all
/// of them when nothing else is left), and bounds the list.
pub fn guest_frames(names: Vec<String>) -> Vec<String> {
    let own = |n: &String| !RUNTIME_PREFIXES.iter().any(|p| n.starts_with(p));
    let names = if names.iter().any(own) {
        names.into_iter().filter(own).collect()
    } else {
        names
    };
    names
        .iter()
        .take(MAX_FRAMES)
        .map(|n| bounded(n, MAX_FRAME))
        .collect()
}

/// The message of a Rust panic among the request's last stderr lines, if
/// it printed one. Since Rust 1.73 the message follows the location line
/// (`thread '…' panicked at src/lib.rs:9:9:`); before, it was quoted on it.
pub fn panic_message(stderr: &[String]) -> Option<String> {
    const MARK: &str = "panicked at";
    let i = stderr.iter().rposition(|l| l.contains(MARK))?;
    let line = &stderr[i];
    let at = &line[line.find(MARK)? + MARK.len()..];
    if let Some(quoted) = at.trim_start().strip_prefix('\'') {
        if let Some((message, _)) = quoted.rsplit_once("', ") {
            return Some(bounded(message, MAX_MESSAGE));
        }
    }
    let rest: Vec<&str> = stderr[i + 1..]
        .iter()
        .map(String::as_str)
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    let message = if rest.is_empty() {
        // Cut off (the tail is short): the location at least.
        line.trim().to_string()
    } else {
        rest.join("\n")
    };
    Some(bounded(&message, MAX_MESSAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(route: &str, message: &str) -> FailureKey {
        FailureKey::new("shop", "dpl_1", route, FailureKind::Trap, message, vec![])
    }

    fn sample(id: &str) -> Sample {
        Sample::new(500, id, "GET", "/api/fail?token=secret", vec!["e".into()])
    }

    #[test]
    fn failures_fold_per_key_with_the_first_sample() {
        let r = ErrorReporter::new();
        r.record(key("/a", "boom"), 20, || sample("first"));
        r.record(key("/a", "boom"), 10, || panic!("a repeat takes no sample"));
        r.record(key("/a", "boom"), 30, || panic!("a repeat takes no sample"));
        r.record(key("/a", "other"), 40, || sample("second"));
        r.record(key("/b", "boom"), 50, || sample("third"));
        let taken = r.take();
        assert_eq!(taken.dropped, 0);
        let got: Vec<_> = taken
            .reports
            .iter()
            .map(|r| {
                (
                    r.route.as_str(),
                    r.message.as_str(),
                    r.count,
                    r.first_ms,
                    r.last_ms,
                    r.request_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/a", "boom", 3, 10, 30, "first"),
                ("/a", "other", 1, 40, 40, "second"),
                ("/b", "boom", 1, 50, 50, "third"),
            ]
        );
        let first = &taken.reports[0];
        assert_eq!(first.path, "/api/fail", "the query stays out");
        assert!(first.validate().is_ok(), "{first:?}");
        // The next interval starts empty.
        assert!(r.take().reports.is_empty());
    }

    #[test]
    fn distinct_failures_are_bounded_per_interval() {
        let r = ErrorReporter::new();
        for i in 0..MAX_KEYS + 5 {
            r.record(key("/a", &format!("m{i}")), 1, || sample("s"));
        }
        // A key already kept still folds when the map is full.
        r.record(key("/a", "m0"), 2, || sample("s"));
        let taken = r.take();
        assert_eq!((taken.reports.len(), taken.dropped), (MAX_KEYS, 5));
        let m0 = taken.reports.iter().find(|r| r.message == "m0").unwrap();
        assert_eq!(m0.count, 2);
        assert_eq!(r.take().dropped, 0);
    }

    #[test]
    fn fields_are_cut_to_their_bounds() {
        let r = ErrorReporter::new();
        let long = "é".repeat(5000);
        let k = FailureKey::new(
            &long,
            &long,
            &long,
            FailureKind::Panic,
            &long,
            guest_frames(vec![long.clone(); 40]),
        );
        r.record(k, 1, || {
            Sample::new(500, &long, &long, &format!("/{long}"), vec![])
        });
        let report = &r.take().reports[0];
        assert!(report.validate().is_ok(), "{report:?}");
        assert_eq!(report.frames.len(), MAX_FRAMES);
    }

    #[test]
    fn runtime_frames_are_dropped() {
        let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(Vec<String>, Vec<String>)> = vec![
            (
                v(&[
                    "abort",
                    "std::sys::pal::wasi::helpers::abort_internal",
                    "std::process::abort",
                    "__rustc::__rust_start_panic",
                    "rust_panic",
                    "std::panicking::rust_panic_with_hook",
                    "std::panicking::begin_panic_handler::{{closure}}",
                    "__rustc::rust_begin_unwind",
                    "core::panicking::panic_fmt",
                    "fixture_panic::checkout_total",
                    "<fixture_panic::Panic as wasip2::exports::wasi::http::incoming_handler::Guest>::handle",
                    "wasip2::exports::wasi::http::incoming_handler::_export_handle_cabi",
                    "wasi:http/incoming-handler@0.2.12#handle",
                ]),
                v(&[
                    "fixture_panic::checkout_total",
                    "<fixture_panic::Panic as wasip2::exports::wasi::http::incoming_handler::Guest>::handle",
                ]),
            ),
            // Nothing of the guest's own: the raw list.
            (v(&["abort", "std::process::abort"]), v(&["abort", "std::process::abort"])),
            (v(&["<wasm function 7>"]), v(&["<wasm function 7>"])),
            (v(&[]), v(&[])),
        ];
        for (names, want) in cases {
            assert_eq!(guest_frames(names.clone()), want, "{names:?}");
        }
    }

    #[test]
    fn rust_names_are_demangled_without_hash() {
        for (raw, want) in [
            (
                "_ZN13fixture_panic14checkout_total17h49c693c044292fabE",
                "fixture_panic::checkout_total",
            ),
            (
                "_RNvNtCs9pv848UzQwQ_4core9panicking9panic_fmt",
                "core::panicking::panic_fmt",
            ),
            (
                "fixture_panic::checkout_total::h49c693c044292fab",
                "fixture_panic::checkout_total",
            ),
            (
                "wasi:http/incoming-handler@0.2.12#handle",
                "wasi:http/incoming-handler@0.2.12#handle",
            ),
            ("cabi_realloc", "cabi_realloc"),
            ("my::hash::hello", "my::hash::hello"),
        ] {
            assert_eq!(demangle(raw), want, "{raw}");
        }
    }

    #[test]
    fn panic_messages_from_stderr() {
        let v = |lines: &[&str]| lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(Vec<String>, Option<&str>)> =
            vec![
            (
                v(&[
                    "starting",
                    "thread '<unnamed>' panicked at src/lib.rs:9:9:",
                    "boom from wasm",
                    "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
                ]),
                Some("boom from wasm"),
            ),
            (
                v(&[
                    "thread 'main' panicked at src/lib.rs:3:5:",
                    "assertion `left == right` failed",
                    "  left: 1",
                    " right: 2",
                ]),
                Some("assertion `left == right` failed\n  left: 1\n right: 2"),
            ),
            (
                v(&["thread 'main' panicked at 'old style', src/lib.rs:9:9"]),
                Some("old style"),
            ),
            (
                v(&["thread 'main' panicked at src/lib.rs:9:9:"]),
                Some("thread 'main' panicked at src/lib.rs:9:9:"),
            ),
            (v(&["just an error", "memory allocation of 10 bytes failed"]), None),
            (v(&[]), None),
        ];
        for (stderr, want) in cases {
            assert_eq!(panic_message(&stderr).as_deref(), want, "{stderr:?}");
        }
    }

    #[test]
    fn trap_messages() {
        let trap = wasmtime::Error::from(wasmtime::Trap::UnreachableCodeReached);
        assert_eq!(
            trap_message(&trap),
            "wasm trap: wasm `unreachable` instruction executed"
        );
        let other = wasmtime::format_err!("first line\nsecond");
        assert_eq!(trap_message(&other), "first line");
        assert!(frames(&trap).is_empty());
    }
}

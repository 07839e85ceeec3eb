//! Error tracking: what a failure event is, and how events are grouped
//! into issues (pure; `store/errors.rs` keeps them, `app/errors.rs` reads
//! and changes them).
//!
//! Events come from the edges (function traps, panics, timeouts, memory
//! limits, 5xx answers; `EdgeRequest::Errors`) and from the coordinator
//! itself (build failures, deploys that fail to publish, certificate
//! orders that fail). An issue is the set of events with one
//! *fingerprint*, as Sentry groups them: the source and kind, where it
//! happened (the route, the domain), the message with its variable parts
//! (numbers, hex ids, addresses, quoted values) replaced, and the top
//! three frames of the guest's backtrace. The same bug with another id in
//! its message is one issue; a panic in another function is another.

pub mod fingerprint;

use serde::{Deserialize, Serialize};

pub use fingerprint::{fingerprint, normalise};

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Function,
    Build,
    Deploy,
    Certificate,
    /// An edge that could not load what it must serve.
    Edge,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Function => "function",
            Source::Build => "build",
            Source::Deploy => "deploy",
            Source::Certificate => "certificate",
            Source::Edge => "edge",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Some(match s {
            "function" => Source::Function,
            "build" => Source::Build,
            "deploy" => Source::Deploy,
            "certificate" => Source::Certificate,
            "edge" => Source::Edge,
            _ => return None,
        })
    }
}

/// How bad an issue is: set by [`default_severity`], editable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            _ => return None,
        })
    }
}

/// An issue's state. A new event reopens a resolved issue as `Regressed`;
/// an ignored one stays ignored (its count still grows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Unresolved,
    Resolved,
    Ignored,
    Regressed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unresolved => "unresolved",
            State::Resolved => "resolved",
            State::Ignored => "ignored",
            State::Regressed => "regressed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "unresolved" => State::Unresolved,
            "resolved" => State::Resolved,
            "ignored" => State::Ignored,
            "regressed" => State::Regressed,
            _ => return None,
        })
    }

    /// The state after a new event arrives.
    pub fn after_event(self) -> State {
        match self {
            State::Resolved => State::Regressed,
            s => s,
        }
    }

    /// Whether the issue needs attention (counted as open).
    pub fn is_open(self) -> bool {
        matches!(self, State::Unresolved | State::Regressed)
    }
}

/// One failure (or several identical ones folded by an edge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub project_id: String,
    pub deployment_id: Option<String>,
    pub source: Source,
    /// `panic`, `trap`, `timeout`, `memory_limit`, `no_response`,
    /// `http_5xx`, `build_failed`, `publish_failed`, `order_failed`, …
    pub kind: String,
    pub message: String,
    /// Where: a function's route, a build's branch, a domain.
    pub place: String,
    /// Guest backtrace function names, innermost first.
    pub frames: Vec<String>,
    /// Milliseconds since the Unix epoch (of the last folded failure).
    pub at: i64,
    pub first_at: i64,
    /// How many failures this event stands for.
    pub count: u32,
    /// What the sample shows: request id, method, path, status, stderr
    /// tail, node; a build's id; a CA's problem document.
    pub detail: serde_json::Value,
}

impl Event {
    /// The issue's title: kind and the message's first line.
    pub fn title(&self) -> String {
        let first = self.message.lines().next().unwrap_or("").trim();
        let title = if first.is_empty() {
            self.kind.clone()
        } else {
            format!("{}: {first}", self.kind)
        };
        protocol::errors::bounded(&title, 200)
    }

    /// Where it happened, for the list: the place and the top frame.
    pub fn culprit(&self) -> String {
        let c = match self.frames.first() {
            Some(f) if !self.place.is_empty() => format!("{} in {f}", self.place),
            Some(f) => f.clone(),
            None => self.place.clone(),
        };
        protocol::errors::bounded(&c, 300)
    }

    pub fn fingerprint(&self) -> String {
        // A bundle an edge cannot load is one problem whichever step
        // fails (the fetch, the check, the compile): grouped by bundle.
        let message = match self.source {
            Source::Edge => "",
            _ => &self.message,
        };
        fingerprint(self.source, &self.kind, &self.place, message, &self.frames)
    }
}

/// The severity an issue starts with.
pub fn default_severity(source: Source, kind: &str) -> Severity {
    match (source, kind) {
        (Source::Certificate, _) => Severity::Critical,
        (Source::Deploy, _) | (Source::Build, _) | (Source::Edge, _) => Severity::High,
        (Source::Function, "panic" | "trap" | "no_response") => Severity::High,
        (Source::Function, "timeout" | "memory_limit") => Severity::Medium,
        _ => Severity::Low,
    }
}

/// An edge's report as an event of its project (`project_id` resolved by
/// the caller from the report's project name).
pub fn from_report(project_id: String, node: &str, r: &protocol::errors::ErrorReport) -> Event {
    if r.kind == protocol::errors::FailureKind::SyncFailed {
        // Not a request's failure: the bundle an edge could not load.
        return Event {
            project_id,
            deployment_id: None,
            source: Source::Edge,
            kind: r.kind.as_str().to_string(),
            message: r.message.clone(),
            place: r.route.clone(),
            frames: Vec::new(),
            at: r.last_ms,
            first_at: r.first_ms,
            count: r.count,
            detail: serde_json::json!({ "node": node, "bundle": r.deployment }),
        };
    }
    Event {
        project_id,
        deployment_id: Some(r.deployment.clone()),
        source: Source::Function,
        kind: r.kind.as_str().to_string(),
        message: r.message.clone(),
        place: r.route.clone(),
        frames: r.frames.clone(),
        at: r.last_ms,
        first_at: r.first_ms,
        count: r.count,
        detail: serde_json::json!({
            "request_id": r.request_id,
            "method": r.method,
            "path": r.path,
            "status": r.status,
            "stderr": r.stderr,
            "frames": r.frames,
            "node": node,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_by_rule() {
        let cases = [
            (Source::Function, "panic", Severity::High),
            (Source::Function, "trap", Severity::High),
            (Source::Function, "timeout", Severity::Medium),
            (Source::Function, "memory_limit", Severity::Medium),
            (Source::Function, "http_5xx", Severity::Low),
            (Source::Build, "build_failed", Severity::High),
            (Source::Deploy, "publish_failed", Severity::High),
            (Source::Certificate, "order_failed", Severity::Critical),
        ];
        for (src, kind, want) in cases {
            assert_eq!(default_severity(src, kind), want, "{src:?} {kind}");
        }
    }

    #[test]
    fn a_resolved_issue_regresses_and_an_ignored_one_stays_ignored() {
        assert_eq!(State::Resolved.after_event(), State::Regressed);
        assert_eq!(State::Ignored.after_event(), State::Ignored);
        assert_eq!(State::Unresolved.after_event(), State::Unresolved);
        for s in ["unresolved", "resolved", "ignored", "regressed"] {
            assert_eq!(State::parse(s).unwrap().as_str(), s);
        }
        assert!(State::parse("closed").is_none());
    }

    #[test]
    fn a_bundle_that_does_not_load_is_one_issue_whatever_fails() {
        let report = |message: &str| protocol::errors::ErrorReport {
            project: "shop".into(),
            deployment: "ab".repeat(32),
            route: "bundle abababababab".into(),
            kind: protocol::errors::FailureKind::SyncFailed,
            message: message.into(),
            frames: vec![],
            stderr: vec![],
            status: 503,
            request_id: String::new(),
            method: String::new(),
            path: String::new(),
            first_ms: 1,
            last_ms: 2,
            count: 1,
        };
        let a = from_report("p".into(), "n1", &report("blob x not found"));
        let b = from_report("p".into(), "n2", &report("stream reset by peer"));
        assert_eq!((a.source, a.deployment_id.as_deref()), (Source::Edge, None));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(default_severity(a.source, &a.kind), Severity::High);
    }

    #[test]
    fn title_and_culprit() {
        let e = Event {
            project_id: "p".into(),
            deployment_id: None,
            source: Source::Function,
            kind: "panic".into(),
            message: "boom from wasm\nmore".into(),
            place: "/api/checkout".into(),
            frames: vec!["panic::checkout_total".into()],
            at: 1,
            first_at: 1,
            count: 1,
            detail: serde_json::json!({}),
        };
        assert_eq!(e.title(), "panic: boom from wasm");
        assert_eq!(e.culprit(), "/api/checkout in panic::checkout_total");
    }
}

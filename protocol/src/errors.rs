//! What an edge tells the coordinator about its functions' failures, for
//! error tracking: one [`ErrorReport`] per distinct failure of a route in a
//! short interval, with how many times it happened and one sample. The
//! edge folds repeats together, so a function failing ten thousand times
//! a second costs a few reports, not ten thousand.
//!
//! Every field is bounded; [`ErrorReport::validate`] is what the
//! coordinator checks before it stores anything.

use serde::{Deserialize, Serialize};

/// Reports in one `EdgeRequest::Errors` message.
pub const MAX_REPORTS: usize = 256;
/// Bytes of a report's message.
pub const MAX_MESSAGE: usize = 1024;
/// Frames of a backtrace kept (innermost first).
pub const MAX_FRAMES: usize = 16;
/// Bytes of one frame's function name.
pub const MAX_FRAME: usize = 256;
/// The last stderr lines kept with a failure.
pub const MAX_STDERR_LINES: usize = 10;
/// Bytes of one of them.
pub const MAX_STDERR_LINE: usize = 512;
/// Bytes of the sample request's path.
pub const MAX_PATH: usize = 512;

/// How a function failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// A trap (unreachable, out-of-bounds access, …) that was not a panic.
    Trap,
    /// A guest panic: a trap after the guest printed `panicked at`.
    Panic,
    /// The function's time limit.
    Timeout,
    /// The function's memory limit.
    Memory,
    /// The guest returned without sending a response.
    NoResponse,
    /// The function answered with a 5xx status itself.
    ServerError,
    /// The edge could not load a bundle it must serve (a manifest or blob
    /// that does not arrive or does not verify, a function that does not
    /// compile): `route` names the bundle, `deployment` is its id.
    SyncFailed,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory_limit",
            FailureKind::NoResponse => "no_response",
            FailureKind::ServerError => "http_5xx",
            FailureKind::SyncFailed => "sync_failed",
        }
    }
}

/// One failure of one route, folded over an interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub project: String,
    pub deployment: String,
    /// The function's route (`/api/users/:id`).
    pub route: String,
    pub kind: FailureKind,
    /// The error's first line (a trap's message, a panic's message).
    pub message: String,
    /// Function names of the guest's backtrace, innermost first, when the
    /// component has a name section.
    pub frames: Vec<String>,
    /// The sample request's last stderr lines (a panic's message is there).
    pub stderr: Vec<String>,
    /// The status answered (ours, or the function's for `ServerError`).
    pub status: u16,
    /// The sample request.
    pub request_id: String,
    pub method: String,
    pub path: String,
    /// When the first and last of the folded failures happened (ms since
    /// the Unix epoch).
    pub first_ms: i64,
    pub last_ms: i64,
    /// How many failures this report stands for (at least 1).
    pub count: u32,
}

impl ErrorReport {
    /// Whether the report is within every bound (the coordinator refuses
    /// the message otherwise).
    pub fn validate(&self) -> Result<(), String> {
        fn text(name: &str, s: &str, max: usize) -> Result<(), String> {
            if s.len() > max {
                return Err(format!("{name} longer than {max} bytes"));
            }
            Ok(())
        }
        text("project", &self.project, 128)?;
        text("deployment", &self.deployment, 128)?;
        text("route", &self.route, 1024)?;
        text("message", &self.message, MAX_MESSAGE)?;
        text("request_id", &self.request_id, 64)?;
        text("method", &self.method, 16)?;
        text("path", &self.path, MAX_PATH)?;
        if self.project.is_empty() || self.deployment.is_empty() {
            return Err("project and deployment are required".into());
        }
        if self.frames.len() > MAX_FRAMES {
            return Err(format!("more than {MAX_FRAMES} frames"));
        }
        for f in &self.frames {
            text("frame", f, MAX_FRAME)?;
        }
        if self.stderr.len() > MAX_STDERR_LINES {
            return Err(format!("more than {MAX_STDERR_LINES} stderr lines"));
        }
        for l in &self.stderr {
            text("stderr line", l, MAX_STDERR_LINE)?;
        }
        if !(100..=599).contains(&self.status) {
            return Err(format!("status {} is not an HTTP status", self.status));
        }
        if self.count == 0 || self.first_ms > self.last_ms || self.first_ms < 0 {
            return Err("count must be positive and first_ms <= last_ms".into());
        }
        Ok(())
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// What a node reports of its own resources with its status (for the
/// edge memory and disk alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// The host's memory in use (total minus available) and in all, bytes.
    pub memory_used: u64,
    pub memory_total: u64,
    /// The data directory's file system, bytes used and in all.
    pub disk_used: u64,
    pub disk_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ErrorReport {
        ErrorReport {
            project: "shop".into(),
            deployment: "dpl_1".into(),
            route: "/api/fail".into(),
            kind: FailureKind::Panic,
            message: "wasm trap: unreachable".into(),
            frames: vec!["panic::handle".into()],
            stderr: vec!["panicked at src/lib.rs:9:9: boom".into()],
            status: 500,
            request_id: "00ff".into(),
            method: "GET".into(),
            path: "/api/fail".into(),
            first_ms: 1,
            last_ms: 2,
            count: 3,
        }
    }

    #[test]
    fn reports_out_of_bounds_are_refused() {
        assert!(report().validate().is_ok());
        type Break = Box<dyn Fn(&mut ErrorReport)>;
        let cases: Vec<(&str, Break)> = vec![
            (
                "message",
                Box::new(|r| r.message = "x".repeat(MAX_MESSAGE + 1)),
            ),
            (
                "frames",
                Box::new(|r| r.frames = vec!["f".into(); MAX_FRAMES + 1]),
            ),
            (
                "frame",
                Box::new(|r| r.frames = vec!["f".repeat(MAX_FRAME + 1)]),
            ),
            (
                "stderr",
                Box::new(|r| r.stderr = vec!["l".into(); MAX_STDERR_LINES + 1]),
            ),
            ("path", Box::new(|r| r.path = "/".repeat(MAX_PATH + 1))),
            ("status", Box::new(|r| r.status = 42)),
            ("count", Box::new(|r| r.count = 0)),
            ("times", Box::new(|r| r.first_ms = 5)),
            ("project", Box::new(|r| r.project.clear())),
        ];
        for (name, break_it) in cases {
            let mut r = report();
            break_it(&mut r);
            assert!(r.validate().is_err(), "{name} accepted");
        }
    }

    #[test]
    fn bounded_cuts_on_a_character_boundary() {
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(bounded("héllo", 3), "hé");
        assert_eq!(bounded("abc", 10), "abc");
    }
}

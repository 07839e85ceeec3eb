//! The alert presets: what each measures, over what, and what its
//! threshold means (pure, table-tested). The evaluator (`evaluate.rs`)
//! reads the values; the state machine (`state.rs`) decides.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The original system's eight alert types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 5xx answers as a percentage of a project's requests over the window.
    ErrorRate,
    /// Function failures (traps, panics, timeouts, memory, 5xx answers)
    /// of a project in the window.
    FunctionError,
    /// Deploys of a project that failed to go live in the window.
    DeploymentFailure,
    /// Builds of a project that failed in the window.
    BuildFailure,
    /// A build of a project that took (or is taking) longer than the
    /// threshold in minutes.
    SlowDeployment,
    /// An edge's host memory in use, percent (instance-wide).
    HighMemory,
    /// A node's data disk in use, percent: edges and the coordinator
    /// (instance-wide).
    DiskSpace,
    /// A certificate with fewer days left than the threshold: a project's
    /// custom domains, or (instance-wide) the cluster CA and node
    /// certificates.
    SslExpiry,
}

pub const ALL: [Kind; 8] = [
    Kind::ErrorRate,
    Kind::FunctionError,
    Kind::DeploymentFailure,
    Kind::BuildFailure,
    Kind::SlowDeployment,
    Kind::HighMemory,
    Kind::DiskSpace,
    Kind::SslExpiry,
];

/// Whether a rule watches a project, the instance, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Project,
    Instance,
    Either,
}

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Above,
    Below,
}

impl Condition {
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Condition::Above => value > threshold,
            Condition::Below => value < threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Condition::Above => ">",
            Condition::Below => "<",
        }
    }
}

/// What a kind takes and means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub kind: Kind,
    pub scope: Scope,
    pub condition: Condition,
    /// What the value is, for messages.
    pub unit: &'static str,
    pub default_threshold: f64,
    pub min_threshold: f64,
    pub max_threshold: f64,
    /// Whether the rule looks back over a window (counts and rates do;
    /// gauges such as memory read the newest report).
    pub windowed: bool,
    pub default_window: Duration,
    pub severity: &'static str,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ErrorRate => "error_rate",
            Kind::FunctionError => "function_error",
            Kind::DeploymentFailure => "deployment_failure",
            Kind::BuildFailure => "build_failure",
            Kind::SlowDeployment => "slow_deployment",
            Kind::HighMemory => "high_memory",
            Kind::DiskSpace => "disk_space",
            Kind::SslExpiry => "ssl_expiry",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn preset(self) -> Preset {
        let m = |mins: u64| Duration::from_secs(mins * 60);
        let p = |scope, condition, unit, default, min, max, windowed, window, severity| Preset {
            kind: self,
            scope,
            condition,
            unit,
            default_threshold: default,
            min_threshold: min,
            max_threshold: max,
            windowed,
            default_window: window,
            severity,
        };
        use Condition::*;
        use Scope::*;
        match self {
            Kind::ErrorRate => p(
                Project,
                Above,
                "% of requests",
                5.0,
                0.0,
                100.0,
                true,
                m(5),
                "critical",
            ),
            Kind::FunctionError => p(
                Project,
                Above,
                "errors",
                0.0,
                0.0,
                1e9,
                true,
                m(5),
                "warning",
            ),
            Kind::DeploymentFailure => p(
                Project,
                Above,
                "failed deploys",
                0.0,
                0.0,
                1e6,
                true,
                m(15),
                "warning",
            ),
            Kind::BuildFailure => p(
                Project,
                Above,
                "failed builds",
                0.0,
                0.0,
                1e6,
                true,
                m(15),
                "warning",
            ),
            Kind::SlowDeployment => p(
                Project,
                Above,
                "minutes",
                15.0,
                0.0,
                1440.0,
                true,
                m(60),
                "warning",
            ),
            Kind::HighMemory => p(
                Instance,
                Above,
                "% memory",
                90.0,
                1.0,
                100.0,
                false,
                m(1),
                "warning",
            ),
            Kind::DiskSpace => p(
                Instance,
                Above,
                "% disk",
                90.0,
                1.0,
                100.0,
                false,
                m(1),
                "critical",
            ),
            Kind::SslExpiry => p(
                Either,
                Below,
                "days left",
                14.0,
                0.0,
                365.0,
                false,
                m(1),
                "critical",
            ),
        }
    }
}

/// Windows and `for` durations a rule may have.
pub const MIN_WINDOW: Duration = Duration::from_secs(60);
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_FOR: Duration = Duration::from_secs(24 * 3600);

/// A rule's parameters, checked against its preset. `project` says
/// whether it is a project's rule or the instance's.
pub fn validate(
    kind: Kind,
    project: bool,
    threshold: f64,
    window: Duration,
    for_: Duration,
) -> Result<(), String> {
    let p = kind.preset();
    match (p.scope, project) {
        (Scope::Project, false) => {
            return Err(format!("{} rules belong to a project", kind.as_str()))
        }
        (Scope::Instance, true) => {
            return Err(format!(
                "{} rules are instance-wide (for operators), not per project",
                kind.as_str()
            ))
        }
        _ => {}
    }
    if !threshold.is_finite() || threshold < p.min_threshold || threshold > p.max_threshold {
        return Err(format!(
            "the threshold of {} must be between {} and {} ({})",
            kind.as_str(),
            p.min_threshold,
            p.max_threshold,
            p.unit
        ));
    }
    if p.windowed && !(MIN_WINDOW..=MAX_WINDOW).contains(&window) {
        return Err("the window must be between 1m and 7d".into());
    }
    if for_ > MAX_FOR {
        return Err("for must be at most 24h".into());
    }
    Ok(())
}

/// A duration as the API takes it: humantime (`1m`, `90s`, `1h 30m`);
/// a leading `-` is refused by name (humantime's message says less).
pub fn parse_duration(field: &str, s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{field} {s:?} is negative"));
    }
    if t.len() > 32 {
        return Err(format!("{field} is too long"));
    }
    humantime::parse_duration(t).map_err(|e| format!("{field} {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Duration = Duration::from_secs(60);

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_refused() {
        for k in ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("cpu"), None);
        assert_eq!(Kind::parse(""), None);
    }

    #[test]
    fn rules_are_checked_against_their_presets() {
        let ok = [
            (Kind::ErrorRate, true, 5.0, M, Duration::ZERO),
            (Kind::FunctionError, true, 0.0, 5 * M, M),
            (Kind::HighMemory, false, 90.0, M, Duration::ZERO),
            (Kind::DiskSpace, false, 80.0, M, 5 * M),
            (Kind::SslExpiry, true, 14.0, M, Duration::ZERO),
            (Kind::SslExpiry, false, 30.0, M, Duration::ZERO),
            (Kind::SlowDeployment, true, 10.0, 60 * M, Duration::ZERO),
        ];
        for (k, project, t, w, f) in ok {
            assert_eq!(validate(k, project, t, w, f), Ok(()), "{k:?}");
        }
        let bad = [
            (
                Kind::ErrorRate,
                false,
                5.0,
                M,
                Duration::ZERO,
                "belong to a project",
            ),
            (
                Kind::HighMemory,
                true,
                90.0,
                M,
                Duration::ZERO,
                "instance-wide",
            ),
            (Kind::ErrorRate, true, 101.0, M, Duration::ZERO, "threshold"),
            (Kind::ErrorRate, true, -1.0, M, Duration::ZERO, "threshold"),
            (
                Kind::ErrorRate,
                true,
                f64::NAN,
                M,
                Duration::ZERO,
                "threshold",
            ),
            (
                Kind::ErrorRate,
                true,
                5.0,
                Duration::from_secs(30),
                Duration::ZERO,
                "window",
            ),
            (
                Kind::ErrorRate,
                true,
                5.0,
                30 * 24 * 60 * M,
                Duration::ZERO,
                "window",
            ),
            (Kind::ErrorRate, true, 5.0, M, 25 * 60 * M, "for"),
        ];
        for (k, project, t, w, f, says) in bad {
            let e = validate(k, project, t, w, f).unwrap_err();
            assert!(e.contains(says), "{k:?}: {e}");
        }
    }

    #[test]
    fn durations_parse_and_negative_ones_are_named() {
        assert_eq!(parse_duration("window", "1m"), Ok(M));
        assert_eq!(parse_duration("for", "0s"), Ok(Duration::ZERO));
        assert!(parse_duration("window", "-1m")
            .unwrap_err()
            .contains("negative"));
        assert!(parse_duration("window", "soon").is_err());
        assert!(parse_duration("window", &"1".repeat(40)).is_err());
    }

    #[test]
    fn conditions() {
        assert!(Condition::Above.breached(6.0, 5.0));
        assert!(!Condition::Above.breached(5.0, 5.0));
        assert!(Condition::Below.breached(3.0, 14.0));
        assert!(!Condition::Below.breached(14.0, 14.0));
    }
}

//! The project's Errors tab: its issues, one issue with its newest
//! sample, and the forms that resolve, ignore or reopen an issue or set
//! its severity, through the same `app::errors` calls as the API.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use dashboard::model::{
    ErrorsTab, IssueDeploymentRow, IssueEventRow, IssuePage, IssueRow, Nav, ProjectHeader,
    SampleRequest,
};
use serde::Deserialize;
use serde_json::Value;

use super::{act, render, success, urlencode, Post, SignedIn, WebError, WebResult};
use crate::app::errors::{IssueUpdate, IssueView};
use crate::app::{self, App};

/// Issues one list shows (the most recently seen).
const LIST: i64 = 100;

#[derive(Deserialize)]
pub struct ErrorsQuery {
    state: Option<String>,
}

pub async fn tab(
    State(state): State<App>,
    signed: SignedIn,
    Path(name): Path<String>,
    Query(q): Query<ErrorsQuery>,
) -> WebResult<Response> {
    let (p, h) = super::project::header(&state, &signed, &name).await?;
    let filter = q
        .state
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "open".into());
    let issues = app::errors::list(&state, &signed.who, &p.name, Some(&filter), Some(LIST)).await?;
    let tab = ErrorsTab {
        filter,
        truncated: issues.len() as i64 >= LIST,
        issues: issues.iter().map(issue_row).collect(),
    };
    let page = signed.page(h.name.clone(), Nav::Projects);
    Ok(render(&signed, dashboard::errors(&page, &h, &tab)))
}

/// The issue, if it is `project`'s and the caller may see both.
async fn issue_of(
    state: &App,
    signed: &SignedIn,
    project: &str,
    id: &str,
) -> WebResult<(ProjectHeader, IssueView)> {
    let (p, h) = super::project::header(state, signed, project).await?;
    let v = app::errors::show(state, &signed.who, id).await?;
    if v.project != p.name {
        return Err(WebError::not_found("error issue"));
    }
    Ok((h, v))
}

pub async fn issue(
    State(state): State<App>,
    signed: SignedIn,
    Path((project, id)): Path<(String, String)>,
) -> WebResult<Response> {
    let (h, v) = issue_of(&state, &signed, &project, &id).await?;
    let page = signed.page(format!("{} · {}", v.title, h.name), Nav::Projects);
    Ok(render(
        &signed,
        dashboard::issue(&page, &h, &issue_page(&v)),
    ))
}

#[derive(Deserialize)]
pub struct StatePost {
    state: String,
}

pub async fn set_state(
    State(state): State<App>,
    Path((project, id)): Path<(String, String)>,
    Post { signed, form: f }: Post<StatePost>,
) -> WebResult<Response> {
    let back = format!(
        "/projects/{}/errors/{}",
        urlencode(&project),
        urlencode(&id)
    );
    issue_of(&state, &signed, &project, &id).await?;
    let change = IssueUpdate {
        state: Some(f.state),
        severity: None,
    };
    act(
        &back,
        app::errors::update(&state, &signed.who, &id, change),
        |v| {
            let said = match v.state.as_str() {
                "resolved" => "Resolved: it reopens as regressed if it happens again.",
                "ignored" => "Ignored: new events are counted but do not reopen it.",
                _ => "Reopened.",
            };
            success(&back, said)
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct SeverityPost {
    severity: String,
}

pub async fn set_severity(
    State(state): State<App>,
    Path((project, id)): Path<(String, String)>,
    Post { signed, form: f }: Post<SeverityPost>,
) -> WebResult<Response> {
    let back = format!(
        "/projects/{}/errors/{}",
        urlencode(&project),
        urlencode(&id)
    );
    issue_of(&state, &signed, &project, &id).await?;
    let change = IssueUpdate {
        state: None,
        severity: Some(f.severity),
    };
    act(
        &back,
        app::errors::update(&state, &signed.who, &id, change),
        |v| success(&back, format!("Severity set to {}.", v.severity)),
    )
    .await
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn issue_row(v: &IssueView) -> IssueRow {
    IssueRow {
        id: v.id.clone(),
        source: v.source.clone(),
        kind: v.kind.clone(),
        title: v.title.clone(),
        culprit: v.culprit.clone(),
        severity: v.severity.clone(),
        state: v.state.clone(),
        count: count(v.count),
        first_seen: v.first_seen,
        last_seen: v.last_seen,
        resolved_at: v.resolved_at,
        trend: v.trend.iter().copied().map(count).collect(),
    }
}

/// The keys of a function's event detail that the page shows as the
/// sample request (or as the stderr tail and backtrace).
const REQUEST_KEYS: [&str; 5] = ["request_id", "method", "path", "status", "node"];
const SHOWN_APART: [&str; 2] = ["stderr", "frames"];

/// A scalar as text; `None` for null, empty strings, arrays and objects.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

fn field(d: &Value, key: &str) -> Option<String> {
    d.get(key).and_then(scalar)
}

/// Everything of `d` not shown elsewhere, as `(key, text)`: scalars as
/// they are, lists and objects as compact JSON.
fn other_details(d: &Value) -> Vec<(String, String)> {
    let Some(map) = d.as_object() else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = map
        .iter()
        .filter(|(k, _)| !REQUEST_KEYS.contains(&k.as_str()) && !SHOWN_APART.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Null => return None,
                Value::Array(a) if a.is_empty() => return None,
                Value::Array(_) | Value::Object(_) => v.to_string(),
                _ => scalar(v)?,
            };
            Some((k.clone(), text))
        })
        .collect();
    out.sort();
    out
}

/// An event's detail: events are kept as samples (`message`, `frames`,
/// `detail`, …); a bare detail object is taken as it is.
fn event_detail(e: &Value) -> &Value {
    match e.get("detail") {
        Some(d) if d.is_object() => d,
        _ => e,
    }
}

/// One line about an event: the request it failed (`GET /api/x → 500 on
/// fra-1`), else its message's first line, else its other details.
fn summary(e: &Value) -> String {
    let d = event_detail(e);
    let (method, path) = (field(d, "method"), field(d, "path"));
    if method.is_some() || path.is_some() {
        let mut s = [method, path]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(status) = field(d, "status") {
            s.push_str(&format!(" → {status}"));
        }
        if let Some(node) = field(d, "node") {
            s.push_str(&format!(" on {node}"));
        }
        return s;
    }
    if let Some(m) = field(e, "message") {
        return m.lines().next().unwrap_or_default().trim().to_string();
    }
    let rest: Vec<String> = other_details(d)
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if rest.is_empty() {
        "—".into()
    } else {
        rest.join(", ")
    }
}

fn issue_page(v: &IssueView) -> IssuePage {
    let s = &v.sample;
    let d = &s["detail"];
    let mut frames = strings(&s["frames"]);
    if frames.is_empty() {
        frames = strings(&d["frames"]);
    }
    let has_request = REQUEST_KEYS.iter().any(|k| field(d, k).is_some());
    IssuePage {
        issue: issue_row(v),
        message: field(s, "message"),
        frames,
        request: has_request.then(|| SampleRequest {
            method: field(d, "method"),
            path: field(d, "path"),
            status: d["status"].as_u64().and_then(|n| u16::try_from(n).ok()),
            request_id: field(d, "request_id"),
            node: field(d, "node"),
        }),
        stderr: strings(&d["stderr"]),
        details: other_details(d),
        deployments: v
            .deployments
            .iter()
            .map(|d| IssueDeploymentRow {
                deployment: d.deployment.clone(),
                count: count(d.count),
                last_seen: d.last_seen,
            })
            .collect(),
        events: v
            .events
            .iter()
            .map(|e| IssueEventRow {
                at: e.at,
                deployment: e.deployment.clone(),
                count: count(e.count),
                request_id: field(event_detail(&e.detail), "request_id"),
                summary: summary(&e.detail),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::app::errors::{IssueDeployment, IssueEvent};

    fn view(sample: Value) -> IssueView {
        IssueView {
            id: "iss1".into(),
            project: "blog".into(),
            source: "function".into(),
            kind: "panic".into(),
            title: "panic: boom".into(),
            culprit: "/api/x in main".into(),
            severity: "high".into(),
            state: "unresolved".into(),
            first_seen: 1,
            last_seen: 2,
            count: 7,
            resolved_at: None,
            trend: vec![0, 3, -1],
            sample,
            deployments: vec![IssueDeployment {
                deployment: "dep1".into(),
                count: 7,
                last_seen: 2,
            }],
            events: vec![
                IssueEvent {
                    at: 2,
                    deployment: Some("dep1".into()),
                    count: 2,
                    detail: json!({"request_id": "r1", "method": "GET", "path": "/api/x", "status": 500, "node": "fra-1"}),
                },
                IssueEvent {
                    at: 1,
                    deployment: None,
                    count: 1,
                    detail: json!({"build": "b1", "branch": "main", "commit": null}),
                },
                IssueEvent {
                    at: 0,
                    deployment: None,
                    count: 1,
                    detail: Value::Null,
                },
                // As the store keeps them: the whole sample.
                IssueEvent {
                    at: 0,
                    deployment: Some("dep1".into()),
                    count: 1,
                    detail: json!({"at": 0, "message": "1 blobs are missing\nmore", "place": "preview",
                        "detail": {"code": "blobs_missing", "deployment": "dep1"}}),
                },
                IssueEvent {
                    at: 0,
                    deployment: Some("dep1".into()),
                    count: 1,
                    detail: json!({"message": "trap", "detail": {"request_id": "r9", "method": "GET", "path": "/api/y"}}),
                },
            ],
        }
    }

    #[test]
    fn a_function_sample_becomes_the_request_the_stderr_and_the_backtrace() {
        let v = view(json!({
            "message": "boom",
            "frames": ["checkout::total", "main"],
            "detail": {
                "request_id": "r1", "method": "POST", "path": "/api/x", "status": 500,
                "node": "fra-1", "stderr": ["line 1", "line 2"], "frames": ["ignored"],
            },
        }));
        let p = issue_page(&v);
        assert_eq!(p.message.as_deref(), Some("boom"));
        assert_eq!(p.frames, ["checkout::total", "main"]);
        let r = p.request.unwrap();
        assert_eq!(
            (r.method.as_deref(), r.path.as_deref(), r.status),
            (Some("POST"), Some("/api/x"), Some(500))
        );
        assert_eq!(
            (r.request_id.as_deref(), r.node.as_deref()),
            (Some("r1"), Some("fra-1"))
        );
        assert_eq!(p.stderr, ["line 1", "line 2"]);
        assert!(p.details.is_empty(), "{:?}", p.details);
        assert_eq!(p.issue.trend, [0, 3, 0], "negative counts clamp to 0");
        assert_eq!(p.deployments[0].deployment, "dep1");
        let summaries: Vec<&str> = p.events.iter().map(|e| e.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "GET /api/x → 500 on fra-1",
                "branch main, build b1",
                "—",
                "1 blobs are missing",
                "GET /api/y"
            ]
        );
        let ids: Vec<Option<&str>> = p.events.iter().map(|e| e.request_id.as_deref()).collect();
        assert_eq!(ids, [Some("r1"), None, None, None, Some("r9")]);
    }

    #[test]
    fn other_samples_show_their_details() {
        let cases = [
            (
                json!({"message": "", "frames": [], "detail": {"build": "b1", "branch": "main", "commit": null}}),
                vec![("branch", "main"), ("build", "b1")],
            ),
            (
                json!({"message": "order failed", "detail": {"domain": "www.x.example", "failures": 3, "gave_up": false, "problem": {"type": "dns"}}}),
                vec![
                    ("domain", "www.x.example"),
                    ("failures", "3"),
                    ("gave_up", "false"),
                    ("problem", r#"{"type":"dns"}"#),
                ],
            ),
            (json!(null), vec![]),
            (json!({"detail": "not an object"}), vec![]),
        ];
        for (sample, want) in cases {
            let p = issue_page(&view(sample.clone()));
            let got: Vec<(&str, &str)> = p
                .details
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(got, want, "{sample}");
            assert!(p.request.is_none() && p.stderr.is_empty() && p.frames.is_empty());
        }
        let p = issue_page(&view(json!({"message": "  "})));
        assert_eq!(p.message, None);
    }
}

//! The audit log: every change, who made it, from where. Writing an event
//! never fails the change it records; a failure is logged instead.

use super::Principal;
use crate::store::{now_ms, AuditEvent, Store};

/// Records `action` on `target` (e.g. `project.create`, `blog`) in `team`'s
/// log; `team` None is an instance event (nodes, sign-ups).
pub async fn record(
    store: &Store,
    who: &Principal,
    team: Option<&str>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) {
    record_as(
        store,
        who.user_id(),
        &who.actor(),
        &who.ip,
        team,
        action,
        target,
        detail,
    )
    .await
}

/// Records `action` on project `p` in its team's log.
pub async fn project_event(
    store: &Store,
    who: &Principal,
    p: &crate::store::Project,
    action: &str,
    detail: serde_json::Value,
) {
    record(store, who, Some(&p.team_id), action, &p.name, detail).await
}

#[allow(clippy::too_many_arguments)]
pub async fn record_as(
    store: &Store,
    actor_id: Option<&str>,
    actor: &str,
    ip: &str,
    team: Option<&str>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) {
    let event = AuditEvent {
        id: crate::ids::new_id(16),
        at: now_ms(),
        actor_id: actor_id.map(str::to_string),
        actor: actor.to_string(),
        team_id: team.map(str::to_string),
        action: action.to_string(),
        target: target.to_string(),
        ip: ip.to_string(),
        detail: detail.to_string(),
    };
    if let Err(e) = store.insert_audit(&event).await {
        tracing::error!(error = %e, action, target, "writing the audit log");
    }
}

//! What a notification says, per channel kind (pure): an Alertmanager v4
//! webhook body, a Slack incoming-webhook text, an e-mail; and the
//! Standard Webhooks signature of a webhook body.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;

/// One alert of a group, as Alertmanager describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    /// `0001-01-01T00:00:00Z` while firing, as Alertmanager sends it.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// A group's notification: one rule's alerts (one per series).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: u32,
    /// `firing` when any alert of the group fires, else `resolved`.
    pub status: String,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

/// Alerts in one notification; the rest are counted in `truncatedAlerts`.
pub const MAX_ALERTS: usize = 100;

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Notification {
    pub fn new(
        group_key: &str,
        receiver: &str,
        external_url: &str,
        mut alerts: Vec<Alert>,
    ) -> Self {
        let truncated = alerts.len().saturating_sub(MAX_ALERTS) as u32;
        alerts.truncate(MAX_ALERTS);
        let status = if alerts.iter().any(|a| a.status == "firing") {
            "firing"
        } else {
            "resolved"
        };
        let common = |f: fn(&Alert) -> &BTreeMap<String, String>| {
            let mut it = alerts.iter().map(f);
            let mut common = it.next().cloned().unwrap_or_default();
            for m in it {
                common.retain(|k, v| m.get(k) == Some(v));
            }
            common
        };
        let common_labels = common(|a| &a.labels);
        let common_annotations = common(|a| &a.annotations);
        let group_labels = common_labels
            .get("alertname")
            .map(|n| BTreeMap::from([("alertname".to_string(), n.clone())]))
            .unwrap_or_default();
        Notification {
            version: "4".into(),
            group_key: group_key.into(),
            truncated_alerts: truncated,
            status: status.into(),
            receiver: receiver.into(),
            group_labels,
            common_labels,
            common_annotations,
            external_url: external_url.into(),
            alerts,
        }
    }

    /// A one-line subject: `[FIRING:2] error_rate shop`.
    pub fn subject(&self) -> String {
        let firing = self.alerts.iter().filter(|a| a.status == "firing").count();
        let name = self
            .common_labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("alert");
        let scope = self
            .common_labels
            .get("project")
            .map(|p| format!(" {p}"))
            .unwrap_or_default();
        if self.status == "firing" {
            format!("[FIRING:{firing}] {name}{scope}")
        } else {
            format!("[RESOLVED] {name}{scope}")
        }
    }

    /// Plain text: the subject, then each alert's summary and times.
    pub fn text(&self) -> String {
        let mut out = self.subject();
        out.push('\n');
        for a in &self.alerts {
            let summary = a
                .annotations
                .get("summary")
                .map(String::as_str)
                .unwrap_or("");
            out.push_str(&format!(
                "\n• {} — {summary}\n  since {}",
                a.status, a.starts_at
            ));
            if a.ends_at != ZERO_TIME {
                out.push_str(&format!(", until {}", a.ends_at));
            }
            out.push('\n');
        }
        if self.truncated_alerts > 0 {
            out.push_str(&format!("\n…and {} more\n", self.truncated_alerts));
        }
        if !self.external_url.is_empty() {
            out.push_str(&format!("\n{}\n", self.external_url));
        }
        out
    }

    /// A Slack-compatible incoming webhook's body.
    pub fn slack(&self) -> serde_json::Value {
        serde_json::json!({ "text": self.text() })
    }
}

/// The secret a Standard Webhooks receiver verifies with: `whsec_` and
/// base64 of the key bytes; any other string is taken as the key bytes.
pub fn secret_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// The `webhook-signature` header's value: `v1,` and base64 of
/// HMAC-SHA256 over `{id}.{timestamp}.{body}` (Standard Webhooks).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret_key(secret));
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

/// A new signing secret in the Standard Webhooks format.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: &str, project: &str, node: &str) -> Alert {
        Alert {
            status: status.into(),
            labels: BTreeMap::from([
                ("alertname".into(), "error_rate".into()),
                ("project".into(), project.into()),
                ("series".into(), node.into()),
            ]),
            annotations: BTreeMap::from([("summary".into(), format!("{node} is bad"))]),
            starts_at: rfc3339(0),
            ends_at: ZERO_TIME.into(),
            generator_url: String::new(),
            fingerprint: node.into(),
        }
    }

    #[test]
    fn the_body_is_alertmanagers() {
        let n = Notification::new(
            "rule:r1",
            "ops",
            "http://c",
            vec![alert("firing", "shop", "a"), alert("resolved", "shop", "b")],
        );
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["groupKey"], "rule:r1");
        assert_eq!(v["externalURL"], "http://c");
        assert_eq!(v["alerts"][0]["startsAt"], "1970-01-01T00:00:00Z");
        assert_eq!(v["alerts"][0]["endsAt"], ZERO_TIME);
        assert!(v["alerts"][0].get("generatorURL").is_some());
        // Labels both alerts share are common; the series is not.
        assert_eq!(v["commonLabels"]["project"], "shop");
        assert!(v["commonLabels"].get("series").is_none());
        assert_eq!(v["groupLabels"]["alertname"], "error_rate");
        assert_eq!(n.subject(), "[FIRING:1] error_rate shop");
        let resolved = Notification::new("k", "ops", "", vec![alert("resolved", "shop", "a")]);
        assert_eq!(resolved.status, "resolved");
        assert_eq!(resolved.subject(), "[RESOLVED] error_rate shop");
    }

    #[test]
    fn long_groups_are_truncated_and_say_so() {
        let many = (0..MAX_ALERTS + 5)
            .map(|i| alert("firing", "p", &i.to_string()))
            .collect();
        let n = Notification::new("k", "r", "", many);
        assert_eq!((n.alerts.len(), n.truncated_alerts), (MAX_ALERTS, 5));
        assert!(n.text().contains("and 5 more"));
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // A plain secret is its own bytes.
        assert_eq!(secret_key("abc"), b"abc");
        assert!(new_secret().starts_with("whsec_"));
    }
}

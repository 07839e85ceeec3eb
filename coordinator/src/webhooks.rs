//! Git push webhooks from GitHub, GitLab and Gitea: which provider sent
//! it, whether it carries the project's secret, and what it asks for.
//! Pure: headers and body in, a verdict out.
//!
//! - GitHub: `X-GitHub-Event`, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
//! - Gitea: `X-Gitea-Event`, `X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>` (Gitea also
//!   sends GitHub's headers, so it is recognised first).
//! - GitLab: `X-Gitlab-Event: Push Hook`, `X-Gitlab-Token: <secret>` (a shared token, no HMAC).
//!
//! Every comparison with the secret is constant-time.

use http::HeaderMap;
use ring::hmac;
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("not a GitHub, GitLab or Gitea webhook (no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header)")]
    UnknownProvider,
    #[error("the webhook carries no signature ({0} header missing)")]
    MissingSignature(&'static str),
    #[error("the webhook signature does not match this project's secret")]
    BadSignature,
    #[error("the webhook body is not a valid push event: {0}")]
    BadPayload(String),
    #[error("invalid branch name {0:?}")]
    BadBranch(String),
    #[error("invalid commit id {0:?}")]
    BadCommit(String),
}

/// What a verified webhook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    Push(Push),
    BranchDeleted {
        branch: String,
    },
    /// GitHub's `ping` when a hook is created.
    Ping,
    /// A well-formed event we do not act on (tags, issues, …).
    Ignored(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub branch: String,
    pub commit_sha: String,
    pub message: Option<String>,
    pub author: Option<String>,
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The provider's id of this delivery (the same on its own redeliveries):
/// `X-GitHub-Delivery`, `X-Gitea-Delivery`, `X-Gitlab-Event-UUID`. Only a
/// short printable value counts.
pub fn delivery_id(provider: Provider, h: &HeaderMap) -> Option<String> {
    let name = match provider {
        Provider::GitHub => "x-github-delivery",
        Provider::Gitea => "x-gitea-delivery",
        Provider::GitLab => "x-gitlab-event-uuid",
    };
    let v = header(h, name)?.trim();
    (!v.is_empty() && v.len() <= 100 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
}

pub fn detect(h: &HeaderMap) -> Result<Provider, HookError> {
    if h.contains_key("x-gitea-event") {
        Ok(Provider::Gitea)
    } else if h.contains_key("x-gitlab-event") {
        Ok(Provider::GitLab)
    } else if h.contains_key("x-github-event") {
        Ok(Provider::GitHub)
    } else {
        Err(HookError::UnknownProvider)
    }
}

fn verify_hmac(secret: &[u8], body: &[u8], hex_sig: &str) -> Result<(), HookError> {
    let tag = hex::decode(hex_sig.trim()).map_err(|_| HookError::BadSignature)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &tag).map_err(|_| HookError::BadSignature)
}

/// What can be checked before the body is read: the signature header is
/// there (GitHub, Gitea), or the token is right (GitLab, whose token does
/// not depend on the body). A stranger's request ends here, unread.
pub fn precheck(p: Provider, h: &HeaderMap, secret: &[u8]) -> Result<(), HookError> {
    match p {
        Provider::GitHub => header(h, "x-hub-signature-256")
            .map(|_| ())
            .ok_or(HookError::MissingSignature("X-Hub-Signature-256")),
        Provider::Gitea => header(h, "x-gitea-signature")
            .map(|_| ())
            .ok_or(HookError::MissingSignature("X-Gitea-Signature")),
        Provider::GitLab => verify(p, h, &[], secret),
    }
}

/// Checks that the webhook was sent by someone holding `secret`.
pub fn verify(p: Provider, h: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), HookError> {
    match p {
        Provider::GitHub => {
            let sig = header(h, "x-hub-signature-256")
                .ok_or(HookError::MissingSignature("X-Hub-Signature-256"))?;
            let hex_sig = sig.strip_prefix("sha256=").ok_or(HookError::BadSignature)?;
            verify_hmac(secret, body, hex_sig)
        }
        Provider::Gitea => {
            let sig = header(h, "x-gitea-signature")
                .ok_or(HookError::MissingSignature("X-Gitea-Signature"))?;
            verify_hmac(secret, body, sig)
        }
        Provider::GitLab => {
            let token =
                header(h, "x-gitlab-token").ok_or(HookError::MissingSignature("X-Gitlab-Token"))?;
            if bool::from(token.as_bytes().ct_eq(secret)) {
                Ok(())
            } else {
                Err(HookError::BadSignature)
            }
        }
    }
}

#[derive(Deserialize)]
struct Author {
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct Commit {
    id: String,
    message: Option<String>,
    author: Option<Author>,
}

/// The fields GitHub, Gitea and GitLab push payloads share.
#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    head_commit: Option<Commit>,
    #[serde(default)]
    commits: Vec<Commit>,
}

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// Decodes a verified webhook body.
pub fn parse(p: Provider, h: &HeaderMap, body: &[u8]) -> Result<HookEvent, HookError> {
    let event = match p {
        Provider::GitHub => header(h, "x-github-event"),
        Provider::Gitea => header(h, "x-gitea-event"),
        Provider::GitLab => header(h, "x-gitlab-event"),
    }
    .unwrap_or("");
    match (p, event) {
        (Provider::GitHub, "ping") => return Ok(HookEvent::Ping),
        (Provider::GitHub | Provider::Gitea, "push") | (Provider::GitLab, "Push Hook") => {}
        (Provider::Gitea, "delete") => {
            #[derive(Deserialize)]
            struct Delete {
                #[serde(rename = "ref")]
                git_ref: String,
                ref_type: String,
            }
            let d: Delete =
                serde_json::from_slice(body).map_err(|e| HookError::BadPayload(e.to_string()))?;
            if d.ref_type != "branch" {
                return Ok(HookEvent::Ignored(format!("{} deleted", d.ref_type)));
            }
            let branch = d.git_ref.strip_prefix("refs/heads/").unwrap_or(&d.git_ref);
            validate_branch(branch)?;
            return Ok(HookEvent::BranchDeleted {
                branch: branch.to_string(),
            });
        }
        (_, other) => return Ok(HookEvent::Ignored(format!("event {other:?}"))),
    }
    let push: PushPayload =
        serde_json::from_slice(body).map_err(|e| HookError::BadPayload(e.to_string()))?;
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return Ok(HookEvent::Ignored(format!("push to {}", push.git_ref)));
    };
    validate_branch(branch)?;
    if push.deleted || push.after == ZERO_SHA {
        return Ok(HookEvent::BranchDeleted {
            branch: branch.to_string(),
        });
    }
    validate_sha(&push.after)?;
    let head = push
        .head_commit
        .filter(|c| c.id == push.after)
        .or_else(|| push.commits.into_iter().find(|c| c.id == push.after));
    let (message, author) = match head {
        Some(c) => (
            c.message.map(|m| first_line(&m)),
            c.author.and_then(|a| match (a.name, a.email) {
                (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
                (n, e) => n.or(e),
            }),
        ),
        None => (None, None),
    };
    Ok(HookEvent::Push(Push {
        branch: branch.to_string(),
        commit_sha: push.after.to_ascii_lowercase(),
        message,
        author,
    }))
}

/// A commit subject, bounded for storage and display.
pub fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

/// Branch names as git allows them (`git check-ref-format --branch`), and
/// short enough to store; anything that could be read as an option or a
/// revision expression is refused.
pub fn validate_branch(b: &str) -> Result<(), HookError> {
    let bad = b.is_empty()
        || b.len() > 200
        || b.starts_with('-')
        || b.starts_with('/')
        || b.ends_with('/')
        || b.ends_with('.')
        || b.ends_with(".lock")
        || b.contains("..")
        || b.contains("@{")
        || b.contains("//")
        || b == "@"
        || b.split('/').any(|c| c.starts_with('.'))
        || b.chars().any(|c| {
            c.is_control() || c == ' ' || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        });
    if bad {
        Err(HookError::BadBranch(b.chars().take(80).collect()))
    } else {
        Ok(())
    }
}

/// A full SHA-1 or SHA-256 object id.
pub fn validate_sha(s: &str) -> Result<(), HookError> {
    if (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(HookError::BadCommit(s.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn sign(body: &[u8], secret: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        hex::encode(hmac::sign(&key, body).as_ref())
    }

    fn github_push(branch: &str) -> String {
        serde_json::json!({
            "ref": format!("refs/heads/{branch}"),
            "before": ZERO_SHA,
            "after": SHA,
            "deleted": false,
            "head_commit": {"id": SHA, "message": "Add page\n\nbody", "author": {"name": "Ada", "email": "ada@example.com"}},
            "commits": [],
        })
        .to_string()
    }

    #[test]
    fn delivery_ids_by_provider() {
        let h = |name: &str, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
            h
        };
        let long = "a".repeat(101);
        for (provider, headers, want) in [
            (
                Provider::GitHub,
                h("x-github-delivery", "72d3162e-cc78"),
                Some("72d3162e-cc78"),
            ),
            (Provider::Gitea, h("x-gitea-delivery", "abc"), Some("abc")),
            (
                Provider::GitLab,
                h("x-gitlab-event-uuid", "u-1"),
                Some("u-1"),
            ),
            // Another provider's header does not count.
            (Provider::GitLab, h("x-github-delivery", "x"), None),
            (Provider::GitHub, h("x-github-delivery", ""), None),
            (Provider::GitHub, h("x-github-delivery", "has space"), None),
            (Provider::GitHub, h("x-github-delivery", &long), None),
        ] {
            assert_eq!(
                delivery_id(provider, &headers).as_deref(),
                want,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn signatures() {
        let body = github_push("main");
        let good = sign(body.as_bytes(), SECRET);
        let wrong = sign(body.as_bytes(), b"other");
        let gh = |sig: &str| headers(&[("x-github-event", "push"), ("x-hub-signature-256", sig)]);
        let gitea = |sig: &str| {
            headers(&[
                ("x-gitea-event", "push"),
                ("x-github-event", "push"),
                ("x-gitea-signature", sig),
            ])
        };
        let gl = |tok: &str| headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", tok)]);
        // (headers, expected provider, verdict)
        let cases: Vec<(HeaderMap, Provider, Result<(), HookError>)> = vec![
            (gh(&format!("sha256={good}")), Provider::GitHub, Ok(())),
            (
                gh(&format!("sha256={wrong}")),
                Provider::GitHub,
                Err(HookError::BadSignature),
            ),
            (gh(&good), Provider::GitHub, Err(HookError::BadSignature)),
            (
                gh("sha256=zz"),
                Provider::GitHub,
                Err(HookError::BadSignature),
            ),
            (
                gh("sha256="),
                Provider::GitHub,
                Err(HookError::BadSignature),
            ),
            (
                headers(&[("x-github-event", "push")]),
                Provider::GitHub,
                Err(HookError::MissingSignature("X-Hub-Signature-256")),
            ),
            (gitea(&good), Provider::Gitea, Ok(())),
            (gitea(&wrong), Provider::Gitea, Err(HookError::BadSignature)),
            (gl("s3cret"), Provider::GitLab, Ok(())),
            (gl("s3cre"), Provider::GitLab, Err(HookError::BadSignature)),
            (
                gl("s3cret "),
                Provider::GitLab,
                Err(HookError::BadSignature),
            ),
            (gl(""), Provider::GitLab, Err(HookError::BadSignature)),
        ];
        for (i, (h, provider, want)) in cases.into_iter().enumerate() {
            assert_eq!(detect(&h), Ok(provider), "case {i}");
            assert_eq!(
                verify(provider, &h, body.as_bytes(), SECRET),
                want,
                "case {i}"
            );
        }
        // A body changed after signing fails.
        let h = gh(&format!("sha256={good}"));
        assert_eq!(
            verify(Provider::GitHub, &h, b"{}", SECRET),
            Err(HookError::BadSignature)
        );
        assert_eq!(detect(&HeaderMap::new()), Err(HookError::UnknownProvider));
    }

    #[test]
    fn payloads() {
        let gh = headers(&[("x-github-event", "push")]);
        let push = |branch: &str| {
            HookEvent::Push(Push {
                branch: branch.into(),
                commit_sha: SHA.into(),
                message: Some("Add page".into()),
                author: Some("Ada <ada@example.com>".into()),
            })
        };
        assert_eq!(
            parse(Provider::GitHub, &gh, github_push("main").as_bytes()),
            Ok(push("main"))
        );
        assert_eq!(
            parse(Provider::GitHub, &gh, github_push("feature/x").as_bytes()),
            Ok(push("feature/x"))
        );
        let gitlab = serde_json::json!({
            "object_kind": "push", "ref": "refs/heads/dev", "before": ZERO_SHA, "after": SHA,
            "checkout_sha": SHA,
            "commits": [{"id": SHA, "message": "Add page", "author": {"name": "Ada", "email": "ada@example.com"}}],
        })
        .to_string();
        assert_eq!(
            parse(
                Provider::GitLab,
                &headers(&[("x-gitlab-event", "Push Hook")]),
                gitlab.as_bytes()
            ),
            Ok(push("dev"))
        );
        let gitea_h = headers(&[("x-gitea-event", "push")]);
        assert_eq!(
            parse(Provider::Gitea, &gitea_h, github_push("main").as_bytes()),
            Ok(push("main"))
        );
        let deleted =
            serde_json::json!({"ref": "refs/heads/old", "after": ZERO_SHA, "deleted": true})
                .to_string();
        assert_eq!(
            parse(Provider::GitHub, &gh, deleted.as_bytes()),
            Ok(HookEvent::BranchDeleted {
                branch: "old".into()
            })
        );
        let gitea_delete = serde_json::json!({"ref": "old", "ref_type": "branch"}).to_string();
        assert_eq!(
            parse(
                Provider::Gitea,
                &headers(&[("x-gitea-event", "delete")]),
                gitea_delete.as_bytes()
            ),
            Ok(HookEvent::BranchDeleted {
                branch: "old".into()
            })
        );
        let tag = serde_json::json!({"ref": "refs/tags/v1", "after": SHA}).to_string();
        assert!(matches!(
            parse(Provider::GitHub, &gh, tag.as_bytes()),
            Ok(HookEvent::Ignored(_))
        ));
        assert_eq!(
            parse(
                Provider::GitHub,
                &headers(&[("x-github-event", "ping")]),
                b"{}"
            ),
            Ok(HookEvent::Ping)
        );
        assert!(matches!(
            parse(
                Provider::GitHub,
                &headers(&[("x-github-event", "issues")]),
                b"{}"
            ),
            Ok(HookEvent::Ignored(_))
        ));
        // Bad input: each a clear error.
        for (body, what) in [
            ("not json", "bad json"),
            ("{\"ref\": \"refs/heads/main\"}", "missing after"),
            (
                "{\"ref\": \"refs/heads/main\", \"after\": \"HEAD~1\"}",
                "bad sha",
            ),
            (
                "{\"ref\": \"refs/heads/-x\", \"after\": \"0123\"}",
                "option-like branch",
            ),
            (
                "{\"ref\": \"refs/heads/a..b\", \"after\": \"0123\"}",
                "dotted branch",
            ),
        ] {
            assert!(
                parse(Provider::GitHub, &gh, body.as_bytes()).is_err(),
                "{what}"
            );
        }
    }

    #[test]
    fn branch_names() {
        for ok in [
            "main",
            "feature/login",
            "release-1.2",
            "UPPER_case",
            "a/b/c",
        ] {
            assert_eq!(validate_branch(ok), Ok(()), "{ok}");
        }
        let long = "x".repeat(201);
        for bad in [
            "",
            "-rf",
            "/abs",
            "trail/",
            "a..b",
            "a@{1}",
            "x.lock",
            "sp ace",
            "a~1",
            "a^",
            "a:b",
            "q?",
            "st*r",
            "br[",
            "back\\slash",
            ".hidden",
            "a/.b",
            "nul\0",
            "dot.",
            "@",
            "a//b",
            long.as_str(),
        ] {
            assert!(validate_branch(bad).is_err(), "{bad:?}");
        }
        assert!(validate_sha(SHA).is_ok());
        assert!(validate_sha(&"a".repeat(64)).is_ok());
        for bad in ["", "abc", "HEAD", &"g".repeat(40), &"a".repeat(41)] {
            assert!(validate_sha(bad).is_err(), "{bad}");
        }
    }
}

//! Fetching source with the `git` CLI: which repository URLs are allowed,
//! a shallow checkout of one exact commit, and branch → commit lookups.

use std::path::Path;
use std::process::Output;

use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::process::{self, RunError, Stopped};

/// Which repository URLs a build may fetch from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlPolicy {
    /// `file://` URLs and local paths: off in production, where they would
    /// let a project read any repository on the coordinator's disk.
    pub allow_local: bool,
    /// When non-empty, https/ssh URLs must name one of these hosts
    /// (case-insensitive, port ignored). Empty allows any host.
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: String,
    /// First line of the commit message.
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    /// Committer time, Unix seconds (0 when git gave none).
    pub committed_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `url` has its credentials redacted.
    #[error("refusing repository URL {url}: {reason}")]
    UnsafeUrl { url: String, reason: String },
    #[error("{0:?} is not a full commit sha (40 hex digits)")]
    BadCommit(String),
    #[error("{0:?} is not a valid branch name")]
    BadBranch(String),
    #[error("the build host has no `git` ({0})")]
    Spawn(std::io::Error),
    /// `stderr` has credentials of the URL redacted.
    #[error("git {action} failed: {stderr}")]
    Failed {
        action: &'static str,
        stderr: String,
    },
    #[error("commit {0} is not in the repository")]
    CommitNotFound(String),
    #[error("branch {0:?} does not exist in the repository")]
    BranchNotFound(String),
    #[error("git {0} timed out")]
    Timeout(&'static str),
    #[error("canceled")]
    Canceled,
}

fn refuse(url: &str, reason: impl Into<String>) -> GitError {
    GitError::UnsafeUrl {
        url: redact_url(url),
        reason: reason.into(),
    }
}

/// Splits `user@host:port` into (user, host without port).
fn split_authority(authority: &str) -> (Option<&str>, &str) {
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let host = if let Some(rest) = hostport.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    (user, host)
}

fn check_remote(url: &str, user: Option<&str>, host: &str, p: &UrlPolicy) -> Result<(), GitError> {
    // ssh would read a leading `-` in the user or host as an option
    // (`-oProxyCommand=…`).
    if user.is_some_and(|u| u.starts_with('-')) || host.starts_with('-') {
        return Err(refuse(url, "user or host starts with `-`"));
    }
    if host.is_empty() {
        return Err(refuse(url, "it names no host"));
    }
    if !p.allowed_hosts.is_empty() && !p.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    {
        return Err(refuse(
            url,
            format!("host {host} is not in the build host's allowed list"),
        ));
    }
    Ok(())
}

/// Accepts `https://`, `ssh://` and scp-like `user@host:path`; local
/// repositories only when the policy allows them; never remote helpers
/// (`ext::`, `fd::`), other schemes, or anything git could read as an
/// option.
pub fn validate_url(url: &str, p: &UrlPolicy) -> Result<(), GitError> {
    if url.is_empty() || url.len() > 2048 {
        return Err(refuse(url, "it is empty or longer than 2048 bytes"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse(url, "it contains whitespace or control characters"));
    }
    if url.starts_with('-') {
        return Err(refuse(
            url,
            "it starts with `-`, which git reads as an option",
        ));
    }
    let lower = url.to_ascii_lowercase();
    for scheme in ["https://", "ssh://"] {
        if lower.starts_with(scheme) {
            let rest = &url[scheme.len()..];
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let (user, host) = split_authority(authority);
            return check_remote(url, user, host, p);
        }
    }
    let local_refusal = "it is a local repository, which this build host does not allow";
    if lower.starts_with("file://") {
        return if p.allow_local {
            Ok(())
        } else {
            Err(refuse(url, local_refusal))
        };
    }
    if url.contains("::") {
        return Err(refuse(
            url,
            "it uses a git remote-helper transport (`ext::`, `fd::`, …)",
        ));
    }
    if url.contains("://") {
        return Err(refuse(
            url,
            "only https:// and ssh:// repositories are allowed",
        ));
    }
    // git's own rule: a colon before the first slash makes it scp-like ssh.
    if let Some(colon) = url.find(':') {
        if !url[..colon].contains('/') {
            let (user, host) = match url[..colon].rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, &url[..colon]),
            };
            return check_remote(url, user, host, p);
        }
    }
    if p.allow_local {
        Ok(())
    } else {
        Err(refuse(url, local_refusal))
    }
}

/// The secret part of a URL's userinfo: the password, or an https
/// username that is a token. ssh usernames (`git@`) are not secrets.
pub fn url_secrets(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    match userinfo.split_once(':') {
        Some((_, password)) if !password.is_empty() => vec![password.to_string()],
        Some(_) => Vec::new(),
        None if scheme.eq_ignore_ascii_case("ssh") => Vec::new(),
        None => vec![userinfo.to_string()],
    }
}

/// A URL's credentials taken out of it: `https://user:token@host/a` is
/// `("https://host/a", Some("user:token"))`. Only a userinfo holding a
/// secret counts ([`url_secrets`]); `ssh://git@host/a` keeps its user.
pub fn split_credentials(url: &str) -> (String, Option<String>) {
    if url_secrets(url).is_empty() {
        return (url.to_string(), None);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => (
            format!("{scheme}://{host}{tail}"),
            Some(userinfo.to_string()),
        ),
        None => (url.to_string(), None),
    }
}

/// The URL git is given: `url` with `credentials` (from
/// [`split_credentials`]) put back in.
pub fn with_credentials(url: &str, credentials: Option<&str>) -> String {
    match (credentials, url.split_once("://")) {
        (Some(c), Some((scheme, rest))) if !c.is_empty() => format!("{scheme}://{c}@{rest}"),
        _ => url.to_string(),
    }
}

/// The URL with [`url_secrets`] replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    crate::log::Redactor::new(url_secrets(url)).redact(url)
}

pub fn is_full_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn validate_branch(b: &str) -> Result<(), GitError> {
    let bad = b.is_empty()
        || b.len() > 255
        || b.starts_with(['-', '/', '.'])
        || b.ends_with(['/', '.'])
        || b.ends_with(".lock")
        || b.contains("..")
        || b.contains("//")
        || b.contains("@{")
        || b.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        Err(GitError::BadBranch(b.to_string()))
    } else {
        Ok(())
    }
}

/// Where git may look for a home: nowhere real. The tenant's repository
/// URL must never make the coordinator use the operator's git config,
/// credential helpers, SSH keys or agent.
const NO_HOME: &str = "/nonexistent/outpost-git-home";

/// A git invocation with the transport whitelist and no hooks, no prompts,
/// no inherited repository, and nothing of the coordinator's environment:
/// no HOME, no system or global git config, no credential helper, no SSH
/// agent or key (only the credentials in the project's own URL).
fn git(p: &UrlPolicy) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", NO_HOME);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1");
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    // No config file, agent or default identity; host keys only from the
    // system's known-hosts file (an operator who clones over SSH lists the
    // git hosts there).
    cmd.env(
        "GIT_SSH_COMMAND",
        "ssh -F /dev/null -o BatchMode=yes -o IdentityAgent=none -o IdentitiesOnly=yes \
         -i /dev/null -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes",
    );
    let mut config = vec![
        "credential.helper=",
        "protocol.allow=never",
        "protocol.https.allow=always",
        "protocol.ssh.allow=always",
        "core.hooksPath=/dev/null",
        "core.fsmonitor=false",
        "submodule.recurse=false",
        "advice.detachedHead=false",
        "init.defaultBranch=main",
    ];
    if p.allow_local {
        config.push("protocol.file.allow=always");
    }
    for c in config {
        cmd.arg("-c").arg(c);
    }
    cmd
}

struct Ctx<'a> {
    policy: &'a UrlPolicy,
    secrets: crate::log::Redactor,
    deadline: Instant,
    cancel: &'a CancellationToken,
}

impl Ctx<'_> {
    async fn run(
        &self,
        action: &'static str,
        dir: Option<&Path>,
        args: &[&str],
    ) -> Result<Output, GitError> {
        let mut cmd = git(self.policy);
        if let Some(d) = dir {
            cmd.arg("-C").arg(d);
        } else {
            cmd.current_dir("/");
        }
        cmd.args(args);
        match process::output(cmd, self.deadline, self.cancel).await {
            Ok(out) => Ok(out),
            Err(RunError::Spawn(e)) => Err(GitError::Spawn(e)),
            Err(RunError::Stopped(Stopped::Deadline)) => Err(GitError::Timeout(action)),
            Err(RunError::Stopped(Stopped::Canceled)) => Err(GitError::Canceled),
        }
    }

    async fn check(
        &self,
        action: &'static str,
        dir: Option<&Path>,
        args: &[&str],
    ) -> Result<Output, GitError> {
        let out = self.run(action, dir, args).await?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failed(action, &out))
        }
    }

    fn failed(&self, action: &'static str, out: &Output) -> GitError {
        let text = String::from_utf8_lossy(&out.stderr);
        let text = text.trim();
        // The last lines say what went wrong; the rest is progress noise.
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        GitError::Failed {
            action,
            stderr: self.secrets.redact(&tail.join("\n")),
        }
    }
}

/// Fetches exactly `sha` from `url` into the new directory `dest` (depth 1
/// where the server allows fetching by sha) and checks it out detached.
pub async fn clone_at(
    url: &str,
    sha: &str,
    dest: &Path,
    policy: &UrlPolicy,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<CommitInfo, GitError> {
    validate_url(url, policy)?;
    if !is_full_sha(sha) {
        return Err(GitError::BadCommit(sha.to_string()));
    }
    let sha = sha.to_ascii_lowercase();
    let ctx = Ctx {
        policy,
        secrets: crate::log::Redactor::new(url_secrets(url)),
        deadline: Instant::now() + timeout,
        cancel,
    };
    let dest_s = dest.to_str().ok_or_else(|| GitError::Failed {
        action: "init",
        stderr: format!("{} is not UTF-8", dest.display()),
    })?;
    // An empty template: no sample hooks or other files from the host.
    ctx.check("init", None, &["init", "--quiet", "--template=", dest_s])
        .await?;
    ctx.check("remote add", Some(dest), &["remote", "add", "origin", url])
        .await?;
    let by_sha = ctx
        .run(
            "fetch",
            Some(dest),
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-recurse-submodules",
                "--depth",
                "1",
                "origin",
                &sha,
            ],
        )
        .await?;
    if !by_sha.status.success() {
        // Servers without allow*SHA1InWant refuse unadvertised objects:
        // fetch the branches in full and look for the commit there.
        ctx.check(
            "fetch",
            Some(dest),
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-recurse-submodules",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )
        .await?;
    }
    let commit = format!("{sha}^{{commit}}");
    let present = ctx
        .run("cat-file", Some(dest), &["cat-file", "-e", &commit])
        .await?;
    if !present.status.success() {
        return Err(GitError::CommitNotFound(sha));
    }
    ctx.check(
        "checkout",
        Some(dest),
        &["checkout", "--quiet", "--detach", &sha],
    )
    .await?;
    let info = commit_info_with(&ctx, dest).await?;
    if info.sha != sha {
        return Err(GitError::Failed {
            action: "checkout",
            stderr: format!("HEAD is {} after checking out {sha}", info.sha),
        });
    }
    Ok(info)
}

async fn commit_info_with(ctx: &Ctx<'_>, dir: &Path) -> Result<CommitInfo, GitError> {
    let out = ctx
        .check(
            "log",
            Some(dir),
            &[
                "log",
                "-1",
                "--no-show-signature",
                "--format=%H%x00%an%x00%ae%x00%ct%x00%s",
            ],
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim_end_matches('\n').splitn(5, '\0');
    let mut next = || parts.next().unwrap_or("").to_string();
    Ok(CommitInfo {
        sha: next(),
        author_name: next(),
        author_email: next(),
        committed_at: next().parse().unwrap_or(0),
        message: next(),
    })
}

/// The commit checked out in `dir`.
pub async fn commit_info(dir: &Path) -> Result<CommitInfo, GitError> {
    let policy = UrlPolicy::default();
    let cancel = CancellationToken::new();
    let ctx = Ctx {
        policy: &policy,
        secrets: Default::default(),
        deadline: Instant::now() + Duration::from_secs(30),
        cancel: &cancel,
    };
    commit_info_with(&ctx, dir).await
}

/// The sha a branch points at, via `git ls-remote`.
pub async fn resolve_branch(url: &str, branch: &str, p: &UrlPolicy) -> Result<String, GitError> {
    validate_url(url, p)?;
    validate_branch(branch)?;
    let cancel = CancellationToken::new();
    let ctx = Ctx {
        policy: p,
        secrets: crate::log::Redactor::new(url_secrets(url)),
        deadline: Instant::now() + Duration::from_secs(60),
        cancel: &cancel,
    };
    let want = format!("refs/heads/{branch}");
    let out = ctx
        .check("ls-remote", None, &["ls-remote", "--heads", url, &want])
        .await?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(sha, r)| *r == want && is_full_sha(sha))
        .map(|(sha, _)| sha.to_string())
        .ok_or_else(|| GitError::BranchNotFound(branch.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// git, as builds run it, reads no config but ours and sees nothing of
    /// the coordinator's environment (its HOME, agents, tokens).
    #[tokio::test]
    async fn git_runs_with_nothing_of_the_coordinators_environment() {
        let p = UrlPolicy::default();
        let out = git(&p)
            .args(["config", "--list", "--show-origin"])
            .current_dir("/")
            .output()
            .await
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(!listing.is_empty(), "{out:?}");
        for line in listing.lines() {
            assert!(
                line.starts_with("command line:"),
                "config from elsewhere: {line}"
            );
        }
        // A git alias starting with `!` runs in git's own environment.
        let out = git(&p)
            .args(["-c", "alias.show-env=!env", "show-env"])
            .current_dir("/")
            .output()
            .await
            .unwrap();
        let env = String::from_utf8_lossy(&out.stdout);
        let mut seen = Vec::new();
        for line in env.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let allowed = k == "PATH"
                || k.starts_with("GIT_")
                || ["PWD", "OLDPWD", "SHLVL", "_", "HOME"].contains(&k);
            assert!(allowed, "git saw {k} from the coordinator's environment");
            if k == "HOME" {
                assert_eq!(v, NO_HOME);
            }
            seen.push(k.to_string());
        }
        assert!(seen.iter().any(|k| k == "HOME"), "{env}");
    }

    #[test]
    fn url_policy_table() {
        let open = UrlPolicy::default();
        let local = UrlPolicy {
            allow_local: true,
            allowed_hosts: vec![],
        };
        let only_gh = UrlPolicy {
            allow_local: false,
            allowed_hosts: vec!["GitHub.com".into()],
        };
        // (url, policy, allowed)
        let rows: &[(&str, &UrlPolicy, bool)] = &[
            ("https://github.com/a/b.git", &open, true),
            ("HTTPS://github.com/a/b", &open, true),
            ("https://user:tok@github.com/a/b", &open, true),
            ("https://[::1]:8443/a/b", &open, true),
            ("ssh://git@github.com/a/b.git", &open, true),
            ("ssh://git@github.com:2222/a/b.git", &open, true),
            ("git@github.com:a/b.git", &open, true),
            ("github.com:a/b.git", &open, true),
            ("https://github.com/a/b", &only_gh, true),
            ("git@github.com:a/b.git", &only_gh, true),
            ("https://gitlab.com/a/b", &only_gh, false),
            ("git@gitlab.com:a/b.git", &only_gh, false),
            ("http://github.com/a/b", &open, false),
            ("git://github.com/a/b", &open, false),
            ("ftp://github.com/a/b", &open, false),
            ("file:///srv/repo", &open, false),
            ("file:///srv/repo", &local, true),
            ("/srv/repo", &open, false),
            ("/srv/repo", &local, true),
            ("./repo", &open, false),
            ("repo", &open, false),
            ("ext::sh -c touch% /tmp/pwned", &local, false),
            ("ext::sh", &local, false),
            ("fd::3", &local, false),
            ("transport::https://github.com/a/b", &open, false),
            ("-uhttps://x", &local, false),
            ("--upload-pack=touch /tmp/x", &local, false),
            ("ssh://-oProxyCommand=touch/a", &open, false),
            ("ssh://-oProxyCommand=x@host/a", &open, false),
            ("-oProxyCommand=x:a/b", &open, false),
            ("git@-oProxyCommand=x:a/b", &open, false),
            ("https:///a/b", &open, false),
            ("https://github.com/a b", &open, false),
            ("https://github.com/a\nb", &open, false),
            ("", &open, false),
        ];
        for (url, policy, ok) in rows {
            let got = validate_url(url, policy);
            assert_eq!(got.is_ok(), *ok, "{url:?} with {policy:?}: {got:?}");
        }
    }

    #[test]
    fn refusals_never_show_credentials() {
        let err = validate_url("http://bob:hunter2@host/a", &UrlPolicy::default())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("bob:[redacted]@host"), "{err}");
    }

    #[test]
    fn credentials_come_out_of_urls_and_go_back_in() {
        for (url, clean, creds) in [
            (
                "https://user:pw@host/a.git",
                "https://host/a.git",
                Some("user:pw"),
            ),
            (
                "https://ghp_tok@host:8443/a?x#y",
                "https://host:8443/a?x#y",
                Some("ghp_tok"),
            ),
            ("https://u:p@ss@host/a", "https://host/a", Some("u:p@ss")),
            ("https://host/a@b", "https://host/a@b", None),
            ("ssh://git@host/a", "ssh://git@host/a", None),
            ("git@host:a/b", "git@host:a/b", None),
            ("https://user:@host/a", "https://user:@host/a", None),
        ] {
            let (c, k) = split_credentials(url);
            assert_eq!((c.as_str(), k.as_deref()), (clean, creds), "{url}");
            assert_eq!(with_credentials(&c, k.as_deref()), url, "{url}");
            assert!(url_secrets(&c).is_empty(), "{c}");
        }
    }

    #[test]
    fn url_secrets_table() {
        for (url, want) in [
            ("https://user:pw@host/a", vec!["pw"]),
            ("https://ghp_token@host/a", vec!["ghp_token"]),
            ("https://user:@host/a", vec![]),
            ("ssh://git@host/a", vec![]),
            ("git@host:a/b", vec![]),
            ("https://host/a@b", vec![]),
            ("https://host/a", vec![]),
        ] {
            assert_eq!(url_secrets(url), want, "{url}");
        }
        assert_eq!(
            redact_url("https://x-access-token:abc@github.com/a"),
            "https://x-access-token:[redacted]@github.com/a"
        );
    }

    #[test]
    fn shas_and_branches() {
        assert!(is_full_sha(&"a".repeat(40)));
        assert!(is_full_sha(&"0".repeat(64)));
        assert!(!is_full_sha("abc1234"));
        assert!(!is_full_sha(&"g".repeat(40)));
        for ok in ["main", "feature/x", "release-1.2"] {
            assert!(validate_branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a:b", "x.lock", "/a", "a/", "a@{1}",
        ] {
            assert!(validate_branch(bad).is_err(), "{bad}");
        }
    }
}

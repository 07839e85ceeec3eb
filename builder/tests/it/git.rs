//! The git side against real repositories: exact commits, branch lookup,
//! refused URLs.

use std::time::Duration;

use crate::support::Repo;
use builder::git::{self, GitError, UrlPolicy};
use tokio_util::sync::CancellationToken;

fn local() -> UrlPolicy {
    UrlPolicy {
        allow_local: true,
        allowed_hosts: vec![],
    }
}

#[tokio::test]
async fn clone_at_checks_out_exactly_the_requested_commit() {
    let repo = Repo::new();
    let old = repo.commit("first version", &[("index.html", "v1")]);
    let new = repo.commit(
        "second version\n\nbody",
        &[("index.html", "v2"), ("new.txt", "n")],
    );
    assert_ne!(old, new);
    for (sha, content, message) in [
        (&old, "v1", "first version"),
        (&new, "v2", "second version"),
    ] {
        let dest = tempfile::tempdir().unwrap();
        let dest = dest.path().join("src");
        let info = git::clone_at(
            &repo.url(),
            sha,
            &dest,
            &local(),
            Duration::from_secs(60),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(&info.sha, sha);
        assert_eq!(info.message, message);
        assert_eq!(info.author_name, "Ada Tester");
        assert_eq!(info.author_email, "ada@example.com");
        assert_eq!(
            std::fs::read_to_string(dest.join("index.html")).unwrap(),
            content
        );
        assert_eq!(dest.join("new.txt").exists(), sha == &new);
        // Shallow: the older commit is not there to check out by accident.
        let count = crate::support::git(&dest, &["rev-list", "--count", "HEAD"]);
        assert_eq!(count, "1");
        // No hooks came with the clone.
        let hooks = dest.join(".git/hooks");
        assert!(!hooks.exists() || std::fs::read_dir(hooks).unwrap().next().is_none());
    }
}

#[tokio::test]
async fn unknown_commits_and_unsafe_urls_fail_before_anything_runs() {
    let repo = Repo::new();
    repo.commit("one", &[("a", "1")]);
    let dest = tempfile::tempdir().unwrap();
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = git::clone_at(
        &repo.url(),
        missing,
        &dest.path().join("src"),
        &local(),
        Duration::from_secs(60),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, GitError::CommitNotFound(_) | GitError::Failed { .. }),
        "{err}"
    );

    // The default policy refuses a local repository outright.
    let err = git::clone_at(
        &repo.url(),
        &"a".repeat(40),
        &dest.path().join("src2"),
        &UrlPolicy::default(),
        Duration::from_secs(60),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GitError::UnsafeUrl { .. }), "{err}");
    assert!(!dest.path().join("src2").exists());

    let err = git::clone_at(
        &repo.url(),
        "HEAD",
        &dest.path().join("src3"),
        &local(),
        Duration::from_secs(60),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GitError::BadCommit(_)), "{err}");
}

#[tokio::test]
async fn resolve_branch_uses_ls_remote() {
    let repo = Repo::new();
    repo.commit("one", &[("a", "1")]);
    let head = repo.commit("two", &[("a", "2")]);
    crate::support::git(repo.dir.path(), &["branch", "feature/x", "HEAD~1"]);
    let first = crate::support::git(repo.dir.path(), &["rev-parse", "HEAD~1"]);
    assert_eq!(
        git::resolve_branch(&repo.url(), "main", &local())
            .await
            .unwrap(),
        head
    );
    assert_eq!(
        git::resolve_branch(&repo.url(), "feature/x", &local())
            .await
            .unwrap(),
        first
    );
    let err = git::resolve_branch(&repo.url(), "nope", &local())
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound(_)), "{err}");
    let err = git::resolve_branch(&repo.url(), "--upload-pack=x", &local())
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::BadBranch(_)), "{err}");
    let err = git::resolve_branch(&repo.url(), "main", &UrlPolicy::default())
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::UnsafeUrl { .. }), "{err}");
}

#[tokio::test]
async fn cancel_stops_a_fetch() {
    let repo = Repo::new();
    let sha = repo.commit("one", &[("a", "1")]);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let dest = tempfile::tempdir().unwrap();
    let err = git::clone_at(
        &repo.url(),
        &sha,
        &dest.path().join("src"),
        &local(),
        Duration::from_secs(60),
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GitError::Canceled), "{err}");
}

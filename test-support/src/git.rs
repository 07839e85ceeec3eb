//! Real git repositories made with the `git` program, with a fixed
//! identity and no signing, for build tests and benchmarks.

use std::path::Path;
use std::process::Command;

use crate::{Error, Result};

/// Whether `program` is on PATH; prints a loud SKIPPING line when not.
pub fn have(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    if !found {
        eprintln!("\n\n!!!!! SKIPPING: `{program}` is not installed on this host !!!!!\n\n");
    }
    found
}

/// Runs git in `dir`; returns its trimmed stdout.
pub fn try_git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Ada Tester",
            "-c",
            "user.email=ada@example.com",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| Error::new(format!("running git: {e}")))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// [`try_git`] for tests: panics when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    try_git(dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A new repository at `repo` that serves any commit to a fetch by sha.
pub fn init(repo: &Path) {
    std::fs::create_dir_all(repo).unwrap();
    git(repo, &["init", "-q"]);
    git(repo, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
}

/// Writes `files` and commits them; returns the sha.
pub fn commit(repo: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (p, c) in files {
        let path = repo.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

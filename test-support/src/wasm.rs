//! The test components under `fixtures/wasm/` (their own cargo workspace,
//! target `wasm32-wasip2`), built once per process: [`wasm_fixtures`]
//! returns the directory holding `<name>.wasm`. Parallel test binaries
//! serialise on a lock file next to the build output; cargo itself makes a
//! second build a quick no-op.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fixtures every caller can rely on.
pub const FIXTURES: &[&str] = &[
    "hello", "echo", "headers", "env", "panic", "loop", "memhog", "slow", "outbound", "logs",
    "count", "residue",
];

const TARGET: &str = "wasm32-wasip2";

/// The repository root (this crate lives in `<root>/test-support`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits inside the workspace")
        .to_path_buf()
}

/// The main workspace's target directory: `$CARGO_TARGET_DIR` (relative
/// paths are taken from the workspace root, as cargo does) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// Builds the wasm fixtures (once per process) and returns the directory
/// with `hello.wasm`, `echo.wasm`, … Panics with a clear message when the
/// build fails, e.g. because the `wasm32-wasip2` target is not installed.
pub fn wasm_fixtures() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build).clone()
}

/// Path of one fixture component.
pub fn wasm_fixture(name: &str) -> PathBuf {
    wasm_fixtures().join(format!("{name}.wasm"))
}

fn build() -> PathBuf {
    let root = workspace_root();
    let manifest = root.join("fixtures/wasm/Cargo.toml");
    let target = target_dir().join("wasm-fixtures");
    std::fs::create_dir_all(&target)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
    // Other test binaries may be building the same fixtures right now.
    let lock_path = target.join("build.lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--target",
        TARGET,
        "--manifest-path",
    ])
    .arg(&manifest)
    .env("CARGO_TARGET_DIR", &target)
    .current_dir(root.join("fixtures/wasm"));
    // Host-side settings of the outer build must not leak into the wasm one.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the wasm fixtures: {e}"));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if target_missing(&stderr) {
            panic!(
                "the {TARGET} target is not installed: run `rustup target add {TARGET}`\n{stderr}"
            );
        }
        panic!(
            "building the wasm fixtures failed ({}):\n{stderr}",
            out.status
        );
    }

    // Library names carry a prefix (`loop` is a keyword); the components
    // are published under their plain names.
    let built = target.join(TARGET).join("release");
    let dir = target.join("components");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    for name in FIXTURES {
        let from = built.join(format!("fixture_{name}.wasm"));
        let bytes = std::fs::read(&from).unwrap_or_else(|e| {
            panic!(
                "fixture {} was not built ({e}); is it a member of fixtures/wasm?",
                from.display()
            )
        });
        let to = dir.join(format!("{name}.wasm"));
        if std::fs::read(&to).ok().as_deref() != Some(&bytes[..]) {
            let tmp = dir.join(format!(".{name}.wasm.tmp"));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &to))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
        }
    }
    drop(lock);
    dir
}

/// rustc's and cargo's wording when the standard library for a target is
/// absent.
fn target_missing(stderr: &str) -> bool {
    stderr.contains("can't find crate for `core`")
        || stderr.contains("can't find crate for `std`")
        || stderr.contains("target may not be installed")
        || stderr.contains(&format!("does not support target `{TARGET}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_a_missing_target() {
        assert!(target_missing(
            "error[E0463]: can't find crate for `core`\n  = note: the `wasm32-wasip2` target may not be installed"
        ));
        assert!(!target_missing("error: could not compile `hello`"));
    }
}

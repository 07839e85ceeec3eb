//! Password hashing with argon2id (the `argon2` crate's defaults: 19 MiB,
//! two passes), off the async runtime because each hash takes tens of ms.
//!
//! Anyone can make the coordinator hash (sign-in and sign-up need no
//! credential), so hashing goes through one gate: [`CONCURRENT`] at a
//! time, [`QUEUE`] more waiting, and beyond that [`PasswordError::Busy`]
//! at once (a 429), so a flood costs bounded memory and CPU.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

pub const MIN_PASSWORD: usize = 10;
/// argon2 accepts more, but nobody types this much and it bounds the work.
pub const MAX_PASSWORD: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("password must be at least {MIN_PASSWORD} characters")]
    TooShort,
    #[error("password must be at most {MAX_PASSWORD} bytes")]
    TooLong,
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
}

/// Hashes that run at once (each holds 19 MiB and a core for tens of ms).
pub const CONCURRENT: usize = 4;
/// Hashes that may wait for a turn; more are refused.
pub const QUEUE: usize = 64;

struct Gate {
    turns: tokio::sync::Semaphore,
    /// Running and waiting.
    inside: AtomicUsize,
}

static GATE: LazyLock<Gate> = LazyLock::new(|| Gate {
    turns: tokio::sync::Semaphore::new(CONCURRENT),
    inside: AtomicUsize::new(0),
});

/// Leaves the gate however the caller ends (a dropped request included).
struct Inside;

impl Drop for Inside {
    fn drop(&mut self) {
        GATE.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `work` on the blocking pool once it has a turn.
async fn gated<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    if GATE.inside.fetch_add(1, Ordering::AcqRel) >= CONCURRENT + QUEUE {
        GATE.inside.fetch_sub(1, Ordering::AcqRel);
        return Err(PasswordError::Busy);
    }
    let _inside = Inside;
    let _turn = GATE
        .turns
        .acquire()
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// A PHC string (`$argon2id$v=19$…`) with a fresh random salt.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    check_policy(&password)?;
    gated(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await?
}

/// Constant-time comparison inside argon2; a malformed stored hash is a
/// mismatch, not a crash.
pub async fn verify(password: String, stored: String) -> Result<bool, PasswordError> {
    if password.len() > MAX_PASSWORD {
        return Ok(false);
    }
    gated(move || match PasswordHash::new(&stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
}

/// Verifying against this when the account does not exist keeps the
/// response time the same, so timing does not reveal which emails exist.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not a real password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash("correct horse battery".into()).await.unwrap();
        let b = hash("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salts differ");
        assert!(verify("correct horse battery".into(), a.clone())
            .await
            .unwrap());
        assert!(!verify("wrong horse battery".into(), a).await.unwrap());
        assert!(!verify("x".into(), "not a phc string".into()).await.unwrap());
    }

    #[test]
    fn policy() {
        for (pw, want) in [
            ("short", Err(PasswordError::TooShort)),
            ("ninechars", Err(PasswordError::TooShort)),
            ("tencharsok", Ok(())),
            (&"x".repeat(257)[..], Err(PasswordError::TooLong)),
        ] {
            assert_eq!(check_policy(pw), want, "{pw}");
        }
    }

    /// A flood of hashes runs [`CONCURRENT`] at a time, lets [`QUEUE`]
    /// wait, and refuses the rest at once instead of queueing without end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_hashes_is_bounded() {
        let stored = dummy_hash().to_string();
        let flood = (0..CONCURRENT + QUEUE + 40)
            .map(|_| verify("a guessed password".into(), stored.clone()));
        let results = futures::future::join_all(flood).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(PasswordError::Busy)))
            .count();
        assert!(busy >= 40, "{busy} refused");
        assert!(results
            .iter()
            .all(|r| matches!(r, Ok(false) | Err(PasswordError::Busy))));
        // Every turn was given back: the gate is open again (other tests
        // share it, so its count is not checked here).
        assert_eq!(verify("x".into(), stored).await, Ok(false));
    }
}

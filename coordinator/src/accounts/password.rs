//! Password hashing with argon2id (the `argon2` crate's defaults: 19 MiB,
//! two passes), off the async runtime because each hash takes tens of ms.

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
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Constant-time comparison inside argon2; a malformed stored hash is a
/// mismatch, not a crash.
pub async fn verify(password: String, stored: String) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    tokio::task::spawn_blocking(move || match PasswordHash::new(&stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
    .unwrap_or(false)
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
        assert!(verify("correct horse battery".into(), a.clone()).await);
        assert!(!verify("wrong horse battery".into(), a).await);
        assert!(!verify("x".into(), "not a phc string".into()).await);
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
}

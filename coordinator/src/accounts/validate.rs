//! Bounds on what people type into account forms.

pub const MAX_EMAIL: usize = 254;
pub const MAX_NAME: usize = 100;

/// Lowercased and trimmed; one `@`, a dot in the domain, no spaces or
/// control characters. Deliverability is not checked: nothing is mailed.
pub fn email(raw: &str) -> Result<String, &'static str> {
    let e = raw.trim().to_ascii_lowercase();
    if e.is_empty() {
        return Err("enter an email address");
    }
    if e.len() > MAX_EMAIL {
        return Err("email address is too long");
    }
    let ok = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && e.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii())
                && !e.chars().any(char::is_control)
        }
        None => false,
    };
    if ok {
        Ok(e)
    } else {
        Err("that does not look like an email address")
    }
}

/// A display name for people and teams: trimmed, 1–100 characters, no
/// control characters.
pub fn display_name(raw: &str, what: &'static str) -> Result<String, String> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(format!("enter a {what}"));
    }
    if n.chars().count() > MAX_NAME {
        return Err(format!("{what} must be at most {MAX_NAME} characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for (raw, want) in [
            (" Ada@Example.COM ", Ok("ada@example.com")),
            ("a@b.co", Ok("a@b.co")),
            ("", Err(())),
            ("no-at.example.com", Err(())),
            ("@example.com", Err(())),
            ("a@localhost", Err(())),
            ("a@b@c.com", Err(())),
            ("a b@c.com", Err(())),
            ("a@.com", Err(())),
            ("a\u{0}@c.com", Err(())),
        ] {
            let got = email(raw).map_err(|_| ());
            assert_eq!(got.as_deref().map_err(|_| ()), want, "{raw:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(display_name("  Ada  ", "name").unwrap(), "Ada");
        assert!(display_name("", "name").is_err());
        assert!(display_name("a\nb", "name").is_err());
        assert!(display_name(&"x".repeat(101), "name").is_err());
    }
}

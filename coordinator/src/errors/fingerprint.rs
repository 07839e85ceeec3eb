//! The grouping key of an event: what stays the same when the same bug
//! happens again.

use super::Source;

/// Frames of the backtrace that take part in the fingerprint.
const TOP_FRAMES: usize = 3;

/// The message with its variable parts replaced: quoted values (`"…"`,
/// `'…'`; backticks quote code, which stays) by `<str>`,
/// UUIDs and hex runs of 8+ digits by `<hex>`, IPv4 addresses by `<ip>`,
/// other numbers by `<n>`; whitespace runs become one space. Only the
/// first line counts (the rest is usually a dump of values).
pub fn normalise(message: &str) -> String {
    let line = message.lines().next().unwrap_or("").trim();
    let mut out = String::with_capacity(line.len());
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if (c == '"' || c == '\'') && (i == 0 || !is_word(chars[i - 1])) {
            // A quoted value, up to the same quote on the line.
            if let Some(end) = chars[i + 1..].iter().position(|&d| d == c) {
                out.push_str("<str>");
                i += end + 2;
                continue;
            }
        }
        if c.is_ascii_hexdigit() && (i == 0 || !is_word(chars[i - 1])) {
            let run = chars[i..]
                .iter()
                .take_while(|&&d| d.is_ascii_hexdigit() || d == '-' || d == '.')
                .count();
            let token: String = chars[i..i + run].iter().collect();
            let token = token.trim_end_matches(['-', '.']);
            let len = token.chars().count();
            let ends_word = chars.get(i + len).is_some_and(|&d| is_word(d));
            if !ends_word {
                if let Some(kind) = classify(token) {
                    out.push_str(kind);
                    i += len;
                    continue;
                }
            }
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn classify(token: &str) -> Option<&'static str> {
    if token.is_empty() {
        return None;
    }
    let digits_only = token.chars().all(|c| c.is_ascii_digit());
    if digits_only {
        return Some("<n>");
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u8>().is_ok())
    {
        return Some("<ip>");
    }
    if token.contains('.') {
        // `1.5`: a number; `v1.2.3` never gets here (starts with a letter
        // that is not hex... or is), so keep anything else as it is.
        return token.parse::<f64>().is_ok().then_some("<n>");
    }
    let hex: String = token.chars().filter(|c| *c != '-').collect();
    if hex.len() >= 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some("<hex>");
    }
    None
}

/// The fingerprint: blake3 over the source, kind, place, normalised
/// message and top frames, as 32 hex digits.
pub fn fingerprint(
    source: Source,
    kind: &str,
    place: &str,
    message: &str,
    frames: &[String],
) -> String {
    let mut h = blake3::Hasher::new();
    for part in [source.as_str(), kind, place, &normalise(message)] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    for f in frames.iter().take(TOP_FRAMES) {
        h.update(f.as_bytes());
        h.update(&[1]);
    }
    h.finalize().to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_are_replaced() {
        let cases = [
            ("order 1234 not found", "order <n> not found"),
            ("user 'alice' has no cart", "user <str> has no cart"),
            (
                "id 550e8400-e29b-41d4-a716-446655440000 gone",
                "id <hex> gone",
            ),
            ("blob deadbeefcafe missing", "blob <hex> missing"),
            ("connect to 10.0.0.12 refused", "connect to <ip> refused"),
            ("took 1.5 s", "took <n> s"),
            ("a  \t b", "a b"),
            ("first line\nsecond 42", "first line"),
            // Words with digits in them are words, not numbers.
            ("utf8 error in v2handler", "utf8 error in v2handler"),
            (
                "wasm trap: wasm `unreachable` instruction executed",
                "wasm trap: wasm `unreachable` instruction executed",
            ),
            ("can't find user's cart 7", "can't find user's cart <n>"),
            ("bad", "bad"),
            ("cafe", "cafe"),
        ];
        for (input, want) in cases {
            assert_eq!(normalise(input), want, "{input:?}");
        }
    }

    #[test]
    fn the_same_bug_with_other_values_is_one_issue() {
        let f = |msg: &str, frames: &[&str]| {
            let frames: Vec<String> = frames.iter().map(|s| s.to_string()).collect();
            fingerprint(Source::Function, "panic", "/api/x", msg, &frames)
        };
        assert_eq!(
            f("order 1 failed", &["a", "b"]),
            f("order 2 failed", &["a", "b"])
        );
        // Frames past the top three do not split issues.
        assert_eq!(f("x", &["a", "b", "c", "d"]), f("x", &["a", "b", "c", "e"]));
        assert_ne!(f("x", &["a"]), f("x", &["b"]));
        assert_ne!(f("order failed", &[]), f("payment failed", &[]));
        assert_ne!(
            fingerprint(Source::Function, "panic", "/a", "x", &[]),
            fingerprint(Source::Function, "panic", "/b", "x", &[])
        );
        assert_ne!(
            fingerprint(Source::Function, "panic", "/a", "x", &[]),
            fingerprint(Source::Function, "trap", "/a", "x", &[])
        );
        assert_eq!(f("x", &[]).len(), 32);
    }
}

//! Splitting one fuzz input into the parts a check needs.

/// The first byte picks a case; the rest is the input.
pub fn pick(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest),
        None => (0, data),
    }
}

/// `data` as text, when it is UTF-8 (parsers of text take `&str`).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Up to `n` parts separated by a NUL byte (the last part takes the rest).
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |&b| b == 0).collect()
}

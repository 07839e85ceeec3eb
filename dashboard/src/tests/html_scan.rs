//! Just enough HTML scanning for the assertions; maud's output is regular
//! (double-quoted attributes, no comments), which keeps this simple.

/// Each start tag named `name`, as the text between `<` and `>`.
pub fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let boundary = after.chars().next().is_some_and(|c| c == ' ' || c == '>');
        let end = after.find('>').expect("unterminated tag");
        if boundary {
            out.push(&after[..end]);
        }
        rest = &after[end..];
    }
    out
}

pub fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let len = tag[i..].find('"')?;
    Some(&tag[i..i + len])
}

pub fn has_attr(tag: &str, name: &str) -> bool {
    attr(tag, name).is_some()
        || tag
            .split_whitespace()
            .any(|w| w == name || w.trim_end_matches('/') == name)
}

/// Each `<form …>…</form>`, whole (forms never nest).
pub fn forms(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<form") {
        let from = &rest[i..];
        let end = from.find("</form>").expect("unclosed form") + "</form>".len();
        out.push(&from[..end]);
        rest = &from[end..];
    }
    out
}

//! Netlify / Cloudflare Pages `_redirects` and `_headers` files.
//!
//! `_redirects`, one rule per line:
//! `source [key=value | key=:name …] destination [status[!]]`.
//! Status defaults to 301 (Netlify); 200 is a rewrite (to a URL: a proxy),
//! 404 a rewrite served with 404, `!` forces the rule over existing files.
//! Country/Language/Role/Cookie conditions and domain-level sources are
//! refused, not ignored: ignoring a condition would apply the rule to
//! every visitor.
//!
//! `_headers`: an unindented path line opens a block; indented
//! `Name: value` lines below it add headers. `#` starts a comment line.

use super::{
    check_header, is_absolute, make_header_rule, make_rule, Action, ConfigFile, HeaderRule, Locus,
    Problem, QueryCondition, RoutingError, Rule, REDIRECT_STATUSES,
};

fn is_destination(token: &str) -> bool {
    token.starts_with('/') || is_absolute(token)
}

fn parse_status(token: &str) -> Option<(u16, bool)> {
    let (digits, force) = match token.strip_suffix('!') {
        Some(d) => (d, true),
        None => (token, false),
    };
    (digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (digits.parse().ok(), force))
        .and_then(|(s, f)| s.map(|s| (s, f)))
}

fn redirect_line(line: &str) -> Result<Option<Rule>, Problem> {
    let mut tokens = line
        .split_whitespace()
        .take_while(|t| !t.starts_with('#'))
        .peekable();
    let Some(source) = tokens.next() else {
        return Ok(None);
    };
    if is_absolute(source) {
        return Err(Problem::Unsupported(
            "a domain-level source (rules match paths only)",
        ));
    }
    if !source.starts_with('/') {
        return Err(Problem::Syntax(format!(
            "the source {:?} must start with '/'",
            source.chars().take(80).collect::<String>()
        )));
    }
    let mut query = Vec::new();
    let destination = loop {
        match tokens.next() {
            None => {
                return Err(Problem::Syntax(
                    "expected a destination path or URL after the source".into(),
                ))
            }
            Some(t) if is_destination(t) => break t,
            Some(t) => match t.split_once('=') {
                Some((key, value)) => query.push(QueryCondition {
                    key: key.to_string(),
                    value: value.to_string(),
                }),
                None => {
                    return Err(Problem::Syntax(format!(
                        "{:?} is neither a query condition (key=value) nor a destination ('/path' or 'https://…')",
                        t.chars().take(80).collect::<String>()
                    )))
                }
            },
        }
    };
    let (status, force) = match tokens.next() {
        None => (301, false),
        Some(t) => parse_status(t).ok_or_else(|| {
            Problem::Syntax(format!(
                "expected a status such as 301, 200 or 404! after the destination, found {:?}",
                t.chars().take(80).collect::<String>()
            ))
        })?,
    };
    if let Some(extra) = tokens.next() {
        return Err(if extra.contains('=') {
            Problem::Unsupported("Country, Language, Role and Cookie conditions")
        } else {
            Problem::Syntax(format!(
                "unexpected {:?} after the status",
                extra.chars().take(80).collect::<String>()
            ))
        });
    }
    let action = match status {
        200 | 404 => Action::Rewrite { status },
        s if REDIRECT_STATUSES.contains(&s) => Action::Redirect { status },
        s => {
            return Err(Problem::Status {
                status: s,
                what: "a _redirects rule",
                allowed: "200, 301, 302, 303, 307, 308, 404",
            })
        }
    };
    make_rule(source, query, destination, action, force).map(Some)
}

pub(super) fn parse_redirects(text: &str) -> Result<Vec<Rule>, RoutingError> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match redirect_line(line) {
            Ok(Some(rule)) => rules.push(rule),
            Ok(None) => {}
            Err(p) => return Err(p.at(ConfigFile::Redirects, Locus::Line(i + 1))),
        }
        if rules.len() > super::MAX_RULES {
            return Err(Problem::TooManyRules { count: rules.len() }
                .at(ConfigFile::Redirects, Locus::Line(i + 1)));
        }
    }
    Ok(rules)
}

/// A `_headers` path line and the header lines below it so far.
struct Block<'t> {
    line: usize,
    source: &'t str,
    headers: Vec<(String, String)>,
}

pub(super) fn parse_headers(text: &str) -> Result<Vec<HeaderRule>, RoutingError> {
    const FILE: ConfigFile = ConfigFile::Headers;
    let mut rules = Vec::new();
    let mut open: Option<Block> = None;
    let close = |block: Option<Block>, rules: &mut Vec<HeaderRule>| -> Result<(), RoutingError> {
        if let Some(Block {
            line,
            source,
            headers,
        }) = block
        {
            rules.push(
                make_header_rule(source, headers).map_err(|p| p.at(FILE, Locus::Line(line)))?,
            );
            if rules.len() > super::MAX_RULES {
                return Err(
                    Problem::TooManyRules { count: rules.len() }.at(FILE, Locus::Line(line))
                );
            }
        }
        Ok(())
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if !indented {
            close(open.take(), &mut rules)?;
            if is_absolute(line) {
                return Err(
                    Problem::Unsupported("a host-based path (rules match paths only)")
                        .at(FILE, Locus::Line(n)),
                );
            }
            if !line.starts_with('/') {
                return Err(Problem::Syntax(format!(
                    "expected a path starting with '/' (header lines must be indented), found {:?}",
                    line.chars().take(80).collect::<String>()
                ))
                .at(FILE, Locus::Line(n)));
            }
            open = Some(Block {
                line: n,
                source: line,
                headers: Vec::new(),
            });
            continue;
        }
        let Some(Block { headers, .. }) = open.as_mut() else {
            return Err(
                Problem::Syntax("a header line comes before any path line".into())
                    .at(FILE, Locus::Line(n)),
            );
        };
        if line.starts_with('!') {
            return Err(
                Problem::Unsupported("removing headers ('! Name')").at(FILE, Locus::Line(n))
            );
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Problem::Syntax("expected 'Name: value'".into()).at(FILE, Locus::Line(n)));
        };
        let (name, value) = (name.trim(), value.trim());
        check_header(name, value).map_err(|p| p.at(FILE, Locus::Line(n)))?;
        headers.push((name.to_string(), value.to_string()));
    }
    close(open.take(), &mut rules)?;
    Ok(rules)
}

//! API tokens for the CLI and CI.

use maud::{html, Markup};

use crate::components::{
    action, alert, badge, empty, post_form, reveal, table_wrap, time, time_or, Btn,
};
use crate::format::seg;
use crate::layout::document;
use crate::model::{Page, TokenRow, TokensPage};

pub fn tokens(page: &Page, t: &TokensPage) -> String {
    let body = html! {
        div.page-head { h1 { "API tokens" } }
        p.muted { "Tokens let the " code { "coordinator" } " CLI and CI jobs act as you. Set "
            code { "OUTPOST_TOKEN" } " (and " code { "OUTPOST_URL" } ") in their environment." }
        @if let Some(token) = &t.new_token {
            (reveal("new-token", "New API token", token))
        }
        (alert(t.error.as_deref()))
        @if t.tokens.is_empty() {
            (empty("No API tokens", html! {
                p { "Create one below, then deploy from CI with "
                    code { "OUTPOST_TOKEN=… coordinator deploy ./dist --project NAME" } "." }
            }))
        } @else {
            (table_wrap("API tokens", &["Name", "Scope", "Created", "Expires", "Last used", "Status", ""], html! {
                @for tok in &t.tokens { (row(page, tok)) }
            }))
        }
        section.card aria-labelledby="new-token-h" {
            h2 #new-token-h { "New token" }
            (post_form(&page.csrf, "/tokens", "row", html! {
                div.field {
                    label for="token-name" { "Name" }
                    input #token-name type="text" name="name" required maxlength="100" autocomplete="off"
                        placeholder="CI deploys";
                }
                div.field {
                    label for="token-scope" { "Scope" }
                    select #token-scope name="scope" {
                        @for (value, label) in &t.scopes { option value=(value) { (label) } }
                    }
                }
                div.field {
                    label for="token-expires" { "Expires after (days)" }
                    input #token-expires type="number" name="expires_days" min="1" step="1"
                        placeholder="never" aria-describedby="token-expires-hint";
                    p.hint #token-expires-hint { "Leave empty for a token that never expires." }
                }
                button type="submit" class="btn primary" { "Create token" }
            }))
        }
    };
    document(page, false, body)
}

fn row(page: &Page, tok: &TokenRow) -> Markup {
    let expired = tok.expires_at.is_some_and(|e| e <= page.now_ms);
    let status = if tok.revoked_at.is_some() {
        "revoked"
    } else if expired {
        "expired"
    } else {
        "active"
    };
    html! {
        tr {
            th scope="row" { (tok.name) }
            td { code { (tok.scope) } }
            td.nowrap { (time(page.now_ms, tok.created_at)) }
            td.nowrap { (time_or(page.now_ms, tok.expires_at, "never")) }
            td.nowrap { (time_or(page.now_ms, tok.last_used_at, "never")) }
            td { (badge(status)) }
            td {
                @if status == "active" {
                    (action(&page.csrf, &format!("/tokens/{}/revoke", seg(&tok.id)), "Revoke", Btn::Danger,
                        Some(&format!("Revoke \u{201c}{}\u{201d}? Anything using it stops working at once.", tok.name))))
                }
            }
        }
    }
}

//! The frame around every page: head, top bar, flash message.

use maud::{html, Markup};

use crate::assets;
use crate::components::csrf;
use crate::model::{FlashKind, Nav, Page};

const NAV: [(Nav, &str, &str); 6] = [
    (Nav::Projects, "Projects", "/"),
    (Nav::Nodes, "Nodes", "/nodes"),
    (Nav::Tokens, "Tokens", "/tokens"),
    (Nav::Team, "Team", "/teams"),
    (Nav::Audit, "Audit", "/audit"),
    (Nav::Account, "Account", "/account"),
];

/// A complete HTML document around `content`. `narrow` centres a single
/// card, for the sign-in style pages.
pub fn document(page: &Page, narrow: bool, content: Markup) -> String {
    let title = if page.title.is_empty() {
        "Outpost".to_string()
    } else {
        format!("{} · Outpost", page.title)
    };
    let body = html! {
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) }
                link rel="icon" type="image/svg+xml" href=(assets::url("favicon.svg"));
                link rel="stylesheet" href=(assets::url("style.css"));
                script src=(assets::url("app.js")) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (top_bar(page))
                main #main .container .narrow[narrow] tabindex="-1" {
                    (flash(page))
                    (content)
                }
            }
        }
    };
    // maud's DOCTYPE constant is upper-case; this is the spelling asked for.
    let mut out = String::from("<!doctype html>");
    out.push_str(&body.into_string());
    out
}

fn top_bar(page: &Page) -> Markup {
    html! {
        header.topbar {
            div.topbar-inner {
                a.brand href="/" {
                    img src=(assets::url("favicon.svg")) alt="" width="22" height="22";
                    span { "Outpost" }
                }
                @if let Some(user) = &page.user {
                    nav.mainnav aria-label="Main" {
                        ul {
                            @for (item, label, href) in NAV {
                                @if item != Nav::Nodes || user.instance_owner {
                                li {
                                    a href=(href) aria-current=[(page.nav == item).then_some("page")] { (label) }
                                }
                                }
                            }
                        }
                    }
                    div.user {
                        span.user-email title=(user.name) { (user.email) }
                        form method="post" action="/logout" class="inline" {
                            (csrf(&page.csrf))
                            button type="submit" class="btn small" { "Sign out" }
                        }
                    }
                }
            }
        }
    }
}

fn flash(page: &Page) -> Markup {
    html! {
        @if let Some(f) = &page.flash {
            @match f.kind {
                FlashKind::Error => div class="flash flash-error" role="alert" { (f.message) },
                FlashKind::Success => div class="flash flash-success" role="status" aria-live="polite" { (f.message) },
                FlashKind::Info => div class="flash flash-info" role="status" aria-live="polite" { (f.message) },
            }
        }
    }
}

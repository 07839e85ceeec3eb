//! A team's alert channels, on the team page: where its projects' alerts
//! go, each with a test button and its delivery history; owners add and
//! remove them.

use maud::{html, Markup};

use crate::components::{action, badge_toned, empty, post_form, reveal, table_wrap, time, Btn};
use crate::format::seg;
use crate::model::{ChannelRow, DeliveryRow, Page, TeamPage};

fn delivery_tone(status: &str) -> &'static str {
    match status {
        "sent" => "ok",
        "failed" => "bad",
        "pending" => "warn",
        _ => "muted",
    }
}

pub fn section(page: &Page, base: &str, t: &TeamPage) -> Markup {
    let can_test = t.team.role != "viewer";
    html! {
        section aria-labelledby="channels-h" {
            h2 #channels-h { "Alert channels" }
            p.muted { "Where the alerts of this team's projects go. Every project of the team can notify them; "
                "rules are set on each project's Alerts tab." }
            @if let Some((name, secret)) = &t.new_channel_secret {
                (reveal("new-channel-secret", &format!("Signing secret of {name}"), secret))
                p.muted { "Deliveries carry a " code { "webhook-signature" } " header made with it "
                    "(Standard Webhooks); the receiver checks it with this secret." }
            }
            @if t.channels.is_empty() {
                (empty("No channels", html! {
                    p { "Add a webhook, a Slack incoming webhook or an e-mail address, then add alert rules on a project's Alerts tab." }
                    @if !t.is_owner { p { "Team owners add channels." } }
                }))
            }
            @for c in &t.channels { (channel(page, base, t.is_owner, can_test, c)) }
            @if t.is_owner { (add_form(page, base)) }
        }
    }
}

fn channel(page: &Page, base: &str, is_owner: bool, can_test: bool, c: &ChannelRow) -> Markup {
    let path = format!("{base}/channels/{}", seg(&c.id));
    html! {
        div.card.channel {
            div.section-head {
                h3 { (c.name) " " (badge_toned(&c.kind, "accent")) }
                div.actions {
                    @if can_test {
                        (action(&page.csrf, &format!("{path}/test"), "Send test", Btn::Secondary, None))
                    }
                    @if is_owner {
                        (action(&page.csrf, &format!("{path}/remove"), "Remove", Btn::Danger,
                            Some(&format!("Remove the channel \u{201c}{}\u{201d}? Alerts stop going to it.", c.name))))
                    }
                }
            }
            dl.meta {
                dt { "Target" } dd { code.break { (c.target) } }
                @if c.kind == "webhook" {
                    dt { "Signed" } dd { @if c.signed { "Yes, " code { "webhook-signature" } } @else { "No" } }
                }
                dt { "Added" } dd { (time(page.now_ms, c.created_at)) }
            }
            details.deliveries open[c.deliveries.iter().any(|d| d.status == "failed")] {
                summary { "Deliveries (" (c.deliveries.len()) ")" }
                @if c.deliveries.is_empty() {
                    p.muted { "Nothing sent yet. " @if can_test { "Send a test to check it works." } }
                } @else {
                    (table_wrap(&format!("Deliveries to {}", c.name),
                        &["Status", "About", "Attempts", "Reply", "Error", "Queued", "Sent"],
                        html! { @for d in &c.deliveries { (delivery(page, d)) } }))
                }
            }
        }
    }
}

fn delivery(page: &Page, d: &DeliveryRow) -> Markup {
    html! {
        tr {
            td { (badge_toned(&d.status, delivery_tone(&d.status))) }
            td {
                @match &d.rule {
                    Some(r) => { "Alert " code.small { (r) } },
                    None => "Test message",
                }
            }
            td.num { (d.attempts) }
            td.num { @match d.last_status { Some(s) => (s), None => span.muted { "—" } } }
            td { @match &d.last_error { Some(e) => span.break { (e) }, None => span.muted { "—" } } }
            td.nowrap { (time(page.now_ms, d.created_at)) }
            td.nowrap {
                @match (d.sent_at, d.status.as_str()) {
                    (Some(t), _) => (time(page.now_ms, t)),
                    (None, "pending") => { "next try " (time(page.now_ms, d.next_at)) },
                    _ => span.muted { "—" },
                }
            }
        }
    }
}

fn add_form(page: &Page, base: &str) -> Markup {
    html! {
        section.card aria-labelledby="channel-add-h" {
            h3 #channel-add-h { "Add a channel" }
            (post_form(&page.csrf, &format!("{base}/channels"), "stack", html! {
                div.row {
                    div.field {
                        label for="channel-kind" { "Kind" }
                        select #channel-kind name="kind" {
                            option value="webhook" { "Webhook (signed JSON)" }
                            option value="slack" { "Slack incoming webhook" }
                            option value="email" { "E-mail" }
                        }
                    }
                    div.field {
                        label for="channel-target" { "URL or address" }
                        input #channel-target type="text" name="target" required maxlength="2048"
                            spellcheck="false" autocomplete="off" placeholder="https://hooks.example.com/outpost";
                    }
                    div.field {
                        label for="channel-name" { "Name (optional)" }
                        input #channel-name type="text" name="name" maxlength="64" autocomplete="off"
                            placeholder="ops pager";
                    }
                }
                div.field {
                    label for="channel-signing-secret" { "Signing secret (webhooks only, optional)" }
                    input #channel-signing-secret type="text" name="secret" maxlength="256" spellcheck="false"
                        autocomplete="off" aria-describedby="channel-signing-secret-hint";
                    p.hint #channel-signing-secret-hint { "16 to 256 printable characters, such as whsec_…; empty: a new one, shown once." }
                }
                button type="submit" class="btn primary" { "Add channel" }
            }))
            p.hint { "Webhook and Slack URLs must be https. Send a test afterwards: the delivery history below the channel shows what the receiver answered." }
        }
    }
}

//! Edge nodes by region, and enrolling new ones.

use maud::{html, Markup};

use crate::components::{action, badge, empty, post_form, reveal, table_wrap, time_or, Btn};
use crate::format::seg;
use crate::layout::document;
use crate::model::{InstanceAlerts, NodeRow, NodesPage, Page};
use crate::pages::rules;

const JOIN_EXAMPLE: &str = "edge-node join COORDINATOR_HOST:8701 --token TOKEN --region REGION";

pub fn nodes(page: &Page, n: &NodesPage) -> String {
    let owner = page.user.as_ref().is_some_and(|u| u.instance_owner);
    let count: usize = n.regions.iter().map(|r| r.nodes.len()).sum();
    let body = html! {
        div.page-head {
            h1 { "Nodes" }
            p.muted { (count) " node" @if count != 1 { "s" } " · config version " (n.current_config_version) }
        }
        @if let Some(token) = &n.new_join_token {
            (reveal("join-token", "New join token", token))
            p { "On the new server, run " code { (JOIN_EXAMPLE) } " with this token." }
        }
        @if count == 0 {
            (empty("No edge nodes yet", html! {
                p { "Edge nodes serve your sites. To add one, install " code { "edge-node" }
                    " on a server and run:" }
                pre.cmd { code { (JOIN_EXAMPLE) } }
                p {
                    @if owner { "Create the join token with the form below." }
                    @else { "The instance owner can create a join token for you." }
                }
            }))
        }
        @for g in &n.regions {
            @if !g.nodes.is_empty() {
                section.region aria-labelledby={ "region-" (slug(&g.region)) } {
                    h2 id={ "region-" (slug(&g.region)) } {
                        "Region " code { (g.region) }
                        " " span.muted.small { (g.nodes.len()) " node" @if g.nodes.len() != 1 { "s" } }
                    }
                    (table_wrap(&format!("Nodes in {}", g.region),
                        &["Node", "State", "Requests/s", "Version", "Config", "Bundles", "Last contact", "Certificate ends", "Address", ""],
                        html! { @for node in &g.nodes { (row(page, n.current_config_version, node)) } }))
                }
            }
        }
        @if owner {
            section.card aria-labelledby="join-h" {
                h2 #join-h { "Add a node" }
                p.muted { "A join token lets a server enrol as an edge node in the region you choose. It expires, so create it just before you need it." }
                (post_form(&page.csrf, "/nodes/join-tokens", "row", html! {
                    div.field {
                        label for="join-region" { "Region" }
                        input #join-region type="text" name="region" required spellcheck="false"
                            autocomplete="off" placeholder="fra" pattern="[a-z0-9]([a-z0-9-]*[a-z0-9])?" maxlength="63"
                            aria-describedby="join-region-hint";
                        p.hint #join-region-hint { "A DNS label such as fra or us-east; the node joins with the same region." }
                    }
                    button type="submit" class="btn primary" { "Create join token" }
                }))
            }
            @if let Some(a) = &n.alerts { (instance_alerts(page, a)) }
        }
    };
    document(page, false, body)
}

fn row(page: &Page, current: i64, node: &NodeRow) -> Markup {
    let lag = current - node.config_version;
    html! {
        tr {
            th scope="row" { (node.name) }
            td { (badge(&node.state)) }
            td.nowrap.num title="Average over the last five closed minutes" {
                @match node.requests_per_sec {
                    Some(r) if r >= 10.0 => (format!("{r:.0}")),
                    Some(r) => (format!("{r:.1}")),
                    None => span.muted { "—" },
                }
            }
            td { code { (node.version) } }
            td.nowrap {
                @if lag <= 0 {
                    span.muted { "up to date" }
                } @else {
                    span.badge.badge-warn title={ "node has version " (node.config_version) } {
                        (lag) " behind"
                    }
                }
            }
            td.nowrap {
                (node.bundles_present)
                @if node.bundles_pending > 0 {
                    " " span.muted.small { "+" (node.bundles_pending) " pending" }
                }
            }
            td.nowrap { (time_or(page.now_ms, node.last_seen, "never")) }
            td.nowrap { (time_or(page.now_ms, node.cert_not_after.map(|s| s * 1000), "—")) }
            td { @if let Some(a) = &node.addr { code { (a) } } @else { span.muted { "—" } } }
            td {
                (action(&page.csrf, &format!("/nodes/{}/remove", seg(&node.id)), "Remove", Btn::Danger,
                    Some(&format!("Remove node \u{201c}{}\u{201d}? Its certificate is refused from now on; the server must join again with a new token.", node.name))))
            }
        }
    }
}

/// Region names go into `id` attributes; keep them to safe characters.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The instance's own alert rules: nodes' memory and disks, the cluster's
/// certificates.
fn instance_alerts(page: &Page, a: &InstanceAlerts) -> Markup {
    html! {
        section aria-labelledby="instance-alerts-h" {
            h2 #instance-alerts-h { "Instance alerts" }
            p.muted { "Rules that watch the nodes themselves rather than a project: memory, disks and the cluster's certificates." }
            @if a.rules.is_empty() {
                (empty("No instance alerts", html! {
                    p { "Be told before an edge runs out of memory or disk, or a node's certificate expires." }
                }))
            } @else {
                (rules::table(page, &a.rules, &a.kinds, Some("/nodes/alerts")))
            }
            section.card aria-labelledby="instance-rule-add-h" {
                h3 #instance-rule-add-h { "Add an instance alert" }
                @if a.channels.is_empty() {
                    p.note {
                        "Alerts notify channels, and your teams have none yet. "
                        a href="/teams" { "Add a channel on a team page" } ", then come back."
                    }
                } @else {
                    (rules::form(page, "instance-rule", "/nodes/alerts", &a.kinds, &a.channels))
                }
            }
            (rules::presets(&a.kinds))
        }
    }
}

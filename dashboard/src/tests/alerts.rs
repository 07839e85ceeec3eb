//! The Alerts tab, the team's channels and the instance's rules.

use super::fixtures::{self as fx, XSS};
use super::html_scan::{attr, forms, tags};
use crate::model::*;

const BASE: &str = "/projects/%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

fn tab(can_write: bool, t: &AlertsTab) -> String {
    crate::alerts(&fx::page(Nav::Projects), &fx::header(can_write), t)
}

/// The form posting to `action`, whole.
fn form<'a>(html: &'a str, action: &str) -> Option<&'a str> {
    forms(html)
        .into_iter()
        .find(|f| attr(tags(f, "form")[0], "action") == Some(action))
}

#[test]
fn rules_show_their_state_and_firing_ones_stand_out() {
    let html = tab(true, &fx::alerts_tab(true));
    for needle in [
        r#"<tr class="firing"><th scope="row">Error rate<br><code class="small">error_rate</code></th>"#.to_string(),
        "<td class=\"nowrap\">&gt; 5 % of requests</td>".into(),
        r#"<span class="badge badge-bad">firing</span>"#.into(),
        format!("series {ESCAPED}"),
        "12.5 % of requests · firing since <time".into(),
        "Nothing breached yet".into(),
        r#"<p class="alert-count" role="status">1 rule firing</p>"#.into(),
        format!("<li>{ESCAPED}</li>"),
        r#"<a href="/projects/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/alerts" aria-current="page">Alerts</a>"#.into(),
        r#"href="/teams/t1#channels-h""#.into(),
    ] {
        assert!(html.contains(&needle), "{needle}");
    }
    assert_eq!(html.matches("<tr class=\"firing\">").count(), 1);
    let remove = form(&html, &format!("{BASE}/alerts/r1/remove")).expect("remove form");
    assert!(remove.contains("data-confirm=\"Remove the error rate alert?"));
}

#[test]
fn the_rule_form_offers_the_presets_and_the_team_channels() {
    let html = tab(true, &fx::alerts_tab(true));
    let f = form(&html, &format!("{BASE}/alerts")).expect("add form");
    for needle in [
        r#"<select id="rule-kind" name="kind" required>"#.to_string(),
        r#"<option value="error_rate">Error rate (&gt; 5 % of requests)</option>"#.into(),
        r#"<option value="ssl_expiry">Certificate expiry (&lt; 14 days left)</option>"#.into(),
        r#"name="threshold" step="any""#.into(),
        r#"name="window""#.into(),
        r#"name="for""#.into(),
        r#"<input id="rule-channel-ch1" type="checkbox" name="channels" value="ch1">"#.into(),
        format!(r#"<label for="rule-channel-ch1">{ESCAPED} (webhook)</label>"#),
    ] {
        assert!(f.contains(&needle), "{needle}\n{f}");
    }
    // What each preset measures, in words.
    assert!(html.contains("What each alert measures"));
    assert!(html.contains("5xx answers as a share"));
}

#[test]
fn without_channels_the_form_says_where_to_add_one() {
    let mut t = fx::alerts_tab(false);
    let html = tab(true, &t);
    assert!(html.contains("No alert rules"));
    assert!(html.contains("Add a channel on the team page"));
    assert!(form(&html, &format!("{BASE}/alerts")).is_none());
    t.channels = vec![("ch9".into(), "ops".into())];
    assert!(form(&tab(true, &t), &format!("{BASE}/alerts")).is_some());
}

#[test]
fn viewers_see_rules_but_no_forms() {
    let html = tab(false, &fx::alerts_tab(true));
    assert!(html.contains("firing"));
    assert!(!html.contains("/remove\""));
    assert!(form(&html, &format!("{BASE}/alerts")).is_none());
    assert!(tab(false, &fx::alerts_tab(false)).contains("A team owner or member can add one."));
}

fn team_page(role: &str, is_owner: bool) -> String {
    let mut t = fx::team(true, is_owner);
    t.team.role = role.into();
    crate::team(&fx::page(Nav::Team), &t)
}

#[test]
fn team_owners_manage_channels_and_see_deliveries() {
    let html = team_page("owner", true);
    for needle in [
        r#"<code class="copy-value" id="new-channel-secret">whsec_shown_once</code>"#.to_string(),
        format!("Signing secret of {ESCAPED}"),
        format!("{ESCAPED} ch1 <span class=\"badge badge-accent\">webhook</span>"),
        format!("https://hooks.example.com/{ESCAPED}"),
        r#"<span class="badge badge-bad">failed</span>"#.into(),
        r#"<span class="badge badge-warn">pending</span>"#.into(),
        r#"<span class="badge badge-ok">sent</span>"#.into(),
        "<td class=\"num\">502</td>".into(),
        format!("bad gateway {ESCAPED}"),
        "Alert <code class=\"small\">r1</code>".into(),
        "Test message".into(),
        "next try <time".into(),
        "Deliveries (3)".into(),
        "Deliveries (0)".into(),
        // A failed delivery opens the history.
        r#"<details class="deliveries" open>"#.into(),
    ] {
        assert!(html.contains(&needle), "{needle}");
    }
    for action in [
        "/teams/t1/channels",
        "/teams/t1/channels/ch1/test",
        "/teams/t1/channels/ch1/remove",
        "/teams/t1/channels/ch2/test",
        "/teams/t1/channels/ch2/remove",
    ] {
        assert!(form(&html, action).is_some(), "{action}");
    }
    let add = form(&html, "/teams/t1/channels").unwrap();
    for field in ["kind", "target", "name", "secret"] {
        assert!(add.contains(&format!(r#"name="{field}""#)), "{field}");
    }
    // Reloaded, the secret is not there.
    let mut t = fx::team(true, true);
    t.new_channel_secret = None;
    let again = crate::team(&fx::page(Nav::Team), &t);
    assert!(!again.contains("whsec_shown_once"));
}

#[test]
fn members_test_channels_and_viewers_only_look() {
    let member = team_page("member", false);
    assert!(form(&member, "/teams/t1/channels/ch1/test").is_some());
    assert!(form(&member, "/teams/t1/channels/ch1/remove").is_none());
    assert!(form(&member, "/teams/t1/channels").is_none());
    let viewer = team_page("viewer", false);
    assert!(!viewer.contains("/test\"") && !viewer.contains("/channels\""));
    assert!(viewer.contains("Deliveries (3)"));
    let empty = crate::team(&fx::page(Nav::Team), &fx::team(false, true));
    assert!(empty.contains("No channels"));
    assert!(form(&empty, "/teams/t1/channels").is_some());
}

#[test]
fn instance_owners_manage_instance_rules_on_the_nodes_page() {
    let html = crate::nodes(&fx::page(Nav::Nodes), &fx::nodes(true));
    assert!(html.contains("Instance alerts"));
    assert!(html.contains(r#"<option value="high_memory">High memory (&gt; 90 % memory)</option>"#));
    assert!(form(&html, "/nodes/alerts").is_some());
    assert!(form(&html, "/nodes/alerts/r-mem/remove").is_some());
    assert!(html.contains("<td class=\"nowrap\"><span class=\"muted\">newest value</span></td>"));
    let empty = crate::nodes(&fx::page(Nav::Nodes), &fx::nodes(false));
    assert!(empty.contains("No instance alerts"));
    assert!(empty.contains("Add a channel on a team page"));
    assert!(form(&empty, "/nodes/alerts").is_none());
    let mut tenant = fx::page(Nav::Nodes);
    tenant.user.as_mut().unwrap().instance_owner = false;
    let html = crate::nodes(&tenant, &fx::nodes(true));
    assert!(!html.contains("Instance alerts") && !html.contains("/nodes/alerts"));
    assert!(!html.contains(XSS));
}

//! A team: members, roles and invitations, its alert channels, plus
//! switching and creating teams.

use maud::{html, Markup};

use crate::components::{action, alert, badge, empty, post_form, reveal, table_wrap, time, Btn};
use crate::format::seg;
use crate::layout::document;
use crate::model::{InvitationRow, MemberRow, Page, TeamPage};
use crate::pages::channels;

const ROLES: [&str; 3] = ["owner", "member", "viewer"];

pub fn team(page: &Page, t: &TeamPage) -> String {
    let base = format!("/teams/{}", seg(&t.team.id));
    let body = html! {
        div.page-head {
            div {
                p.crumbs { "Team" }
                h1 { (t.team.name) " " (badge(&t.team.role)) }
            }
        }
        (alert(t.error.as_deref()))
        @if let Some(url) = &t.new_invite_url {
            (reveal("invite-url", "Invitation link", url))
            p.muted { "Send it to the person you are inviting; it works once." }
        }
        section aria-labelledby="members-h" {
            h2 #members-h { "Members" }
            (table_wrap("Members", &["Member", "Role", "Joined", ""], html! {
                @for m in &t.members { (member(page, &base, t.is_owner, m)) }
            }))
        }
        section aria-labelledby="invitations-h" {
            h2 #invitations-h { "Pending invitations" }
            @if t.invitations.is_empty() {
                (empty("No pending invitations", html! {
                    p { @if t.is_owner { "Invite someone with the form below." }
                        @else { "Team owners can invite people." } }
                }))
            } @else {
                (table_wrap("Pending invitations", &["Role", "Invited by", "Created", "Expires", ""], html! {
                    @for i in &t.invitations { (invitation(page, &base, t.is_owner, i)) }
                }))
            }
            @if t.is_owner {
                div.card {
                    h3 { "Invite someone" }
                    (post_form(&page.csrf, &format!("{base}/invitations"), "row", html! {
                        div.field {
                            label for="invite-role" { "Role" }
                            (role_select("invite-role", "member"))
                        }
                        button type="submit" class="btn primary" { "Create invitation link" }
                    }))
                    p.hint { "Owners manage members; members deploy and change projects; viewers can only look." }
                }
            }
        }
        (channels::section(page, &base, t))
        div.grid-2 {
            section.card aria-labelledby="teams-h" {
                h2 #teams-h { "Your teams" }
                ul.plain {
                    @for other in &t.teams {
                        li {
                            a href={ "/teams/" (seg(&other.id)) }
                                aria-current=[(other.id == t.team.id).then_some("page")] { (other.name) }
                            " " (badge(&other.role))
                        }
                    }
                }
            }
            section.card aria-labelledby="new-team-h" {
                h2 #new-team-h { "New team" }
                (post_form(&page.csrf, "/teams", "row", html! {
                    div.field {
                        label for="team-name" { "Name" }
                        input #team-name type="text" name="name" required maxlength="100" autocomplete="off";
                    }
                    button type="submit" class="btn" { "Create team" }
                }))
            }
        }
    };
    document(page, false, body)
}

fn role_select(id: &str, current: &str) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in ROLES { option value=(r) selected[r == current] { (r) } }
        }
    }
}

fn member(page: &Page, base: &str, is_owner: bool, m: &MemberRow) -> Markup {
    let mbase = format!("{base}/members/{}", seg(&m.user_id));
    let select_id = format!("role-{}", m.user_id);
    html! {
        tr {
            th scope="row" {
                (m.name) @if m.is_self { " " span.muted.small { "(you)" } }
                br; span.muted.small { (m.email) }
            }
            td {
                @if is_owner {
                    (post_form(&page.csrf, &format!("{mbase}/role"), "inline-form", html! {
                        label.sr-only for=(select_id) { "Role of " (m.email) }
                        (role_select(&select_id, &m.role))
                        button type="submit" class="btn small" { "Change" }
                    }))
                } @else {
                    (badge(&m.role))
                }
            }
            td.nowrap { (time(page.now_ms, m.joined_at)) }
            td {
                @if is_owner {
                    @let confirm = if m.is_self {
                        "Leave this team? You lose access to its projects.".to_string()
                    } else {
                        format!("Remove {} from the team?", m.email)
                    };
                    (action(&page.csrf, &format!("{mbase}/remove"),
                        if m.is_self { "Leave" } else { "Remove" }, Btn::Danger, Some(&confirm)))
                }
            }
        }
    }
}

fn invitation(page: &Page, base: &str, is_owner: bool, i: &InvitationRow) -> Markup {
    html! {
        tr {
            td { (badge(&i.role)) }
            td { (i.created_by) }
            td.nowrap { (time(page.now_ms, i.created_at)) }
            td.nowrap { (time(page.now_ms, i.expires_at)) }
            td {
                @if is_owner {
                    (action(&page.csrf, &format!("{base}/invitations/{}/revoke", seg(&i.id)), "Revoke", Btn::Danger,
                        Some("Revoke this invitation? Its link stops working.")))
                }
            }
        }
    }
}

//! Sign in, sign up, accepting an invitation, and the account page.

use maud::{html, Markup};

use crate::components::{alert, badge, post_form, time};
use crate::format::seg;
use crate::layout::document;
use crate::model::{AccountPage, InvitePage, InviteSummary, LoginForm, Page, SignupForm};

pub fn login(page: &Page, form: &LoginForm) -> String {
    let body = html! {
        div.card.auth {
            h1 { "Sign in" }
            (alert(form.error.as_deref()))
            (post_form(&page.csrf, "/login", "stack", html! {
                input type="hidden" name="next" value=(form.next);
                div.field {
                    label for="email" { "Email" }
                    input #email type="email" name="email" value=(form.email) autocomplete="username" required autofocus;
                }
                div.field {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                }
                button type="submit" class="btn primary wide" { "Sign in" }
            }))
            @if form.signup_open {
                p.muted.center { "No account yet? " a href="/signup" { "Create one" } }
            }
        }
    };
    document(page, true, body)
}

fn invite_summary(i: &InviteSummary) -> Markup {
    html! {
        p.invite-summary {
            strong { (i.invited_by) } " invited you to join "
            strong { (i.team) } " as " (badge(&i.role)) "."
        }
    }
}

pub fn signup(page: &Page, form: &SignupForm) -> String {
    let body = html! {
        div.card.auth {
            h1 { "Create your account" }
            @if form.closed && form.invite.is_none() {
                p { "Sign-up is closed on this instance. Ask a team owner to send you an invitation link, then open it to create your account." }
                p { a href="/login" { "Back to sign in" } }
            } @else {
                @if form.first_account {
                    p.note { "You are the first person here: this account will own the instance and can add edge nodes. "
                        "Creating it takes the setup token the coordinator printed when it first started (it is also in the file "
                        code { "setup-token" } " in its data directory)." }
                }
                @if let Some(i) = &form.invite {
                    (invite_summary(i))
                }
                (alert(form.error.as_deref()))
                (post_form(&page.csrf, "/signup", "stack", html! {
                    @if let Some(i) = &form.invite {
                        input type="hidden" name="invite" value=(i.token);
                    }
                    @if form.first_account {
                        @if let Some(t) = &form.setup_token {
                            input type="hidden" name="setup" value=(t);
                        } @else {
                            div.field {
                                label for="setup" { "Setup token" }
                                input #setup type="password" name="setup" autocomplete="off" required spellcheck="false" aria-describedby="setup-hint";
                                p.hint #setup-hint { "From the coordinator's first-start output or its data directory." }
                            }
                        }
                    }
                    div.field {
                        label for="email" { "Email" }
                        input #email type="email" name="email" value=(form.email) autocomplete="email" required autofocus;
                    }
                    div.field {
                        label for="name" { "Name" }
                        input #name type="text" name="name" value=(form.name) autocomplete="name" required;
                    }
                    div.field {
                        label for="password" { "Password" }
                        input #password type="password" name="password" autocomplete="new-password" minlength="10" required aria-describedby="password-hint";
                        p.hint #password-hint { "At least 10 characters." }
                    }
                    button type="submit" class="btn primary wide" { "Create account" }
                }))
                p.muted.center { "Already have an account? " a href="/login" { "Sign in" } }
            }
        }
    };
    document(page, true, body)
}

pub fn invite(page: &Page, inv: &InvitePage) -> String {
    let body = html! {
        div.card.auth {
            h1 { "Team invitation" }
            (alert(inv.error.as_deref()))
            @if let Some(i) = &inv.invite {
                (invite_summary(i))
                (post_form(&page.csrf, &format!("/invite/{}", seg(&i.token)), "stack", html! {
                    button type="submit" class="btn primary wide" { "Accept and join " (i.team) }
                }))
            }
            p.center { a href="/" { "Go to your projects" } }
        }
    };
    document(page, true, body)
}

pub fn account(page: &Page, acc: &AccountPage) -> String {
    let body = html! {
        h1 { "Account" }
        div.grid-2 {
            section.card aria-labelledby="profile-h" {
                h2 #profile-h { "Profile" }
                dl.meta {
                    dt { "Name" } dd { (acc.name) }
                    dt { "Email" } dd { (acc.email) }
                    dt { "Member since" } dd { (time(page.now_ms, acc.created_at)) }
                }
                h3 { "Teams" }
                @if acc.teams.is_empty() {
                    p.muted { "You are not in any team yet. Create one on the " a href="/teams" { "Team page" } ", or open an invitation link." }
                } @else {
                    ul.plain {
                        @for t in &acc.teams {
                            li { a href={ "/teams/" (seg(&t.id)) } { (t.name) } " " (badge(&t.role)) }
                        }
                    }
                }
            }
            section.card aria-labelledby="password-h" {
                h2 #password-h { "Change password" }
                (alert(acc.error.as_deref()))
                (post_form(&page.csrf, "/account/password", "stack", html! {
                    div.field {
                        label for="current_password" { "Current password" }
                        input #current_password type="password" name="current_password" autocomplete="current-password" required;
                    }
                    div.field {
                        label for="new_password" { "New password" }
                        input #new_password type="password" name="new_password" autocomplete="new-password" minlength="10" required aria-describedby="new-password-hint";
                        p.hint #new-password-hint { "At least 10 characters." }
                    }
                    button type="submit" class="btn primary" { "Change password" }
                }))
            }
        }
    };
    document(page, false, body)
}

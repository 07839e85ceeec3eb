//! Connecting a Git repository, and the webhook that triggers builds.

use maud::{html, Markup};

use crate::components::{action, alert, post_form, Btn};
use crate::model::{GitForm, Page, ProjectHeader, SettingsTab};

pub fn render(page: &Page, h: &ProjectHeader, base: &str, t: &SettingsTab) -> Markup {
    let connected = t.git.is_some();
    let defaults = GitForm {
        branch: "main".to_string(),
        // Matches the API's default for a new connection.
        auto_promote: true,
        ..GitForm::default()
    };
    let g = t.git.as_ref().unwrap_or(&defaults);
    html! {
        h2 { "Settings" }
        section.card aria-labelledby="git-h" {
            h3 #git-h { "Git repository" }
            p.muted {
                @if connected {
                    "Pushes to the branch build and deploy automatically through the webhook below."
                } @else {
                    "Connect a repository to build on every push and to enable \u{201c}Deploy now\u{201d}."
                }
            }
            (alert(t.error.as_deref()))
            @if h.can_write {
                (post_form(&page.csrf, &format!("{base}/settings/git"), "stack", fields(g)))
            } @else {
                p.note { "You have view access: ask a team owner or member to change these settings." }
                fieldset.plain disabled { legend.sr-only { "Git settings (read only)" } (fields_only(g)) }
            }
        }
        @if let Some(url) = &t.webhook_url {
            section.card aria-labelledby="webhook-h" {
                h3 #webhook-h { "Webhook" }
                p { "Add this URL as a push webhook in your Git host (content type " code { "application/json" } "), with the secret below." }
                div.copy-row {
                    code.copy-value #webhook-url { (url) }
                    button type="button" class="btn" data-copy="webhook-url" hidden { "Copy" }
                }
                @if let Some(secret) = &t.webhook_secret {
                    p { "Secret:" }
                    div.copy-row {
                        code.copy-value #webhook-secret { (secret) }
                        button type="button" class="btn" data-copy="webhook-secret" hidden { "Copy" }
                    }
                }
            }
        }
        @if h.can_delete {
            section.card.danger-zone aria-labelledby="delete-project-h" {
                h3 #delete-project-h { "Delete project" }
                p.muted {
                    "Deletes every deployment, alias, variable, build and log of " strong { (h.name) }
                    ", cancels a running build, and frees the name. Its URLs stop answering. This cannot be undone."
                }
                (post_form(&page.csrf, &format!("{base}/delete"), "stack", html! {
                    div.field {
                        label for="delete-confirm" { "Type " code { (h.name) } " to confirm" }
                        input #delete-confirm type="text" name="confirm" required autocomplete="off"
                            spellcheck="false";
                    }
                    button type="submit" class="btn danger" data-confirm="Delete this project and everything in it?" { "Delete project" }
                }))
            }
        }
        @if connected && h.can_write {
            section.card.danger-zone aria-labelledby="disconnect-h" {
                h3 #disconnect-h { "Disconnect repository" }
                p.muted { "Existing deployments keep running; pushes stop deploying." }
                (action(&page.csrf, &format!("{base}/settings/git/delete"), "Disconnect", Btn::Danger,
                    Some("Disconnect the repository? Pushes will no longer deploy.")))
            }
        }
    }
}

fn fields(g: &GitForm) -> Markup {
    html! {
        (fields_only(g))
        button type="submit" class="btn primary" { "Save" }
    }
}

fn fields_only(g: &GitForm) -> Markup {
    html! {
        div.field {
            label for="git-url" { "Repository URL" }
            input #git-url type="text" name="url" value=(g.url) required spellcheck="false"
                placeholder="https://github.com/you/site.git";
        }
        div.row {
            div.field {
                label for="git-branch" { "Production branch" }
                input #git-branch type="text" name="branch" value=(g.branch) required spellcheck="false";
            }
            div.field {
                label for="git-root" { "Root directory" }
                input #git-root type="text" name="root_dir" value=(g.root_dir) spellcheck="false" placeholder=".";
            }
        }
        div.row {
            div.field {
                label for="git-install" { "Install command" }
                input #git-install type="text" name="install_command" value=(g.install_command) spellcheck="false"
                    placeholder="npm ci";
            }
            div.field {
                label for="git-build" { "Build command" }
                input #git-build type="text" name="build_command" value=(g.build_command) spellcheck="false"
                    placeholder="npm run build";
            }
            div.field {
                label for="git-output" { "Output directory" }
                input #git-output type="text" name="output_dir" value=(g.output_dir) spellcheck="false"
                    placeholder="dist";
            }
        }
        div.check {
            input #git-auto-promote type="checkbox" name="auto_promote" value="on" checked[g.auto_promote];
            label for="git-auto-promote" { "Promote successful builds of the production branch automatically" }
        }
    }
}

use maud::{html, Markup};

use crate::components::{empty, table_wrap};
use crate::model::DomainsTab;

pub fn render(t: &DomainsTab) -> Markup {
    html! {
        h2 { "Domains" }
        section.card {
            h3 { "Production" }
            p { code.copy-value { (t.production_host) } }
            p.hint { "Serves the production deployment." }
        }
        h3 { "Aliases" }
        @if t.aliases.is_empty() {
            (empty("No aliases", html! {
                p { "Other addresses for this project's deployments, such as branch previews, appear here once they exist." }
            }))
        } @else {
            (table_wrap("Aliases", &["Host", "Points at"], html! {
                @for (host, target) in &t.aliases {
                    tr { td { code { (host) } } td { (target) } }
                }
            }))
        }
    }
}

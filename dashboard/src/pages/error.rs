use maud::html;

use crate::layout::document;
use crate::model::{ErrorPage, Page};

pub fn error(page: &Page, e: &ErrorPage) -> String {
    let body = html! {
        div.card.auth.error-page {
            p.error-code { (e.status) }
            h1 { (e.heading) }
            p { (e.message) }
            p {
                // Error pages are drawn without the session, so one link
                // serves both: `/` sends a signed-out visitor to sign in.
                a.btn href="/" { "Back to the dashboard" }
            }
        }
    };
    document(page, true, body)
}

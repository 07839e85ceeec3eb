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
                @if page.user.is_some() {
                    a.btn href="/" { "Back to projects" }
                } @else {
                    a.btn href="/login" { "Sign in" }
                }
            }
        }
    };
    document(page, true, body)
}

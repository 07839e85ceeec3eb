use maud::{html, Markup};

use crate::components::{empty, functions_table};
use crate::model::FunctionsTab;

pub fn render(t: &FunctionsTab) -> Markup {
    html! {
        h2 { "Functions" }
        @if t.functions.is_empty() {
            (empty("No functions in the production deployment", html! {
                p { "Put " code { "wasi:http" } " components in " code { "api/NAME.wasm" }
                    " (served at " code { "/api/NAME" } "), or declare routes under "
                    code { "[[functions]]" } " in " code { "outpost.toml" } ", then deploy." }
            }))
        } @else {
            p.muted { "From the production deployment's bundle." }
            (functions_table(&t.functions))
        }
    }
}

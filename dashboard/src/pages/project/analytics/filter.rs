//! The range picker: a GET form, so choosing a range changes nothing,
//! works without scripts, and the URL can be bookmarked and shared.

use maud::{html, Markup};

use super::range::PRESETS;
use crate::format::datetime_local;
use crate::model::{AnalyticsFilter, AnalyticsRange, AnalyticsTab};

pub fn form(base: &str, a: &AnalyticsTab) -> Markup {
    let (from, to) = match a.range {
        AnalyticsRange::Custom { from_ms, to_ms } => {
            (Some(datetime_local(from_ms)), Some(datetime_local(to_ms)))
        }
        _ => (None, None),
    };
    let custom = AnalyticsRange::Custom {
        from_ms: 0,
        to_ms: 0,
    };
    let env = match &a.filter {
        Some(AnalyticsFilter::Environment(e)) => Some(e.as_str()),
        _ => None,
    };
    let deployment = match &a.filter {
        Some(AnalyticsFilter::Deployment(d)) => Some(d.as_str()),
        _ => None,
    };
    html! {
        form #analytics-filter .row method="get" action={ (base) "/analytics" } {
            div.field {
                label for="analytics-range" { "Range" }
                select #analytics-range name="range" {
                    @for r in PRESETS.into_iter().chain([custom]) {
                        option value=(r.key()) selected[r.key() == a.range.key()] { (r.label()) }
                    }
                }
            }
            div.field {
                label for="analytics-from" { "From (UTC)" }
                input #analytics-from type="datetime-local" name="from" value=[from]
                    aria-describedby="analytics-custom-hint";
            }
            div.field {
                label for="analytics-to" { "To (UTC)" }
                input #analytics-to type="datetime-local" name="to" value=[to]
                    aria-describedby="analytics-custom-hint";
            }
            div.field {
                label for="analytics-env" { "Environment" }
                select #analytics-env name="env" {
                    option value="" selected[env.is_none()] { "All environments" }
                    @for e in &a.environments {
                        option value=(e) selected[env == Some(e.as_str())] { (e) }
                    }
                }
            }
            div.field {
                label for="analytics-deployment" { "Deployment" }
                select #analytics-deployment name="deployment" {
                    option value="" selected[deployment.is_none()] { "All deployments" }
                    @for (id, label) in &a.deployments {
                        option value=(id) selected[deployment == Some(id.as_str())] { (label) }
                    }
                }
            }
            button type="submit" class="btn" { "Show" }
        }
        p #analytics-custom-hint .hint {
            "From and To apply when Range is Custom. A deployment chosen here wins over the environment."
        }
    }
}

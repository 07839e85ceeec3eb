//! Which edges served the traffic: per region (summed here from the
//! nodes, so the two tables cannot disagree) and per node.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::{count, part};
use crate::chart::inline_bar;
use crate::components::table_wrap;
use crate::format::{percent, size};
use crate::model::NodeTraffic;

pub fn section(nodes: &[NodeTraffic]) -> Markup {
    let body = if nodes.is_empty() {
        html! { p.muted { "No edge node has reported traffic for this range yet." } }
    } else {
        let regions = by_region(nodes);
        let total = regions.iter().fold(0u64, |a, r| a.saturating_add(r.1));
        let max = regions.first().map_or(0, |r| r.1);
        html! {
            div.grid-2 {
                div {
                    h4 { "By region" }
                    (table_wrap("Traffic by region", &["Region", "Requests", "Share", "Bandwidth", ""], html! {
                        @for (region, requests, bytes) in &regions {
                            tr {
                                th scope="row" { code { (region) } }
                                (count(*requests))
                                td.num { (percent(*requests, total)) }
                                td.num { (size(*bytes)) }
                                td.bar-cell { (inline_bar(*requests, max)) }
                            }
                        }
                    }))
                }
                div {
                    h4 { "By node" }
                    (table_wrap("Traffic by node", &["Node", "Region", "Requests", "Bandwidth"], html! {
                        @for n in nodes {
                            tr {
                                th scope="row" { (n.node) }
                                td { code { (n.region) } }
                                (count(n.requests))
                                td.num { (size(n.bytes)) }
                            }
                        }
                    }))
                }
            }
        }
    };
    part("analytics-edges", "Edges", body)
}

/// `(region, requests, bytes)`, busiest first (then by name, so equal
/// regions keep one order).
fn by_region(nodes: &[NodeTraffic]) -> Vec<(&str, u64, u64)> {
    let mut sums: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for n in nodes {
        let s = sums.entry(n.region.as_str()).or_default();
        s.0 = s.0.saturating_add(n.requests);
        s.1 = s.1.saturating_add(n.bytes);
    }
    let mut out: Vec<_> = sums.into_iter().map(|(r, (q, b))| (r, q, b)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_sum_their_nodes() {
        let node = |node: &str, region: &str, requests, bytes| NodeTraffic {
            node: node.into(),
            region: region.into(),
            requests,
            bytes,
        };
        let nodes = [
            node("a", "fra", 10, 100),
            node("b", "ams", 30, 5),
            node("c", "fra", 25, 1),
            node("d", "sfo", 5, 0),
            node("e", "ams", 5, u64::MAX),
        ];
        assert_eq!(
            by_region(&nodes),
            [("ams", 35, u64::MAX), ("fra", 35, 101), ("sfo", 5, 0)]
        );
        assert!(by_region(&[]).is_empty());
    }
}

//! Summaries of samples (milliseconds).

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn summarize(samples: &[f64]) -> Summary {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Summary {
        samples: s.len(),
        p50_ms: percentile(&s, 50.0),
        p99_ms: percentile(&s, 99.0),
        max_ms: s.last().copied().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_table() {
        let cases: Vec<(Vec<f64>, f64, f64)> = vec![
            (vec![1.0], 50.0, 1.0),
            (vec![1.0, 2.0], 50.0, 1.0),
            (vec![1.0, 2.0, 3.0, 4.0], 99.0, 4.0),
            ((1..=100).map(f64::from).collect(), 50.0, 50.0),
            ((1..=100).map(f64::from).collect(), 99.0, 99.0),
        ];
        for (s, p, want) in cases {
            assert_eq!(percentile(&s, p), want, "{s:?} p{p}");
        }
        assert!(summarize(&[]).p50_ms.is_nan());
    }
}

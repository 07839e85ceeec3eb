//! The two mergeable sketches an aggregate carries: unique visitors (a
//! HyperLogLog, Cloudflare's `cardinality-estimator`) and latencies (an
//! HDR histogram). Both merge across minutes and nodes without loss beyond
//! the sketch's own error, which is what lets a visitor seen by two edges
//! count once.

use std::fmt;

use cardinality_estimator::CardinalityEstimator;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Unique visitors: a HyperLogLog of visitor hashes (exact while small).
#[derive(Clone, Default, Deserialize)]
pub struct Visitors(CardinalityEstimator<u64>);

/// cardinality-estimator writes its internal word as the first field; in
/// its array and HyperLogLog forms that word holds a heap address, of which
/// its decoder reads only the two tag bits (the slots come from the second
/// field). Written here with the tag bits alone, in the same shape: equal
/// sketches encode equally, and no address of this process leaves it (found
/// by the `analytics_record` fuzz target: a record's encoding was not a
/// fixed point).
impl Serialize for Visitors {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let config = bincode::config::standard();
        let bytes =
            bincode::serde::encode_to_vec(&self.0, config).map_err(serde::ser::Error::custom)?;
        let ((word, slots), _): ((usize, Option<Vec<u32>>), usize) =
            bincode::serde::decode_from_slice(&bytes, config).map_err(serde::ser::Error::custom)?;
        let word = if slots.is_some() {
            word & TAG_BITS
        } else {
            word
        };
        (word, slots).serialize(s)
    }
}

/// The representation tag of cardinality-estimator's internal word.
const TAG_BITS: usize = 0b11;

impl Visitors {
    /// Adds a visitor hash (already keyed and uniformly distributed).
    pub fn insert(&mut self, hash: u64) {
        self.0.insert_hash(hash);
    }

    pub fn merge(&mut self, other: &Visitors) {
        self.0.merge(&other.0);
    }

    pub fn estimate(&self) -> u64 {
        self.0.estimate() as u64
    }

    /// Bytes this sketch holds in memory.
    pub fn size_of(&self) -> usize {
        self.0.size_of()
    }
}

impl fmt::Debug for Visitors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Visitors(~{})", self.estimate())
    }
}

impl PartialEq for Visitors {
    fn eq(&self, other: &Self) -> bool {
        self.estimate() == other.estimate()
    }
}

/// Latencies are kept in microseconds, 1 µs … 10 min, to two significant
/// digits (about 1% error). Longer ones are clamped to the top.
pub const LATENCY_MAX_US: u64 = 600_000_000;

/// A latency distribution. In memory an HDR histogram; on the wire and in
/// the database only its non-empty buckets, `(value, count)`, so an hour of
/// a quiet site is a few bytes.
#[derive(Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, LATENCY_MAX_US, 2).expect("static bounds are valid"))
    }
}

impl Latency {
    pub fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(1, LATENCY_MAX_US));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides (the decoder refuses anything else).
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at quantile `q` in milliseconds, `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(q) as f64 / 1000.0)
    }

    fn buckets(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latency(n={})", self.count())
    }
}

impl PartialEq for Latency {
    fn eq(&self, other: &Self) -> bool {
        self.buckets() == other.buckets()
    }
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.buckets().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let buckets: Vec<(u64, u64)> = Vec::deserialize(d)?;
        let mut l = Latency::default();
        for (value, count) in buckets {
            if value == 0 || value > LATENCY_MAX_US {
                return Err(serde::de::Error::custom(format!(
                    "latency bucket {value} µs is outside 1 µs … {LATENCY_MAX_US} µs"
                )));
            }
            l.0.saturating_record_n(value, count);
        }
        Ok(l)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A uniformly distributed hash of `i`, as visitor hashes are.
    pub(crate) fn h(i: u64) -> u64 {
        u64::from_le_bytes(
            blake3::hash(&i.to_le_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap(),
        )
    }

    fn roundtrip<T: Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
        let bytes = bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap();
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .unwrap()
            .0
    }

    /// Each form (small, array, HyperLogLog): a copy in other memory
    /// encodes to the same bytes, and so does the decoded sketch.
    #[test]
    fn equal_sketches_encode_equally() {
        let enc =
            |v: &Visitors| bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap();
        for n in [1u64, 10, 5000] {
            let mut a = Visitors::default();
            for i in 0..n {
                a.insert(h(i));
            }
            let b = a.clone();
            assert_eq!(enc(&a), enc(&b), "{n} visitors");
            let back: Visitors = roundtrip(&a);
            assert_eq!(back.estimate(), a.estimate());
            assert_eq!(enc(&back), enc(&a), "{n} visitors, decoded");
        }
    }

    #[test]
    fn visitors_merge_counts_a_shared_visitor_once() {
        let mut a = Visitors::default();
        let mut b = Visitors::default();
        for i in [1u64, 2, 3] {
            a.insert(h(i));
        }
        for i in [3u64, 4] {
            b.insert(h(i));
        }
        a.merge(&b);
        assert_eq!(a.estimate(), 4);
        assert_eq!(roundtrip(&a).estimate(), 4);
    }

    #[test]
    fn visitors_stay_close_when_large() {
        let mut v = Visitors::default();
        for i in 0..100_000u64 {
            v.insert(h(i));
        }
        let e = roundtrip(&v).estimate() as f64;
        assert!((e - 100_000.0).abs() / 100_000.0 < 0.05, "{e}");
    }

    #[test]
    fn latency_survives_the_wire_and_merges() {
        let mut a = Latency::default();
        for us in [100, 200, 300, 400, 10_000] {
            a.record(us);
        }
        let mut b = roundtrip(&a);
        assert_eq!(b, a);
        b.merge(&a);
        assert_eq!(b.count(), 10);
        let p50 = b.quantile_ms(0.5).unwrap();
        assert!((0.29..0.31).contains(&p50), "{p50}");
        assert!(Latency::default().quantile_ms(0.5).is_none());
    }

    #[test]
    fn latency_refuses_buckets_out_of_range() {
        let bytes =
            bincode::serde::encode_to_vec(vec![(0u64, 1u64)], bincode::config::standard()).unwrap();
        assert!(bincode::serde::decode_from_slice::<Latency, _>(
            &bytes,
            bincode::config::standard()
        )
        .is_err());
        let bytes = bincode::serde::encode_to_vec(
            vec![(LATENCY_MAX_US * 2, 1u64)],
            bincode::config::standard(),
        )
        .unwrap();
        assert!(bincode::serde::decode_from_slice::<Latency, _>(
            &bytes,
            bincode::config::standard()
        )
        .is_err());
    }
}

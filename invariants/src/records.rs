//! Records nodes hand upward or keep on disk: analytics records, sealed
//! secrets, the status file.

use analytics::{Granularity, Record};
use protocol::sealed::{KeyMaterial, SealError, SealKey, Sealed};
use protocol::wire::decode_body;

use crate::bytes::pick;

/// A record decodes only aligned and bounded; it re-encodes to itself;
/// merging it (with itself, as the coordinator merges what several edges
/// send) and reading its estimates never panics, and it splits into
/// records the decoder takes again.
pub fn analytics(data: &[u8]) {
    let Ok(record) = Record::decode(data) else {
        return;
    };
    assert_eq!(record.granularity.floor(record.id.start), record.id.start);
    let bytes = record.encode();
    let again = Record::decode(&bytes).expect("a record's own encoding decodes");
    assert_eq!(again.encode(), bytes, "encoding is not a fixed point");
    let _ = record.check_time(1_800_000_000);
    let mut merged = record
        .sites
        .first()
        .map(|(_, a)| a.clone())
        .unwrap_or_default();
    for (_, aggregate) in &record.sites {
        merged.merge(aggregate);
        let _ = aggregate.visitors.estimate();
        let _ = aggregate.duration.quantile_ms(0.99);
        let _ = aggregate.status_classes();
    }
    let _ = merged.visitors.estimate();
    let mut seq = 0;
    for part in Record::split(
        record.id.start,
        record.granularity,
        || {
            seq += 1;
            seq
        },
        record.sites.clone(),
    ) {
        Record::decode(&part.encode()).expect("a split record decodes");
    }
    for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
        let _ = g.floor(record.id.start);
    }
}

/// Sealed values: what a fuzzer sends never opens under a key it does not
/// hold; what is sealed opens to itself, and nowhere else.
pub fn sealed(data: &[u8]) {
    let key = SealKey::new(KeyMaterial {
        generation: 7,
        key: [42; 32],
    });
    let (which, rest) = pick(data);
    if which % 2 == 0 {
        if let Ok(s) = decode_body::<Sealed>(rest) {
            let opened = key.open("p/project", &s);
            // The key is fixed, so a fuzzer may learn to seal with it; it
            // cannot make a value open under another context.
            if let Ok(plain) = opened {
                assert_eq!(key.seal("p/project", &plain).key, s.key);
                assert!(key.open("p/other", &s).is_err());
            }
        }
        return;
    }
    let sealed = key.seal("p/project", rest);
    assert_eq!(key.open("p/project", &sealed).as_deref(), Ok(rest));
    assert!(
        key.open("p/other", &sealed).is_err(),
        "opened under another context"
    );
    let mut flipped = sealed.clone();
    if let Some(b) = flipped.ciphertext.first_mut() {
        *b ^= 1;
        assert_eq!(key.open("p/project", &flipped), Err(SealError::Corrupt));
    }
    let mut moved = sealed;
    moved.key = 8;
    assert!(
        key.open("p/project", &moved).is_err(),
        "opened as another generation"
    );
}

/// The status file a node writes and `edge-node status` reads: any bytes
/// are refused or decode to a status that round-trips through JSON.
pub fn status(data: &[u8]) {
    if let Ok(s) = protocol::status::decode(data) {
        let json = serde_json::to_vec(&s).unwrap();
        let again = protocol::status::decode(&json).expect("a status's own JSON decodes");
        assert_eq!(serde_json::to_vec(&again).unwrap(), json);
    }
}

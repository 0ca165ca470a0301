//! Producer-state files on arbitrary bytes (what a corrupt `.snapshot` or
//! `.txnindex` could hold) and control records: errors, never panics; a
//! snapshot that decodes must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riffle_log::producer_snapshot;
use riffle_log::{parse_txn_marker, AbortedTxn};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = producer_snapshot::decode(data) {
        let again = producer_snapshot::decode(&producer_snapshot::encode(&entries))
            .expect("a re-encoded snapshot decodes");
        assert_eq!(again.len(), entries.len());
    }
    for chunk in data.chunks(34) {
        let _ = AbortedTxn::from_bytes(chunk);
    }
    let _ = parse_txn_marker(data);
});

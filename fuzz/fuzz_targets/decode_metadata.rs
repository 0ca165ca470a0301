//! Metadata record and batch decoding on arbitrary bytes (what a corrupt
//! `__cluster_metadata-0` could hold): errors, never panics or aborts; a
//! record that decodes must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riffle_metadata::{decode_batches, MetadataRecord};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = MetadataRecord::decode(data) {
        let again = MetadataRecord::decode(&record.encode()).expect("re-encoded record decodes");
        assert_eq!(again, record);
    }
    let _ = decode_batches(data);
});

//! Recovery of a segment file with arbitrary contents: opening the log must
//! never panic, and what it keeps must read back as valid batches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riffle_log::batch::BatchIter;
use riffle_log::{LoadState, Log, LogConfig};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("riffle-fuzz-recover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("00000000000000000000.log"), data).unwrap();
    if let Ok(log) = Log::open(&dir, LogConfig::default(), LoadState::unclean(0)) {
        let mut offset = log.log_start_offset();
        while let Ok(Some(slice)) = log.read(offset, 1 << 20, i64::MAX, true) {
            let bytes = slice.read_to_vec().unwrap();
            for item in BatchIter::new(&bytes) {
                item.expect("recovered data is valid");
            }
            offset = slice.last_offset + 1;
        }
    }
});

//! Request decoding on arbitrary frames: it must never panic or abort,
//! and every request it accepts must re-encode at its own version.
#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::Encodable;
use libfuzzer_sys::fuzz_target;
use riffle_protocol::request::{decode_request, Request};

fn reencode(request: &Request, version: i16) {
    let mut buf = BytesMut::new();
    // Encoding may refuse values a version cannot carry; it must not panic.
    let _ = match request {
        Request::Produce(r) => r.encode(&mut buf, version),
        Request::Fetch(r) => r.encode(&mut buf, version),
        Request::ListOffsets(r) => r.encode(&mut buf, version),
        Request::Metadata(r) => r.encode(&mut buf, version),
        Request::ApiVersions(r) => r.encode(&mut buf, version),
        Request::CreateTopics(r) => r.encode(&mut buf, version),
        Request::DeleteTopics(r) => r.encode(&mut buf, version),
        Request::DeleteRecords(r) => r.encode(&mut buf, version),
        Request::OffsetForLeaderEpoch(r) => r.encode(&mut buf, version),
        Request::DescribeConfigs(r) => r.encode(&mut buf, version),
        Request::AlterConfigs(r) => r.encode(&mut buf, version),
        Request::DescribeLogDirs(r) => r.encode(&mut buf, version),
        Request::CreatePartitions(r) => r.encode(&mut buf, version),
        Request::IncrementalAlterConfigs(r) => r.encode(&mut buf, version),
        Request::DescribeCluster(r) => r.encode(&mut buf, version),
    };
}

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_request(Bytes::copy_from_slice(data)) {
        reencode(&frame.body, frame.version());
    }
});

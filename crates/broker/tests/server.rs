//! End-to-end tests of the broker over TCP with a raw Kafka client.

mod common;

use bytes::{BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn code(e: ResponseError) -> i16 {
    e.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_lists_served_apis_and_answers_unknown_versions_with_v0() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let mut c = Client::connect(addr(&server)).await;
    let r: ApiVersionsResponse = c
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(r.error_code, 0);
    // Produce is advertised from v0 (KAFKA-18659: librdkafka before 2.8
    // compresses only if the broker lists Produce v0) but served from v3.
    let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 12));
    // The classic group APIs and transactions (version 1) are served; the
    // KIP-848 consumer protocol is not, and is not advertised, nor are the
    // transaction-version-2 versions of EndTxn and TxnOffsetCommit.
    let range = |key: ApiKey| {
        r.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::JoinGroup), Some((0, 9)));
    assert_eq!(range(ApiKey::InitProducerId), Some((0, 5)));
    assert_eq!(range(ApiKey::AddPartitionsToTxn), Some((0, 3)));
    assert_eq!(range(ApiKey::EndTxn), Some((0, 4)));
    assert_eq!(range(ApiKey::TxnOffsetCommit), Some((0, 4)));
    assert_eq!(range(ApiKey::AllocateProducerIds), None, "a controller API");
    assert_eq!(range(ApiKey::ConsumerGroupHeartbeat), None);

    // ApiVersions v127 (a v3 body with the version field raised): a v0
    // body with UNSUPPORTED_VERSION and the ranges, under header v0.
    let mut f = BytesMut::new();
    f.put_i32(0);
    kafka_protocol::protocol::Encodable::encode(
        &RequestHeader::default()
            .with_request_api_key(18)
            .with_request_api_version(127)
            .with_correlation_id(99),
        &mut f,
        2,
    )
    .unwrap();
    kafka_protocol::protocol::Encodable::encode(&ApiVersionsRequest::default(), &mut f, 3).unwrap();
    let size = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&size.to_be_bytes());
    c.stream.write_all(&f).await.unwrap();
    let mut raw = c.read_frame().await.unwrap();
    let h = ResponseHeader::decode(&mut raw, 0).unwrap();
    assert_eq!(h.correlation_id, 99);
    let r = ApiVersionsResponse::decode(&mut raw, 0).unwrap();
    assert_eq!(r.error_code, code(ResponseError::UnsupportedVersion));
    assert!(r.api_keys.iter().any(|k| k.api_key == 18));

    // A Produce v2 request is not served: the connection is closed, as
    // Kafka 4.0 closes it, and nothing is appended.
    let mut f = BytesMut::new();
    f.put_i32(0);
    f.put_i16(0); // Produce
    f.put_i16(2);
    f.put_i32(100); // correlation id
    f.put_i16(-1); // null client id
    f.put_i16(1); // acks
    f.put_i32(1000); // timeout
    f.put_i32(0); // no topics
    let size = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&size.to_be_bytes());
    c.stream.write_all(&f).await.unwrap();
    assert!(closed_by_server(&mut c.stream).await);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_produce_fetch_list_offsets_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let mut c = Client::connect(addr(&server)).await;
    let r: CreateTopicsResponse = c
        .send(ApiKey::CreateTopics, 7, &create_topic_req("orders", 2))
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let r: CreateTopicsResponse = c
        .send(ApiKey::CreateTopics, 7, &create_topic_req("orders", 2))
        .await;
    assert_eq!(
        r.topics[0].error_code,
        code(ResponseError::TopicAlreadyExists)
    );

    for (i, compression) in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let r: ProduceResponse = c
            .send(
                ApiKey::Produce,
                9,
                &produce_req("orders", 1, batch(10, 1000 * i as i64, compression), -1),
            )
            .await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
        assert_eq!(p.base_offset, 10 * i as i64);
    }

    let r: FetchResponse = c
        .send(ApiKey::Fetch, 12, &fetch_req("orders", 1, 0, 100))
        .await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 50);
    let mut records = p.records.clone().unwrap();
    let mut n = 0;
    while !records.is_empty() {
        for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
            for r in set.records {
                assert_eq!(r.offset, n);
                assert_eq!(r.key.unwrap(), format!("key-{}", n % 10).as_bytes());
                n += 1;
            }
        }
    }
    assert_eq!(n, 50);

    // An empty partition answers with empty (not null) records.
    let r: FetchResponse = c
        .send(ApiKey::Fetch, 12, &fetch_req("orders", 0, 0, 0))
        .await;
    assert_eq!(
        r.responses[0].partitions[0].records.as_deref(),
        Some(&[][..])
    );

    let list = |ts: i64| list_offsets_req("orders", 1, ts);
    for (ts, want) in [(-1, 50), (-2, 0), (2000, 20), (2005, 25), (99_999, -1)] {
        let r: ListOffsetsResponse = c.send(ApiKey::ListOffsets, 7, &list(ts)).await;
        assert_eq!(r.topics[0].partitions[0].offset, want, "timestamp {ts}");
    }
    let r: ListOffsetsResponse = c.send(ApiKey::ListOffsets, 7, &list(-3)).await;
    assert_eq!(r.topics[0].partitions[0].timestamp, 4009);
    assert_eq!(r.topics[0].partitions[0].offset, 49);

    drop(c);
    server.shutdown().await.unwrap();
    assert!(dir.path().join(".kafka_cleanshutdown").exists());

    // Topics and data survive the restart.
    let server = start(dir.path(), &[]).await;
    let mut c = Client::connect(addr(&server)).await;
    assert_eq!(partition_count(&mut c, "orders").await, Some(2));
    let r: ListOffsetsResponse = c.send(ApiKey::ListOffsets, 7, &list(-1)).await;
    assert_eq!(r.topics[0].partitions[0].offset, 50);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_poll_is_woken_by_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let mut c = Client::connect(addr(&server)).await;
    let _: CreateTopicsResponse = c
        .send(ApiKey::CreateTopics, 7, &create_topic_req("poll", 1))
        .await;
    let a = addr(&server);
    let fetcher = tokio::spawn(async move {
        let mut f = Client::connect(a).await;
        // Waits up to 30 s; the append below must end the wait.
        let r: FetchResponse = f
            .send(ApiKey::Fetch, 12, &fetch_req("poll", 0, 0, 30_000))
            .await;
        r
    });
    // Produce only once the fetch is (very likely) parked; either order
    // must give the same answer.
    tokio::task::yield_now().await;
    let _: ProduceResponse = c
        .send(
            ApiKey::Produce,
            9,
            &produce_req("poll", 0, batch(3, 1, Compression::None), 1),
        )
        .await;
    let r = fetcher.await.unwrap();
    assert_eq!(r.responses[0].partitions[0].high_watermark, 3);
    assert!(!r.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[("message.max.bytes", "2000")]).await;
    let mut c = Client::connect(addr(&server)).await;
    let _: CreateTopicsResponse = c
        .send(ApiKey::CreateTopics, 7, &create_topic_req("small", 1))
        .await;
    // Unknown topic.
    let r: ProduceResponse = c
        .send(
            ApiKey::Produce,
            9,
            &produce_req("nope", 0, batch(1, 1, Compression::None), 1),
        )
        .await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );
    // Too large for message.max.bytes.
    let r: ProduceResponse = c
        .send(
            ApiKey::Produce,
            9,
            &produce_req("small", 0, batch(200, 1, Compression::None), 1),
        )
        .await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        code(ResponseError::MessageTooLarge)
    );
    // Two batches in one v3+ request.
    let mut two = BytesMut::new();
    two.extend_from_slice(&batch(1, 1, Compression::None));
    two.extend_from_slice(&batch(1, 1, Compression::None));
    let r: ProduceResponse = c
        .send(
            ApiKey::Produce,
            9,
            &produce_req("small", 0, two.freeze(), 1),
        )
        .await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        code(ResponseError::InvalidRecord)
    );
    // Corrupt CRC.
    let mut bad = BytesMut::from(&batch(1, 1, Compression::None)[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let r: ProduceResponse = c
        .send(
            ApiKey::Produce,
            9,
            &produce_req("small", 0, bad.freeze(), 1),
        )
        .await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        code(ResponseError::CorruptMessage)
    );
    // acks=0 gets no response: the next request's answer comes first.
    c.write_request(
        ApiKey::Produce,
        9,
        &produce_req("small", 0, batch(1, 1, Compression::None), 0),
    )
    .await;
    let r: ListOffsetsResponse = c
        .send(ApiKey::ListOffsets, 7, &list_offsets_req("small", 0, -1))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].offset, 1,
        "the acks=0 record was appended"
    );
    server.shutdown().await.unwrap();
}

/// Sends raw bytes on a fresh connection; returns what came back before
/// the server closed the connection or a response frame arrived.
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_or_disconnected_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let a = addr(&server);
    // Garbage, a 2 GiB frame, a negative size, a truncated frame.
    assert!(raw_exchange(a, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_empty());
    assert!(raw_exchange(a, &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .is_empty());
    assert!(raw_exchange(a, &[0xff, 0xff, 0xff, 0xff]).await.is_empty());
    assert!(raw_exchange(a, &[0, 0, 0, 100, 0, 3, 0, 1])
        .await
        .is_empty());
    // Unknown API key.
    let mut f = BytesMut::new();
    f.put_i32(10);
    f.put_i16(9999);
    f.put_i16(0);
    f.put_i32(1);
    f.put_i16(-1);
    assert!(raw_exchange(a, &f).await.is_empty());
    // Metadata v1 whose topic array claims i32::MAX entries.
    let mut f = BytesMut::new();
    f.put_i32(14);
    f.put_i16(3);
    f.put_i16(1);
    f.put_i32(1);
    f.put_i16(-1);
    f.put_i32(i32::MAX);
    assert!(raw_exchange(a, &f).await.is_empty());
    // A Fetch v12 whose body is cut short gets a top-level INVALID_REQUEST.
    let mut f = BytesMut::new();
    f.put_i32(11);
    f.put_i16(1);
    f.put_i16(12);
    f.put_i32(77);
    f.put_i16(-1);
    f.put_u8(0); // header tagged fields
    let got = raw_exchange(a, &f).await;
    assert!(got.len() > 8, "expected an error response, got {got:?}");
    let mut body = bytes::Bytes::from(got[4..].to_vec());
    let h = ResponseHeader::decode(&mut body, 1).unwrap();
    assert_eq!(h.correlation_id, 77);
    let r = FetchResponse::decode(&mut body, 12).unwrap();
    assert_eq!(r.error_code, code(ResponseError::InvalidRequest));

    // Still serving.
    let mut c = Client::connect(a).await;
    let r: MetadataResponse = c
        .send(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    assert_eq!(r.brokers.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let mut c = Client::connect(addr(&server)).await;
    let mut buf = BytesMut::new();
    for id in 1..=20 {
        let mut b = BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(
            &RequestHeader::default()
                .with_request_api_key(ApiKey::Metadata as i16)
                .with_request_api_version(1)
                .with_correlation_id(id),
            &mut b,
            1,
        )
        .unwrap();
        kafka_protocol::protocol::Encodable::encode(
            &MetadataRequest::default().with_topics(Some(vec![])),
            &mut b,
            1,
        )
        .unwrap();
        buf.put_i32(b.len() as i32);
        buf.extend_from_slice(&b);
    }
    c.stream.write_all(&buf).await.unwrap();
    for id in 1..=20 {
        let mut f = c.read_frame().await.unwrap();
        let h = ResponseHeader::decode(&mut f, 0).unwrap();
        assert_eq!(h.correlation_id, id);
    }
    server.shutdown().await.unwrap();
}

/// Reads until the server closes the connection; true if it did.
async fn closed_by_server(s: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(30), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_and_idle_timeout_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            ("max.connections.per.ip", "2"),
            ("connections.max.idle.ms", "300"),
        ],
    )
    .await;
    let a = addr(&server);
    let mut first = Client::connect(a).await;
    let mut second = Client::connect(a).await;
    // Both are served.
    let _: ApiVersionsResponse = first
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let _: ApiVersionsResponse = second
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    // A third from the same address is closed at once.
    let mut third = tokio::net::TcpStream::connect(a).await.expect("connect");
    assert!(closed_by_server(&mut third).await);
    // Idle connections are closed (connections.max.idle.ms), which frees
    // their places.
    assert!(closed_by_server(&mut first.stream).await);
    assert!(closed_by_server(&mut second.stream).await);
    let mut again = Client::connect(a).await;
    let r: ApiVersionsResponse = again
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(r.error_code, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_validate_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let mut c = Client::connect(addr(&server)).await;
    let mut bad = create_topic_req("bad/name", 1);
    bad.topics.push(
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(sb("zero")))
            .with_num_partitions(0)
            .with_replication_factor(1),
    );
    let mut cfg = create_topic_req("configured", 3);
    cfg.topics[0].configs = vec![create_topics_request::CreatableTopicConfig::default()
        .with_name(sb("retention.ms"))
        .with_value(Some(sb("12345")))];
    bad.topics.push(cfg.topics[0].clone());
    let r: CreateTopicsResponse = c.send(ApiKey::CreateTopics, 7, &bad).await;
    let by_name = |n: &str| {
        r.topics
            .iter()
            .find(|t| t.name.0.as_str() == n)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_name("bad/name").error_code,
        code(ResponseError::InvalidTopicException)
    );
    assert_eq!(
        by_name("zero").error_code,
        code(ResponseError::InvalidPartitions)
    );
    assert_eq!(by_name("configured").error_code, 0);

    let r: CreatePartitionsResponse = c
        .send(
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest::default()
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(sb("configured")))
                        .with_count(5)
                        .with_assignments(None),
                ])
                .with_timeout_ms(30_000),
        )
        .await;
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );

    let describe = DescribeConfigsRequest::default()
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb("configured"))
                .with_configuration_keys(None),
        ])
        .with_include_synonyms(true);
    let r: DescribeConfigsResponse = c.send(ApiKey::DescribeConfigs, 4, &describe).await;
    let retention = r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("12345"));
    assert_eq!(retention.config_source, 1); // TOPIC_CONFIG

    drop(c);
    server.shutdown().await.unwrap();
    let server = start(dir.path(), &[]).await;
    let mut c = Client::connect(addr(&server)).await;
    let r: DescribeConfigsResponse = c.send(ApiKey::DescribeConfigs, 4, &describe).await;
    assert!(r.results[0]
        .configs
        .iter()
        .any(|c| c.name.as_str() == "retention.ms" && c.value.as_deref() == Some("12345")));
    assert_eq!(partition_count(&mut c, "configured").await, Some(5));

    let r: DeleteTopicsResponse = c
        .send(
            ApiKey::DeleteTopics,
            6,
            &DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(sb("configured"))))])
                .with_timeout_ms(30_000),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert!(!dir.path().join("configured-0").exists());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_regressions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let a = addr(&server);
    let mut c = Client::connect(a).await;

    // A huge partition count is refused before anything is allocated,
    // validate-only or not.
    for validate_only in [true, false] {
        let mut req = create_topic_req("huge", 2_000_000_000);
        req.validate_only = validate_only;
        let r: CreateTopicsResponse = c.send(ApiKey::CreateTopics, 7, &req).await;
        assert_eq!(r.topics[0].error_code, code(ResponseError::PolicyViolation));
    }

    // Metadata v0 with an empty topic list means every topic.
    let _: CreateTopicsResponse = c
        .send(ApiKey::CreateTopics, 7, &create_topic_req("seen", 1))
        .await;
    let r: MetadataResponse = c
        .send(
            ApiKey::Metadata,
            0,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await;
    assert!(r
        .topics
        .iter()
        .any(|t| t.name.as_ref().unwrap().0.as_str() == "seen"));
    let r: MetadataResponse = c
        .send(
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await;
    assert!(r.topics.is_empty(), "v1+ empty list means no topics");

    // An acks=0 produce that fails closes the connection.
    let mut z = Client::connect(a).await;
    z.write_request(
        ApiKey::Produce,
        9,
        &produce_req("missing", 0, batch(1, 1, Compression::None), 0),
    )
    .await;
    assert!(closed_by_server(&mut z.stream).await);

    // Shutdown ends a parked long-poll fetch with an answer instead of
    // waiting out its max.wait.ms.
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let fetcher = tokio::spawn(async move {
        let mut f = Client::connect(a).await;
        f.write_request(ApiKey::Fetch, 12, &fetch_req("seen", 0, 0, 30_000))
            .await;
        sent_tx.send(()).unwrap();
        let mut frame = f
            .read_frame()
            .await
            .expect("an answer, not a closed connection");
        ResponseHeader::decode(&mut frame, 1).unwrap();
        FetchResponse::decode(&mut frame, 12).unwrap()
    });
    // The fetch is on the wire; a round trip on another connection lets the
    // broker read it and park it before shutdown begins.
    sent_rx.await.unwrap();
    let mut probe = Client::connect(a).await;
    let _: ApiVersionsResponse = probe
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    drop(probe);
    drop(c);
    tokio::time::timeout(std::time::Duration::from_secs(20), server.shutdown())
        .await
        .expect("shutdown does not wait for the long poll")
        .unwrap();
    let r = fetcher.await.unwrap();
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
}

//! An in-process broker on free ports and a minimal raw Kafka client.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use riffle_broker::config::BrokerConfig;
use riffle_broker::{ListenerKind, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a broker on free ports with its data in `dir`.
pub async fn start(dir: &Path, extra: &[(&str, &str)]) -> Server {
    let (p, c) = (free_port(), free_port());
    let mut overrides = vec![
        (
            "listeners".to_string(),
            format!("PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"),
        ),
        (
            "controller.quorum.voters".to_string(),
            format!("1@127.0.0.1:{c}"),
        ),
        ("log.dirs".to_string(), dir.display().to_string()),
    ];
    overrides.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let props = BrokerConfig::embedded_default();
    let (mut config, _) = BrokerConfig::from_properties(props.clone(), overrides.clone()).unwrap();
    // The embedded default with overrides, as `riffle server` without
    // `--config` runs it: formatted on first start.
    config.auto_format = true;
    let mut all = props;
    all.extend(overrides);
    Server::start(config, all).await.unwrap()
}

pub fn addr(server: &Server) -> SocketAddr {
    server.address(ListenerKind::Broker).unwrap()
}

pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            correlation_id: 0,
        }
    }

    /// Sends a request and returns the raw response body (header removed).
    pub async fn send_raw<T: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &T,
    ) -> Option<Bytes> {
        self.write_request(key, version, body).await;
        let mut resp = self.read_frame().await?;
        let header =
            ResponseHeader::decode(&mut resp, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        Some(resp)
    }

    /// Writes a request without waiting for an answer; returns its
    /// correlation id.
    pub async fn write_request<T: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &T,
    ) -> i32 {
        self.correlation_id += 1;
        let mut b = BytesMut::new();
        b.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("riffle-test")))
            .encode(&mut b, key.request_header_version(version))
            .unwrap();
        body.encode(&mut b, version).unwrap();
        let size = (b.len() - 4) as i32;
        b[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&b).await.unwrap();
        self.correlation_id
    }

    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await.ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    pub async fn send<T: Encodable + HeaderVersion, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &T,
    ) -> R {
        let mut b = self
            .send_raw(key, version, body)
            .await
            .expect("connection closed");
        let r = R::decode(&mut b, version).unwrap();
        assert_eq!(b.remaining(), 0, "trailing bytes in {key:?} response");
        r
    }
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A record batch of `n` records with keys, values, one header and
/// timestamps `base_ts + i`.
pub fn batch(n: usize, base_ts: i64, compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            delete_horizon: false,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // One batch (kafka-protocol splits when offset - sequence
            // changes), base sequence -1.
            sequence: i as i32 - 1,
            timestamp: base_ts + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: [(sb("h"), Some(Bytes::from_static(b"v")))]
                .into_iter()
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

pub fn create_topic_req(name: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000)
}

pub fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}

pub fn fetch_req(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(52_428_800)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(sb(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1_048_576)])])
}

/// ListOffsets for one partition at `timestamp` (or -1/-2/-3).
pub fn list_offsets_req(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            ])])
}

/// The partition count of `topic` in an all-topics Metadata response.
pub async fn partition_count(c: &mut Client, topic: &str) -> Option<usize> {
    let r: MetadataResponse = c
        .send(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    r.topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .map(|t| t.partitions.len())
}

//! Requests a broker sends to the active controller over its controller
//! listener (`controller.listener.names`): Kafka forwards CreateTopics
//! from brokers to the controller the same way (KIP-590), so a client may
//! create topics, explicitly or by auto-creation, through any node.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::error::BrokerError;
use crate::util::sb;

/// Largest response accepted.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Sends `req` as `api_key` v`version` to `address` on a new connection and
/// returns the decoded response. Any failure (connection, timeout, decode)
/// is `NotController`: the caller retries or reports the controller as
/// unavailable.
pub async fn call<Req: Encodable, Resp: Decodable>(
    address: &str,
    api_key: ApiKey,
    version: i16,
    client_id: &str,
    req: &Req,
    timeout_ms: u64,
) -> Result<Resp, BrokerError> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(sb(client_id)))
            .encode(&mut body, api_key.request_header_version(version))
            .map_err(std::io::Error::other)?;
        req.encode(&mut body, version)
            .map_err(std::io::Error::other)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        stream.write_all(&frame).await?;
        let reply = riffle_protocol::read_frame(&mut stream, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .ok_or_else(|| std::io::Error::other("connection closed"))?;
        let mut reply = reply.freeze();
        ResponseHeader::decode(&mut reply, api_key.response_header_version(version))
            .map_err(std::io::Error::other)?;
        Resp::decode(&mut reply, version).map_err(std::io::Error::other)
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), exchange)
        .await
        .map_err(|_| BrokerError::NotController(format!("no answer from {address}")))?
        .map_err(|e| BrokerError::NotController(format!("{address}: {e}")))
}

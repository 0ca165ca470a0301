//! A minimal Kafka client connection for the operator tools: one TCP
//! connection, one request in flight, API versions learnt from ApiVersions.
//!
//! This is not a general client (that is `crates/client`'s job): it does
//! not retry, follow leaders, or pipeline. Each call has a deadline; errors
//! carry the address, and errors returned by the server are
//! [`ServerError`]s named as Kafka names them (`NOT_LEADER_OR_FOLLOWER`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The client id sent in request headers.
const CLIENT_ID: &str = "riffle-tools";
/// The ApiVersions versions this client can decode: v3 is the first
/// flexible one and carries the client software name.
const API_VERSIONS_VERSION_MAX: i16 = 3;
/// The largest response accepted, as a guard against garbage sizes.
const RESPONSE_BYTES_MAX: usize = 100 * 1024 * 1024;

/// An error code returned by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: i16,
    pub message: Option<String>,
}

impl ServerError {
    /// `None` for error code 0.
    pub fn from_code(code: i16, message: Option<&StrBytes>) -> Option<ServerError> {
        (code != 0).then(|| ServerError {
            code,
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        })
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&kafka_error_name(self.code))?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

/// Kafka's name for an error code (`Errors.name()`: `NOT_LEADER_OR_FOLLOWER`),
/// or `UNKNOWN_ERROR_CODE_<n>` for codes this build does not know.
pub fn kafka_error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(n)) => format!("UNKNOWN_ERROR_CODE_{n}"),
        // kafka-protocol spells Kafka's names in CamelCase; Kafka's own
        // names have no acronyms in a row, so splitting at capitals
        // gives them back.
        Some(e) => {
            let camel = format!("{e:?}");
            let mut name = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

/// The highest version in `ours` that the server's range `theirs` also
/// allows, if any.
pub fn negotiate(ours: (i16, i16), theirs: (i16, i16)) -> Option<i16> {
    let max = ours.1.min(theirs.1);
    (max >= ours.0.max(theirs.0)).then_some(max)
}

/// One connection to a Kafka listener.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    address: String,
    correlation_id: i32,
    timeout: Duration,
    /// The server's (min, max) version per API key, from ApiVersions.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to the first address in the comma-separated `addresses`
    /// that accepts, and learns its API versions.
    pub async fn connect(addresses: &str, timeout: Duration) -> anyhow::Result<Connection> {
        let mut failures = Vec::new();
        for address in addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    let mut conn = Connection {
                        stream,
                        address: address.to_string(),
                        correlation_id: 0,
                        timeout,
                        versions: BTreeMap::new(),
                    };
                    conn.fetch_api_versions().await?;
                    return Ok(conn);
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => failures
                    .push(format!(
                        "{address}: connection refused (is the server running, and is this the right port?)"
                    )),
                Ok(Err(e)) => failures.push(format!("{address}: {e}")),
                Err(_) => failures.push(format!(
                    "{address}: no answer within {} ms",
                    timeout.as_millis()
                )),
            }
        }
        if failures.is_empty() {
            bail!("no address given");
        }
        bail!("cannot connect to {}", failures.join("; "))
    }

    /// The highest version of `key` that both this client (`ours`, an
    /// inclusive range) and the server support.
    pub fn version_for(&self, key: ApiKey, ours: (i16, i16)) -> anyhow::Result<i16> {
        let Some(&theirs) = self.versions.get(&(key as i16)) else {
            bail!(
                "UNSUPPORTED_VERSION: {} does not serve {key:?} (ApiVersions does not list it)",
                self.address
            );
        };
        negotiate(ours, theirs).ok_or_else(|| {
            anyhow!(
                "UNSUPPORTED_VERSION: {} serves {key:?} versions {}..={}, this tool needs {}..={}",
                self.address,
                theirs.0,
                theirs.1,
                ours.0,
                ours.1
            )
        })
    }

    /// Sends a request and decodes its response.
    pub async fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let mut body = self.send_raw(key, version, request).await?;
        Resp::decode(&mut body, version).with_context(|| {
            format!(
                "cannot decode the {key:?} v{version} response from {}",
                self.address
            )
        })
    }

    /// Sends a request and returns the response body after its header.
    async fn send_raw<Req: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Bytes> {
        self.correlation_id += 1;
        let correlation_id = self.correlation_id;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
            .encode(&mut frame, key.request_header_version(version))
            .context("cannot encode the request header")?;
        request
            .encode(&mut frame, version)
            .with_context(|| format!("cannot encode the {key:?} v{version} request"))?;
        let size = i32::try_from(frame.len() - 4).context("request too large")?;
        frame[..4].copy_from_slice(&size.to_be_bytes());

        let address = self.address.clone();
        let exchange = async {
            self.stream.write_all(&frame).await?;
            riffle_protocol::read_frame(&mut self.stream, RESPONSE_BYTES_MAX).await
        };
        let response = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => bail!(
                "{address} did not answer {key:?} within {} ms",
                self.timeout.as_millis()
            ),
            Ok(Err(e)) => bail!("{key:?} to {address} failed: {e}"),
            Ok(Ok(None)) => bail!("{address} closed the connection instead of answering {key:?}"),
            Ok(Ok(Some(frame))) => frame,
        };
        let mut response = response.freeze();
        let header = ResponseHeader::decode(&mut response, key.response_header_version(version))
            .with_context(|| format!("cannot decode the {key:?} response header from {address}"))?;
        if header.correlation_id != correlation_id {
            bail!(
                "{address} answered correlation id {} to request {correlation_id}",
                header.correlation_id
            );
        }
        Ok(response)
    }

    /// ApiVersions at the highest version this client knows. A server that
    /// does not support it answers in version 0 with UNSUPPORTED_VERSION
    /// and its own ApiVersions range (KIP-511); the request is then
    /// repeated at a version both support.
    async fn fetch_api_versions(&mut self) -> anyhow::Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("riffle"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = API_VERSIONS_VERSION_MAX;
        for _ in 0..2 {
            let mut body = self
                .send_raw(ApiKey::ApiVersions, version, &request)
                .await?;
            let code = if body.len() >= 2 {
                (&body[..2]).get_i16()
            } else {
                bail!("{} sent a truncated ApiVersions response", self.address)
            };
            let decode_version = if code == ResponseError::UnsupportedVersion.code() {
                0
            } else {
                version
            };
            let response =
                ApiVersionsResponse::decode(&mut body, decode_version).with_context(|| {
                    format!(
                        "cannot decode the ApiVersions response from {}",
                        self.address
                    )
                })?;
            self.versions = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            if code == 0 {
                return Ok(());
            }
            if code != ResponseError::UnsupportedVersion.code() {
                return Err(ServerError::from_code(code, None)
                    .map(anyhow::Error::new)
                    .unwrap_or_else(|| anyhow!("unexpected error code {code}")));
            }
            version = self.version_for(ApiKey::ApiVersions, (0, API_VERSIONS_VERSION_MAX))?;
        }
        bail!("{} refused every ApiVersions version", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(kafka_error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(kafka_error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(kafka_error_name(35), "UNSUPPORTED_VERSION");
        assert_eq!(kafka_error_name(56), "KAFKA_STORAGE_ERROR");
        assert_eq!(kafka_error_name(115), "UNSUPPORTED_ENDPOINT_TYPE");
        assert_eq!(kafka_error_name(0), "NONE");
        assert_eq!(kafka_error_name(30_000), "UNKNOWN_ERROR_CODE_30000");
        let e = ServerError::from_code(6, Some(&StrBytes::from_static_str("not the leader")));
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("NOT_LEADER_OR_FOLLOWER: not the leader")
        );
        assert_eq!(ServerError::from_code(0, None), None);
    }

    #[test]
    fn negotiation_takes_the_highest_common_version() {
        assert_eq!(negotiate((0, 2), (0, 2)), Some(2));
        assert_eq!(negotiate((0, 2), (0, 1)), Some(1));
        assert_eq!(negotiate((0, 2), (0, 5)), Some(2));
        assert_eq!(negotiate((1, 2), (0, 0)), None);
        assert_eq!(negotiate((0, 2), (3, 4)), None);
    }
}

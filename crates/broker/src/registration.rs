//! Broker registration with the active controller (BrokerRegistration,
//! API 62): the broker side that sends it over the controller listener,
//! and the controller side that commits the RegisterBrokerRecord.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{
    ApiKey, BrokerId, BrokerRegistrationRequest, BrokerRegistrationResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use riffle_metadata::{BrokerRegistration, ControllerResult, Endpoint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::util::sb;

/// The BrokerRegistration version Riffle nodes send each other.
const VERSION: i16 = 2;
/// Largest response accepted.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

fn request(cluster_id: &str, r: &BrokerRegistration) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(r.id))
        .with_cluster_id(sb(cluster_id))
        .with_incarnation_id(r.incarnation_id)
        .with_listeners(
            r.endpoints
                .iter()
                .map(|e| {
                    Listener::default()
                        .with_name(sb(e.name.clone()))
                        .with_host(sb(e.host.clone()))
                        .with_port(e.port)
                        .with_security_protocol(e.security_protocol)
                })
                .collect(),
        )
        .with_rack(r.rack.clone().map(sb))
        .with_previous_broker_epoch(-1)
}

/// Sends this broker's registration to the active controller at
/// `address` (its controller listener).
pub async fn register_remote(
    address: &str,
    cluster_id: &str,
    registration: &BrokerRegistration,
    timeout_ms: u64,
) -> Result<(), BrokerError> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let mut body = BytesMut::new();
        let key = ApiKey::BrokerRegistration;
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(VERSION)
            .with_correlation_id(1)
            .with_client_id(Some(sb(format!("riffle-broker-{}", registration.id))))
            .encode(&mut body, key.request_header_version(VERSION))
            .map_err(std::io::Error::other)?;
        request(cluster_id, registration)
            .encode(&mut body, VERSION)
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
        ResponseHeader::decode(&mut reply, key.response_header_version(VERSION))
            .map_err(std::io::Error::other)?;
        BrokerRegistrationResponse::decode(&mut reply, VERSION).map_err(std::io::Error::other)
    };
    let response = tokio::time::timeout(Duration::from_millis(timeout_ms), exchange)
        .await
        .map_err(|_| BrokerError::NotController(format!("no answer from {address}")))?
        .map_err(|e| BrokerError::NotController(format!("{address}: {e}")))?;
    match ResponseError::try_from_code(response.error_code) {
        None => Ok(()),
        Some(e) => Err(BrokerError::NotController(format!(
            "{address} answered {e:?}"
        ))),
    }
}

/// The controller side: commits the registration when this node is the
/// active controller.
pub async fn handle(broker: &Broker, req: BrokerRegistrationRequest) -> BrokerRegistrationResponse {
    if req.cluster_id.as_str() != broker.cluster_id {
        return BrokerRegistrationResponse::default()
            .with_error_code(ResponseError::InconsistentClusterId.code());
    }
    let id = req.broker_id.0;
    let registration = BrokerRegistration {
        id,
        incarnation_id: req.incarnation_id,
        epoch: 0,
        endpoints: req
            .listeners
            .iter()
            .map(|l| Endpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: l.security_protocol,
            })
            .collect(),
        rack: req.rack.as_ref().map(|r| r.to_string()),
        fenced: false,
    };
    let outcome = broker
        .controller_write(move |c, image| {
            let mut registration = registration;
            registration.epoch = image.broker(id).map_or(0, |b| b.epoch + 1);
            ControllerResult {
                records: c.register_broker(image, registration),
                response: (),
            }
        })
        .await;
    match outcome {
        Ok(()) => BrokerRegistrationResponse::default()
            .with_broker_epoch(broker.image().broker(id).map_or(-1, |b| b.epoch)),
        Err(BrokerError::NotController(_)) | Err(BrokerError::ShuttingDown) => {
            BrokerRegistrationResponse::default()
                .with_error_code(ResponseError::NotController.code())
        }
        Err(e) => {
            tracing::warn!(broker = id, "registration failed: {e}");
            BrokerRegistrationResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code())
        }
    }
}

//! Broker registration with the active controller (BrokerRegistration,
//! API 62): the broker side that sends it over the controller listener,
//! and the controller side that commits the RegisterBrokerRecord.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{
    ApiKey, BrokerId, BrokerRegistrationRequest, BrokerRegistrationResponse,
};
use riffle_metadata::{BrokerRegistration, ControllerResult, Endpoint};

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::util::sb;

/// The BrokerRegistration version Riffle nodes send each other.
const VERSION: i16 = 2;

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
    let response: BrokerRegistrationResponse = crate::forward::call(
        address,
        ApiKey::BrokerRegistration,
        VERSION,
        &format!("riffle-broker-{}", registration.id),
        &request(cluster_id, registration),
        timeout_ms,
    )
    .await?;
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

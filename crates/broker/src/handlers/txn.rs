//! Idempotent and transactional producers: InitProducerId, the
//! transaction coordinator's APIs, WriteTxnMarkers and DescribeProducers.

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use riffle_protocol::response::Response;

use crate::broker::Broker;

/// Answers an API whose handler is not wired yet with a retriable error.
pub fn not_ready(api_key: ApiKey, version: i16) -> Option<Response> {
    Response::top_level_error(
        api_key,
        version,
        ResponseError::CoordinatorNotAvailable.code(),
    )
}

fn init_error(e: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(e.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// InitProducerId. Without a transactional id (an idempotent producer) the
/// answer is always a fresh producer id with epoch 0, also when the
/// producer sends its current id and epoch to have it bumped (KIP-360):
/// Kafka does the same, since a new id resets the sequences as well.
pub async fn init_producer_id(
    broker: &Broker,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    match req.transactional_id.as_ref().map(|t| t.as_str()) {
        None => match broker.producer_ids.next().await {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err(e) => init_error(e),
        },
        Some("") => init_error(ResponseError::InvalidRequest),
        Some(_) => init_error(ResponseError::CoordinatorNotAvailable),
    }
}

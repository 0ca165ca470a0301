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

#[allow(dead_code)]
fn _broker(_: &Broker) {}

//! Producer ids for InitProducerId, handed out from blocks the active
//! controller allocates (AllocateProducerIds, committed as a
//! `ProducerIdsRecord`), so ids stay unique across restarts and nodes.
//!
//! As in Kafka, the next block is fetched in the background once 90% of
//! the current one is used. When no id is at hand [`ProducerIdManager::try_next`]
//! answers COORDINATOR_LOAD_IN_PROGRESS, which clients retry; the
//! idempotent InitProducerId path waits for the block instead
//! ([`ProducerIdManager::next`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::{AllocateProducerIdsRequest, AllocateProducerIdsResponse, ApiKey};
use kafka_protocol::ResponseError;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::broker::Broker;
use crate::error::BrokerError;

/// How long the fetch loop waits before asking again after a failure.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How long an idempotent InitProducerId waits for a block.
const WAIT_FOR_BLOCK: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct State {
    /// The current block: ids `next..end`.
    next: i64,
    end: i64,
    /// A block fetched ahead of need.
    prefetched: Option<(i64, i64)>,
    /// Whether the fetch loop has been asked for a block.
    wanted: bool,
}

/// The broker's source of producer ids.
#[derive(Debug)]
pub struct ProducerIdManager {
    state: Mutex<State>,
    /// Wakes the fetch loop.
    want: Notify,
    /// Bumped whenever a block arrives.
    arrived: watch::Sender<u64>,
}

impl Default for ProducerIdManager {
    fn default() -> Self {
        ProducerIdManager {
            state: Mutex::new(State::default()),
            want: Notify::new(),
            arrived: watch::channel(0).0,
        }
    }
}

impl ProducerIdManager {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next producer id, or COORDINATOR_LOAD_IN_PROGRESS when no block
    /// is at hand yet (one is being fetched).
    pub fn try_next(&self) -> Result<i64, ResponseError> {
        let mut s = self.lock();
        if s.next >= s.end {
            if let Some((start, end)) = s.prefetched.take() {
                s.next = start;
                s.end = end;
            }
        }
        if s.next >= s.end {
            self.ask(&mut s);
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let id = s.next;
        s.next += 1;
        // Fetch the next block once 90% of this one is used.
        let size = s.end - s.next;
        if s.prefetched.is_none() && size * 10 < 1000 {
            self.ask(&mut s);
        }
        Ok(id)
    }

    /// The next producer id, waiting (bounded) for a block to arrive.
    pub async fn next(&self) -> Result<i64, ResponseError> {
        let mut arrived = self.arrived.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT_FOR_BLOCK;
        loop {
            match self.try_next() {
                Ok(id) => return Ok(id),
                Err(e) => {
                    if tokio::time::timeout_at(deadline, arrived.changed())
                        .await
                        .is_err()
                    {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Waits (bounded) until a block of ids is at hand, asking for one if
    /// needed; for callers that take ids with [`Self::try_next`] under a
    /// lock and want to retry once instead of failing.
    pub async fn wait_for_block(&self) {
        let mut arrived = self.arrived.subscribe();
        {
            let mut s = self.lock();
            if s.next < s.end || s.prefetched.is_some() {
                return;
            }
            self.ask(&mut s);
        }
        let _ = tokio::time::timeout(WAIT_FOR_BLOCK, arrived.changed()).await;
    }

    fn ask(&self, s: &mut State) {
        if !s.wanted {
            s.wanted = true;
            self.want.notify_one();
        }
    }

    /// Stores a block the controller allocated.
    pub fn add_block(&self, start: i64, len: i32) {
        let mut s = self.lock();
        let block = (start, start.saturating_add(i64::from(len.max(0))));
        if s.next >= s.end {
            (s.next, s.end) = block;
        } else {
            s.prefetched = Some(block);
        }
        s.wanted = false;
        drop(s);
        self.arrived.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Fetches blocks when asked, until shutdown.
    pub async fn run(&self, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = self.want.notified() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            loop {
                let allocated = tokio::select! {
                    r = allocate(&broker) => r,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                match allocated {
                    Ok((start, len)) => {
                        info!(start, len, "got a block of producer ids");
                        self.add_block(start, len);
                        break;
                    }
                    Err(e) => {
                        warn!("allocating producer ids failed, retrying: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY_BACKOFF) => {}
                            _ = shutdown.wait_for(|s| *s) => return,
                        }
                    }
                }
            }
        }
    }
}

/// Asks the active controller for a block: this node's own controller when
/// it is the active one, else AllocateProducerIds over the controller
/// listener.
async fn allocate(broker: &Broker) -> Result<(i64, i32), BrokerError> {
    let node_id = broker.config.node_id;
    let refused = |e: ResponseError| BrokerError::NotController(format!("{e:?}"));
    match broker.controller_id() {
        Some(id) if id == node_id => broker
            .controller_write(|c, image| c.allocate_producer_ids(image, node_id, -1))
            .await?
            .map_err(refused),
        Some(id) => {
            let address = broker.controller_address(id)?;
            let epoch = broker.image().broker(node_id).map_or(-1, |b| b.epoch);
            let req = AllocateProducerIdsRequest::default()
                .with_broker_id(BrokerId(node_id))
                .with_broker_epoch(epoch);
            let resp: AllocateProducerIdsResponse = crate::forward::call(
                &address,
                ApiKey::AllocateProducerIds,
                0,
                &format!("riffle-broker-{node_id}"),
                &req,
                30_000,
            )
            .await?;
            match ResponseError::try_from_code(resp.error_code) {
                None => Ok((resp.producer_id_start.0, resp.producer_id_len)),
                Some(e) => Err(refused(e)),
            }
        }
        None => Err(BrokerError::NotController(
            "no active controller yet".into(),
        )),
    }
}

/// The controller side of AllocateProducerIds (controller listener).
pub async fn handle_allocate(
    broker: &Broker,
    req: AllocateProducerIdsRequest,
) -> AllocateProducerIdsResponse {
    let (id, epoch) = (req.broker_id.0, req.broker_epoch);
    let result = broker
        .controller_write(|c, image| c.allocate_producer_ids(image, id, epoch))
        .await;
    let resp = AllocateProducerIdsResponse::default()
        .with_producer_id_start(kafka_protocol::messages::ProducerId(-1));
    match result {
        Ok(Ok((start, len))) => resp
            .with_producer_id_start(kafka_protocol::messages::ProducerId(start))
            .with_producer_id_len(len),
        Ok(Err(e)) => resp.with_error_code(e.code()),
        Err(e) => resp.with_error_code(e.error_code().code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_blocks_and_the_next_block_is_asked_for_early() {
        let m = ProducerIdManager::default();
        assert_eq!(m.try_next(), Err(ResponseError::CoordinatorLoadInProgress));
        assert!(m.lock().wanted);
        m.add_block(1000, 1000);
        assert!(!m.lock().wanted);
        for want in 1000..1900 {
            assert_eq!(m.try_next(), Ok(want));
        }
        assert!(!m.lock().wanted, "asked before 90% was used");
        assert_eq!(m.try_next(), Ok(1900));
        assert!(m.lock().wanted, "not asked at 90%");
        m.add_block(5000, 1000);
        for want in 1901..2000 {
            assert_eq!(m.try_next(), Ok(want));
        }
        assert_eq!(m.try_next(), Ok(5000), "the prefetched block follows");
    }
}

//! The cluster as one operator command (`riffle groups`, `riffle
//! transactions`, `riffle topics`) sees it: the `--bootstrap-server` and `--timeout-ms`
//! options, connections to brokers opened when first needed, and the
//! deadline of the whole command, within which coordinator and leader
//! errors are retried with a growing backoff.
//!
//! [`Admin`] does what the commands have in common: Metadata for the
//! brokers' addresses, FindCoordinator for a group or a transactional id,
//! running a request at a coordinator, at a broker or at every broker, and
//! the retries. What each command asks of the cluster stays in its module.
//! A connection that fails with an error that asking again would not cure
//! is dropped, as it may be broken; a later request opens a new one.

use std::collections::BTreeMap;
use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::{
    metadata_request, ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Message, StrBytes};

use crate::client::{Connection, ServerError};

/// The first and the largest pause between retries.
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

// Kafka's error codes the operator commands act on.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;

/// The options every command that talks to brokers takes.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Comma-separated host:port addresses of broker listeners; the first
    /// that accepts a connection is asked where the rest of the cluster is.
    #[arg(long, global = true, value_name = "HOST:PORT[,HOST:PORT]")]
    pub bootstrap_server: Option<String>,
    /// How long the whole command may take, retries included.
    #[arg(long, global = true, value_name = "MS", default_value_t = 30_000)]
    pub timeout_ms: u64,
}

/// Runs `work` against the cluster at `--bootstrap-server` within
/// `--timeout-ms`; without a bootstrap server this is a usage error (exit
/// code 2).
pub fn run(
    args: &ClusterArgs,
    work: impl AsyncFnOnce(&mut Admin) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let Some(bootstrap) = args
        .bootstrap_server
        .as_deref()
        .filter(|b| !b.trim().is_empty())
    else {
        eprintln!("riffle: --bootstrap-server HOST:PORT is required (a broker listener, 127.0.0.1:9092 in the embedded default)");
        return Ok(ExitCode::from(2));
    };
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let mut admin = Admin::new(bootstrap, timeout);
        match tokio::time::timeout(timeout, work(&mut admin)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow!(
                "no result within --timeout-ms {}",
                timeout.as_millis()
            )),
        }
    })
}

/// A `--state` value in Kafka's spelling (one of `states`), whatever its
/// case.
pub fn parse_state(text: &str, states: &[&str]) -> Result<String, String> {
    states
        .iter()
        .find(|s| s.eq_ignore_ascii_case(text.trim()))
        .map(|s| s.to_string())
        .ok_or_else(|| {
            format!(
                "invalid state '{text}'; valid states are: {}",
                states.join(", ")
            )
        })
}

/// Whether `e` is an error that asking the coordinator again (found anew)
/// may cure.
pub fn is_coordinator_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ServerError>()
        .is_some_and(|s| is_coordinator_code(s.code))
}

/// Whether `code` is one of the errors that asking the coordinator again
/// (found anew) may cure.
pub fn is_coordinator_code(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// Whether `e` is an error that asking the partition's leader again
/// (found anew) may cure.
pub fn is_leader_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ServerError>()
        .is_some_and(|s| matches!(s.code, NOT_LEADER_OR_FOLLOWER | LEADER_NOT_AVAILABLE))
}

/// The error a response's error code stands for, if any.
pub fn server_error(code: i16, message: Option<&StrBytes>) -> anyhow::Result<()> {
    match ServerError::from_code(code, message) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// A server error with a code and no message.
pub fn code_error(code: i16) -> ServerError {
    ServerError {
        code,
        message: None,
    }
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// `host:port`, with brackets around an IPv6 host.
pub fn address(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What FindCoordinator is asked for: a group's or a transactional id's
/// coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorKey<'a> {
    Group(&'a str),
    Transaction(&'a str),
}

impl<'a> CoordinatorKey<'a> {
    fn key(self) -> &'static str {
        match self {
            CoordinatorKey::Group(_) => "group",
            CoordinatorKey::Transaction(_) => "transactional id",
        }
    }

    fn id(self) -> &'a str {
        match self {
            CoordinatorKey::Group(id) | CoordinatorKey::Transaction(id) => id,
        }
    }

    /// FindCoordinator's key type (0 group, 1 transaction).
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKey::Group(_) => 0,
            CoordinatorKey::Transaction(_) => 1,
        }
    }

    /// The first FindCoordinator version that can ask: version 1
    /// introduced the key type.
    fn version_min(self) -> i16 {
        match self {
            CoordinatorKey::Group(_) => 0,
            CoordinatorKey::Transaction(_) => 1,
        }
    }
}

impl fmt::Display for CoordinatorKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.key(), self.id())
    }
}

/// A coordinator as FindCoordinator reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

impl Coordinator {
    pub fn address(&self) -> String {
        address(&self.host, self.port)
    }
}

/// Whether an error is worth another attempt.
pub type Retriable = fn(&anyhow::Error) -> bool;

/// The cluster as seen from one command: connections to brokers, opened
/// when first needed, and the deadline of the whole command.
#[derive(Debug)]
pub struct Admin {
    bootstrap: String,
    deadline: Instant,
    request_timeout: Duration,
    bootstrap_conn: Option<Connection>,
    connections: BTreeMap<i32, Connection>,
    /// Broker addresses by node id, from Metadata and FindCoordinator.
    brokers: BTreeMap<i32, String>,
}

impl Admin {
    fn new(bootstrap: &str, timeout: Duration) -> Admin {
        Admin {
            bootstrap: bootstrap.to_string(),
            deadline: Instant::now() + timeout,
            request_timeout: timeout,
            bootstrap_conn: None,
            connections: BTreeMap::new(),
            brokers: BTreeMap::new(),
        }
    }

    /// How long one request may take: the whole command's timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Whether Metadata or FindCoordinator named broker `node_id`.
    pub fn knows_broker(&self, node_id: i32) -> bool {
        self.brokers.contains_key(&node_id)
    }

    async fn bootstrap(&mut self) -> anyhow::Result<&mut Connection> {
        if self.bootstrap_conn.is_none() {
            let conn = Connection::connect(&self.bootstrap, self.request_timeout).await?;
            self.bootstrap_conn = Some(conn);
        }
        self.bootstrap_conn
            .as_mut()
            .ok_or_else(|| anyhow!("no bootstrap connection"))
    }

    /// The connection to broker `node_id`, at the address Metadata or
    /// FindCoordinator gave for it.
    pub async fn broker(&mut self, node_id: i32) -> anyhow::Result<&mut Connection> {
        if !self.connections.contains_key(&node_id) {
            let Some(address) = self.brokers.get(&node_id) else {
                bail!("no address known for broker {node_id}");
            };
            let conn = Connection::connect(address, self.request_timeout)
                .await
                .with_context(|| format!("broker {node_id}"))?;
            self.connections.insert(node_id, conn);
        }
        self.connections
            .get_mut(&node_id)
            .ok_or_else(|| anyhow!("no connection to broker {node_id}"))
    }

    /// Drops the connection to broker `node_id`, which may be broken; a
    /// later request opens a new one.
    pub fn disconnect(&mut self, node_id: i32) {
        self.connections.remove(&node_id);
    }

    /// Waits before another attempt after `error`, or returns it when it is
    /// not `retriable` or the deadline does not leave time for one.
    pub async fn wait_before_retry(
        &mut self,
        attempt: &mut u32,
        error: anyhow::Error,
        retriable: bool,
    ) -> anyhow::Result<()> {
        let backoff = BACKOFF_INITIAL
            .saturating_mul(2u32.saturating_pow(*attempt))
            .min(BACKOFF_MAX);
        *attempt += 1;
        if !retriable || Instant::now() + backoff >= self.deadline {
            if retriable {
                return Err(error.context(format!("still failing after {attempt} attempts")));
            }
            return Err(error);
        }
        tokio::time::sleep(backoff).await;
        Ok(())
    }

    /// Runs `op` until it succeeds, fails with an error that is not
    /// `retriable`, or the deadline leaves no time for another attempt.
    pub async fn retrying<T>(
        &mut self,
        retriable: Retriable,
        mut op: impl AsyncFnMut(&mut Admin) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut attempt = 0;
        loop {
            match op(self).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let retriable = retriable(&e);
                    self.wait_before_retry(&mut attempt, e, retriable).await?;
                }
            }
        }
    }

    /// Metadata for `topics` (none: only the brokers), which also tells
    /// where each broker is.
    pub async fn metadata(&mut self, topics: &[&str]) -> anyhow::Result<MetadataResponse> {
        self.metadata_of(Some(topics)).await
    }

    /// Metadata for every topic (a null topic list), which also tells
    /// where each broker is.
    pub async fn metadata_all_topics(&mut self) -> anyhow::Result<MetadataResponse> {
        self.metadata_of(None).await
    }

    async fn metadata_of(&mut self, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
        let conn = self.bootstrap().await?;
        let version = conn.version_for(ApiKey::Metadata, (1, MetadataRequest::VERSIONS.max))?;
        let mut request = MetadataRequest::default().with_topics(topics.map(|topics| {
            topics
                .iter()
                .map(|t| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(str_bytes(t))))
                })
                .collect()
        }));
        if version >= 4 {
            request = request.with_allow_auto_topic_creation(false);
        }
        let response: MetadataResponse = conn.send(ApiKey::Metadata, version, &request).await?;
        server_error(response.error_code, None)?;
        for b in &response.brokers {
            self.brokers.insert(b.node_id.0, address(&b.host, b.port));
        }
        Ok(response)
    }

    /// The coordinator of `key`, asking again while the error is
    /// `retriable`.
    pub async fn find_coordinator(
        &mut self,
        key: CoordinatorKey<'_>,
        retriable: Retriable,
    ) -> anyhow::Result<Coordinator> {
        self.retrying(retriable, async |admin| {
            admin.find_coordinator_once(key).await
        })
        .await
    }

    async fn find_coordinator_once(
        &mut self,
        key: CoordinatorKey<'_>,
    ) -> anyhow::Result<Coordinator> {
        let conn = self.bootstrap().await?;
        let version = conn.version_for(
            ApiKey::FindCoordinator,
            (key.version_min(), FindCoordinatorRequest::VERSIONS.max),
        )?;
        // Version 4 (KIP-699) batches keys; before it, one key per request.
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![str_bytes(key.id())])
        } else {
            FindCoordinatorRequest::default().with_key(str_bytes(key.id()))
        }
        .with_key_type(key.key_type());
        let response: FindCoordinatorResponse = conn
            .send(ApiKey::FindCoordinator, version, &request)
            .await?;
        let coordinator = if version >= 4 {
            let Some(c) = response
                .coordinators
                .iter()
                .find(|c| c.key.as_str() == key.id())
            else {
                bail!("FindCoordinator did not answer for {key}");
            };
            server_error(c.error_code, c.error_message.as_ref())?;
            Coordinator {
                node_id: c.node_id.0,
                host: c.host.to_string(),
                port: c.port,
            }
        } else {
            server_error(response.error_code, response.error_message.as_ref())?;
            Coordinator {
                node_id: response.node_id.0,
                host: response.host.to_string(),
                port: response.port,
            }
        };
        let address = coordinator.address();
        if self.brokers.get(&coordinator.node_id) != Some(&address) {
            self.connections.remove(&coordinator.node_id);
            self.brokers.insert(coordinator.node_id, address);
        }
        Ok(coordinator)
    }

    /// Runs `op` on the connection to broker `node_id`, dropping the
    /// connection when `op` fails with an error that is not `retriable`.
    pub async fn at_broker<T>(
        &mut self,
        node_id: i32,
        retriable: Retriable,
        op: impl AsyncFnOnce(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let result = match self.broker(node_id).await {
            Ok(conn) => op(conn).await,
            Err(e) => Err(e),
        };
        if result.as_ref().is_err_and(|e| !retriable(e)) {
            self.disconnect(node_id);
        }
        result
    }

    /// Runs `op` at the coordinator of `key`, finding the coordinator
    /// again and retrying while `op` fails with a `retriable` error.
    pub async fn at_coordinator<T>(
        &mut self,
        key: CoordinatorKey<'_>,
        retriable: Retriable,
        mut op: impl AsyncFnMut(&mut Connection, &Coordinator) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut attempt = 0;
        loop {
            let coordinator = self.find_coordinator(key, retriable).await?;
            let result = self
                .at_broker(coordinator.node_id, retriable, async |conn| {
                    op(conn, &coordinator).await
                })
                .await;
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let retriable = retriable(&e);
                    self.wait_before_retry(&mut attempt, e, retriable).await?;
                }
            }
        }
    }

    /// Runs `op` at every broker in the cluster's metadata, at each until
    /// it succeeds, fails with an error that is not `retriable`, or the
    /// deadline leaves no time for another attempt. A broker that fails is
    /// reported on stderr (`cannot {what} of broker N`). The results are
    /// those of the brokers that answered, and whether any failed.
    pub async fn at_every_broker<T>(
        &mut self,
        what: &str,
        retriable: Retriable,
        mut op: impl AsyncFnMut(&mut Connection, i32) -> anyhow::Result<T>,
    ) -> anyhow::Result<(Vec<T>, bool)> {
        let metadata = self.metadata(&[]).await?;
        let brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
        let mut results = Vec::new();
        let mut failed = false;
        for broker in brokers {
            let result = self
                .retrying(retriable, async |admin| {
                    admin
                        .at_broker(broker, retriable, async |conn| op(conn, broker).await)
                        .await
                })
                .await;
            match result {
                Ok(v) => results.push(v),
                Err(e) => {
                    failed = true;
                    eprintln!("riffle: cannot {what} of broker {broker}: {e:#}");
                }
            }
        }
        Ok((results, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_errors_are_the_retriable_ones() {
        for code in [14, 15, 16] {
            assert!(is_coordinator_error(&anyhow::Error::new(code_error(code))));
        }
        let wrapped = anyhow::Error::new(code_error(16)).context("describing");
        assert!(is_coordinator_error(&wrapped));
        assert!(!is_coordinator_error(&anyhow::Error::new(code_error(68))));
        assert!(!is_coordinator_error(&anyhow!("connection refused")));
        assert!(!is_coordinator_error(&anyhow::Error::new(code_error(6))));
        assert!(is_leader_error(&anyhow::Error::new(code_error(6))));
        assert!(is_leader_error(&anyhow::Error::new(code_error(5))));
        assert!(!is_leader_error(&anyhow::Error::new(code_error(16))));
    }

    #[test]
    fn addresses_bracket_ipv6_hosts() {
        assert_eq!(address("::1", 9092), "[::1]:9092");
        assert_eq!(address("b1", 9092), "b1:9092");
    }

    #[test]
    fn coordinator_keys_name_what_they_ask_for() {
        let group = CoordinatorKey::Group("payments");
        assert_eq!((group.key_type(), group.version_min()), (0, 0));
        assert_eq!(group.to_string(), "group 'payments'");
        let txn = CoordinatorKey::Transaction("app-1");
        assert_eq!((txn.key_type(), txn.version_min()), (1, 1));
        assert_eq!(txn.to_string(), "transactional id 'app-1'");
    }

    #[test]
    fn states_parse_in_any_case() {
        let states = ["Stable", "PreparingRebalance"];
        assert_eq!(parse_state(" stable ", &states).unwrap(), "Stable");
        assert_eq!(
            parse_state("Running", &states).unwrap_err(),
            "invalid state 'Running'; valid states are: Stable, PreparingRebalance"
        );
    }
}

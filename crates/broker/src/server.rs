//! Listeners and connections.
//!
//! One task per connection reads frames, handles each request and writes
//! its response before reading the next, so pipelined requests are
//! answered in order (Kafka mutes a channel the same way). Fetched records
//! go from the segment files to the socket with `sendfile`. Limits:
//! `socket.request.max.bytes` before any allocation, `connections.max.idle.ms`
//! between requests, `max.connections` and `max.connections.per.ip` at
//! accept.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use riffle_protocol::request::{decode_request_for, DecodeError};
use riffle_protocol::response::{encode_response_with_regions, Response};
use riffle_protocol::zero_copy::{EncodedResponse, FileRegion, FileRegions};
use riffle_protocol::{read_frame, FrameError};
use riffle_protocol::{CONTROLLER_APIS, SUPPORTED_APIS};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::broker::{open_quorum, Broker};
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::handlers::{self, ConnContext};
use crate::metadata_log::QuorumLog;

/// How long a response already being written may take once shutdown
/// has begun.
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(5);

/// How often logs are flushed on time and directories checkpointed.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Client and inter-broker traffic.
    Broker,
    /// The controller listener: the KRaft quorum, broker registration and
    /// controller admin requests.
    Controller,
}

#[derive(Debug)]
struct ConnectionLimits {
    max_connections: usize,
    max_per_ip: usize,
    per_ip_overrides: HashMap<IpAddr, usize>,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds a connection's place in the limits until dropped.
#[derive(Debug)]
struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, String> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_ip.get(&ip).copied().unwrap_or(0);
        let max_ip = self
            .per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(self.max_per_ip);
        if count >= max_ip {
            return Err(format!(
                "max.connections.per.ip ({max_ip}) reached for {ip}"
            ));
        }
        if self.total.load(Ordering::SeqCst) >= self.max_connections {
            return Err(format!(
                "max.connections ({}) reached",
                self.max_connections
            ));
        }
        self.total.fetch_add(1, Ordering::SeqCst);
        per_ip.insert(ip, count + 1);
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::SeqCst);
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// What a node's connections are served by: the quorum from the start,
/// the broker once the metadata is caught up.
#[derive(Debug)]
pub struct Node {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub quorum: Arc<QuorumLog>,
    pub broker: OnceLock<Arc<Broker>>,
}

/// A running server: its bound addresses and the way to stop it.
#[derive(Debug)]
pub struct Server {
    broker: Arc<Broker>,
    node: Option<Arc<Node>>,
    /// (listener name, kind, bound address).
    pub listeners: Vec<(String, ListenerKind, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Joins the metadata quorum, serves the controller listeners, waits
    /// for the metadata to be caught up, registers the broker, then binds
    /// the client listeners.
    pub async fn start(
        config: BrokerConfig,
        static_props: Vec<(String, String)>,
    ) -> Result<Server, BrokerError> {
        let (quorum, cluster_id) = open_quorum(&config, tokio::runtime::Handle::current())?;
        match Server::start_with(config, static_props, quorum.clone(), cluster_id).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = quorum.close();
                Err(e)
            }
        }
    }

    async fn start_with(
        config: BrokerConfig,
        static_props: Vec<(String, String)>,
        quorum: Arc<QuorumLog>,
        cluster_id: String,
    ) -> Result<Server, BrokerError> {
        let limits = Arc::new(ConnectionLimits {
            max_connections: config.max_connections.max(0) as usize,
            max_per_ip: config.max_connections_per_ip.max(0) as usize,
            per_ip_overrides: config
                .max_connections_per_ip_overrides
                .iter()
                .filter_map(|(host, n)| Some((host.parse().ok()?, (*n).max(0) as usize)))
                .collect(),
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        });
        let node = Arc::new(Node {
            config: config.clone(),
            cluster_id: cluster_id.clone(),
            quorum: quorum.clone(),
            broker: OnceLock::new(),
        });
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut listeners = Vec::new();
        // Controller listeners first: the quorum needs them to elect.
        let (controller, client): (Vec<_>, Vec<_>) = config
            .listeners
            .iter()
            .partition(|l| config.controller_listener_names.contains(&l.name));
        for l in controller {
            let (name, local, socket) = bind(l).await?;
            info!(listener = %name, address = %local, "listening (controller)");
            listeners.push((name.clone(), ListenerKind::Controller, local));
            tasks.spawn(accept_loop(
                socket,
                name,
                ListenerKind::Controller,
                node.clone(),
                limits.clone(),
                shutdown.subscribe(),
            ));
        }
        let broker =
            Arc::new(Broker::open(config.clone(), static_props, quorum, cluster_id).await?);
        let _ = node.broker.set(broker.clone());
        tasks.spawn(loader_loop(broker.clone(), shutdown.subscribe()));
        broker.register().await?;
        for l in client {
            let (name, local, socket) = bind(l).await?;
            info!(listener = %name, address = %local, "listening");
            listeners.push((name.clone(), ListenerKind::Broker, local));
            tasks.spawn(accept_loop(
                socket,
                name,
                ListenerKind::Broker,
                node.clone(),
                limits.clone(),
                shutdown.subscribe(),
            ));
        }
        tasks.spawn(maintenance_loop(broker.clone(), shutdown.subscribe()));
        tasks.spawn(group_timers(broker.clone(), shutdown.subscribe()));
        tasks.spawn(producer_id_blocks(broker.clone(), shutdown.subscribe()));
        tasks.spawn(txn_coordinator(broker.clone(), shutdown.subscribe()));
        Ok(Server {
            broker,
            node: Some(node),
            listeners,
            shutdown,
            tasks,
        })
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The bound address of the first listener of `kind`.
    pub fn address(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(_, k, _)| *k == kind)
            .map(|(_, _, a)| *a)
    }

    /// Stops accepting, lets in-flight requests finish, then flushes and
    /// closes the logs (writing the clean-shutdown marker).
    pub async fn shutdown(mut self) -> Result<(), BrokerError> {
        info!("shutting down");
        self.shutdown.send_replace(true);
        self.broker.begin_shutdown();
        while self.tasks.join_next().await.is_some() {}
        drop(self.node.take());
        let broker = Arc::try_unwrap(self.broker).map_err(|_| {
            BrokerError::Storage("connections still hold the broker at shutdown".into())
        })?;
        broker.close()?;
        info!("shut down cleanly");
        Ok(())
    }
}

async fn bind(
    l: &crate::config::Listener,
) -> Result<(String, SocketAddr, TcpListener), BrokerError> {
    let address = format!("{}:{}", l.host, l.port);
    let bind_host = if l.host.is_empty() {
        "0.0.0.0"
    } else {
        &l.host
    };
    let socket = TcpListener::bind((bind_host, l.port))
        .await
        .map_err(|source| BrokerError::Bind {
            address: address.clone(),
            source,
        })?;
    let local = socket.local_addr().map_err(|source| BrokerError::Bind {
        address: address.clone(),
        source,
    })?;
    Ok((l.name.clone(), local, socket))
}

/// Follows the committed metadata: replays it into the image as the high
/// watermark moves, and writes snapshots when they are due.
async fn loader_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut hw = broker.quorum().high_watermark();
    loop {
        let b = broker.clone();
        match tokio::task::spawn_blocking(move || b.catch_up()).await {
            Ok(Err(e)) => error!("applying committed metadata failed: {e}"),
            Err(e) => error!("the metadata loader panicked: {e}"),
            Ok(Ok(())) => {}
        }
        if let Err(e) = broker.maybe_snapshot().await {
            warn!("metadata snapshot failed: {e}");
        }
        tokio::select! {
            r = hw.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Runs the group coordinator's rebalance, session and retention timers.
async fn group_timers(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let interval = broker.config.offsets_retention_check_interval_ms;
    broker
        .groups
        .run_timers(&broker.replicas, interval, shutdown)
        .await;
}

/// Fetches blocks of producer ids from the active controller when needed.
async fn producer_id_blocks(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    broker.producer_ids.run(broker.clone(), shutdown).await;
}

/// Runs the transaction coordinator's timers and writes its markers.
async fn txn_coordinator(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let txns = broker.txns.clone();
    txns.run(broker, shutdown).await;
}

async fn maintenance_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let retention_every = broker.config.log_retention_check_interval_ms.max(1000) as u128;
    let producers_every = broker
        .config
        .producer_id_expiration_check_interval_ms
        .max(1000) as u128;
    let mut last_retention = std::time::Instant::now();
    let mut last_producers = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_INTERVAL) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let retention = last_retention.elapsed().as_millis() >= retention_every;
        if retention {
            last_retention = std::time::Instant::now();
        }
        let producers = (last_producers.elapsed().as_millis() >= producers_every).then(|| {
            last_producers = std::time::Instant::now();
            i64::from(broker.effective_config().producer_id_expiration_ms)
        });
        let b = broker.clone();
        let _ =
            tokio::task::spawn_blocking(move || b.replicas.maintain(retention, producers)).await;
    }
}

async fn accept_loop(
    socket: TcpListener,
    listener: String,
    kind: ListenerKind,
    node: Arc<Node>,
    limits: Arc<ConnectionLimits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match limits.try_acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                info!(%peer, "refusing connection: {reason}");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = ConnContext {
            listener: listener.clone(),
            kind,
            peer,
        };
        connections.spawn(serve_connection(
            stream,
            ctx,
            node.clone(),
            shutdown.clone(),
            slot,
        ));
    }
    drop(socket);
    while connections.join_next().await.is_some() {}
}

/// Why a connection ended, when it was not the client's choice.
#[derive(Debug)]
enum Close {
    Idle,
    Frame(FrameError),
    Decode(DecodeError),
    Encode(String),
    Write(std::io::Error),
    Refused(String),
    WriteStalled,
    Shutdown,
}

async fn serve_connection(
    stream: TcpStream,
    ctx: ConnContext,
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
    _slot: ConnectionSlot,
) {
    let peer = ctx.peer;
    let (mut reader, mut writer) = stream.into_split();
    let idle = Duration::from_millis(node.config.connections_max_idle_ms.max(1) as u64);
    let max_bytes = node.config.socket_request_max_bytes.max(0) as usize;
    let table = match ctx.kind {
        ListenerKind::Broker => SUPPORTED_APIS,
        ListenerKind::Controller => CONTROLLER_APIS,
    };
    let outcome: Close = loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => break Close::Shutdown,
            f = tokio::time::timeout(idle, read_frame(&mut reader, max_bytes)) => f,
        };
        let frame = match frame {
            Err(_) => break Close::Idle,
            Ok(Ok(Some(frame))) => frame.freeze(),
            Ok(Ok(None)) => {
                debug!(%peer, "connection closed by client");
                return;
            }
            Ok(Err(e)) => break Close::Frame(e),
        };
        let answer = match decode_request_for(frame, table) {
            Ok(request) => {
                let version = request.version();
                let correlation_id = request.correlation_id();
                let handled = match (ctx.kind, node.broker.get()) {
                    (ListenerKind::Controller, _) => {
                        handlers::controller::handle(&node, &ctx, request)
                            .await
                            .map(|r| r.map(|r| (r, FileRegions::default())))
                    }
                    (ListenerKind::Broker, Some(broker)) => {
                        handlers::handle(broker, &ctx, request).await
                    }
                    (ListenerKind::Broker, None) => Err("the broker is not started yet".into()),
                };
                match handled {
                    Ok(r) => r.map(|(r, regions)| (correlation_id, version, r, regions)),
                    Err(reason) => break Close::Refused(reason),
                }
            }
            Err(e) => match error_response(&e) {
                Some((correlation_id, version, response)) => {
                    debug!(%peer, "answering an undecodable request with an error: {e}");
                    Some((correlation_id, version, response, FileRegions::default()))
                }
                None => break Close::Decode(e),
            },
        };
        let Some((correlation_id, version, response, regions)) = answer else {
            continue; // acks=0 produce: no response.
        };
        let encoded =
            match encode_response_with_regions(correlation_id, version, &response, &regions) {
                Ok(e) => e,
                Err(e) => break Close::Encode(format!("{e:#}")),
            };
        drop(response);
        // A client that stops reading must not hold the connection (or
        // shutdown) forever: the write gets the idle timeout too.
        // At shutdown a response being written gets a short grace period.
        let write = tokio::time::timeout(idle, write_response(&mut writer, &encoded));
        tokio::pin!(write);
        let written = tokio::select! {
            w = &mut write => w,
            () = shutting_down(&mut shutdown) => {
                match tokio::time::timeout(SHUTDOWN_WRITE_GRACE, &mut write).await {
                    Ok(w) => w,
                    Err(_) => break Close::Shutdown,
                }
            }
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Close::Write(e),
            Err(_) => break Close::WriteStalled,
        }
    };
    match outcome {
        Close::Shutdown => debug!(%peer, "closing connection for shutdown"),
        Close::Idle => debug!(%peer, "closing idle connection (connections.max.idle.ms)"),
        Close::Write(e) => debug!(%peer, "connection lost while writing: {e}"),
        Close::Frame(FrameError::Io(e)) => debug!(%peer, "connection lost: {e}"),
        Close::Frame(e) => warn!(%peer, "closing connection: {e}"),
        Close::Decode(e) => warn!(%peer, "closing connection: {e}"),
        Close::Refused(e) => warn!(%peer, "closing connection: {e}"),
        Close::WriteStalled => warn!(
            %peer,
            "closing connection: the client read no response bytes for connections.max.idle.ms"
        ),
        Close::Encode(e) => warn!(%peer, "closing connection: cannot encode the response: {e}"),
    }
    let _ = writer.shutdown().await;
}

/// Writes an encoded response: its inline bytes, and the file regions
/// between them with `sendfile`, from the page cache to the socket without
/// a copy through this process. A region that comes up short (its log was
/// truncated under the fetch) fails the write, and the connection is
/// closed: the frame's size was already sent.
async fn write_response(writer: &mut OwnedWriteHalf, encoded: &EncodedResponse) -> io::Result<()> {
    let mut at = 0;
    for (hole, region) in &encoded.holes {
        writer.write_all(&encoded.inline[at..*hole]).await?;
        send_region(writer.as_ref(), region).await?;
        at = *hole;
    }
    writer.write_all(&encoded.inline[at..]).await
}

#[cfg(target_os = "linux")]
async fn send_region(stream: &TcpStream, region: &FileRegion) -> io::Result<()> {
    let mut offset = region.position;
    let end = region.position + region.len;
    while offset < end {
        let count = usize::try_from(end - offset).unwrap_or(usize::MAX);
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &*region.file, Some(&mut offset), count)
                .map_err(io::Error::from)
        }) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the log file ends at {offset}, before the {} bytes being fetched \
                         from {} (truncated under the fetch)",
                        region.len, region.position
                    ),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Without `sendfile`: the region read into memory, then written.
#[cfg(not(target_os = "linux"))]
async fn send_region(stream: &TcpStream, region: &FileRegion) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; region.len as usize];
    region.file.read_exact_at(&mut buf, region.position)?;
    let mut rest = &buf[..];
    while !rest.is_empty() {
        stream.writable().await?;
        match stream.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error response for a request that did not decode, when one is
/// possible: ApiVersions at an unsupported version gets a v0 body with the
/// supported ranges; a body that did not decode gets a top-level
/// INVALID_REQUEST where the response has a top-level error code.
fn error_response(e: &DecodeError) -> Option<(i32, i16, Response)> {
    match e {
        DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        } => Some((
            *correlation_id,
            0,
            Response::ApiVersions(handlers::api_versions_body(
                ResponseError::UnsupportedVersion.code(),
                0,
            )),
        )),
        DecodeError::MalformedBody {
            api_key, header, ..
        } => Response::top_level_error(
            *api_key,
            header.request_api_version,
            ResponseError::InvalidRequest.code(),
        )
        .map(|r| (header.correlation_id, header.request_api_version, r)),
        _ => None,
    }
}

/// Resolves once shutdown has begun (without holding the watch borrow).
async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

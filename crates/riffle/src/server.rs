//! `riffle server`: configuration, start-up, and shutdown on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use riffle_broker::config::{parse_properties, BrokerConfig};
use riffle_broker::Server;
use tracing::{info, warn};

fn parse_override(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--override '{s}' is not of the form key=value"))?;
    let k = k.trim();
    if k.is_empty() {
        bail!("--override '{s}' has an empty key");
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// A configuration as `riffle server` and `riffle storage` load it.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: BrokerConfig,
    /// The file (or embedded default) and the overrides, in that order.
    pub static_props: Vec<(String, String)>,
    /// Unknown keys and settings Riffle does not act on, for the caller to
    /// log.
    pub warnings: Vec<String>,
}

/// Loads `config` (or the embedded default when `None`) with the
/// `key=value` overrides applied over it, and validates the result.
pub fn load_config(config: Option<&Path>, overrides: &[String]) -> anyhow::Result<LoadedConfig> {
    let props = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            parse_properties(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None => BrokerConfig::embedded_default(),
    };
    let overrides = overrides
        .iter()
        .map(|s| parse_override(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut broker_config, warnings) =
        BrokerConfig::from_properties(props.clone(), overrides.clone())
            .map_err(|e| anyhow!("invalid configuration: {e}"))?;
    // Only the embedded default formats its directories on first start; a
    // configuration file needs `riffle storage format` first, as in Kafka.
    broker_config.auto_format = config.is_none();
    let mut static_props = props;
    static_props.extend(overrides);
    Ok(LoadedConfig {
        config: broker_config,
        static_props,
        warnings,
    })
}

pub fn run(config: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    let LoadedConfig {
        config: broker_config,
        static_props,
        warnings,
    } = load_config(config.as_deref(), &overrides)?;
    for w in warnings {
        warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("riffle")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let server = tokio::select! {
            s = Server::start(broker_config, static_props) => s?,
            r = wait_for_signal() => {
                r?;
                info!("stopped before start-up completed");
                return Ok(());
            }
        };
        info!(
            node_id = server.broker().config.node_id,
            cluster_id = %server.broker().cluster_id,
            "broker started"
        );
        wait_for_signal().await?;
        server.shutdown().await?;
        Ok::<(), anyhow::Error>(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot handle SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot handle Ctrl-C")?;
    Ok(())
}

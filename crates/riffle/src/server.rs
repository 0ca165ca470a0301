//! `riffle server`: configuration, start-up, and shutdown on SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use riffle_broker::config::{parse_properties, BrokerConfig};
use riffle_broker::{Broker, Server};
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

pub fn run(config: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    let props = match &config {
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
    let (broker_config, warnings) = BrokerConfig::from_properties(props.clone(), overrides.clone())
        .map_err(|e| anyhow!("invalid configuration: {e}"))?;
    for w in warnings {
        warn!("{w}");
    }
    let mut static_props = props;
    static_props.extend(overrides);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("riffle")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let broker = Broker::open(broker_config, static_props)?;
        info!(
            node_id = broker.config.node_id,
            cluster_id = %broker.cluster_id,
            "broker started"
        );
        let server = Server::start(broker).await?;
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

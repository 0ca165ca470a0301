//! `riffle`: the server binary and the operator subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};

mod admin;
mod client;
mod dump_log;
mod groups;
mod quorum;
mod server;
mod storage;
mod topics;
mod transactions;

#[derive(Debug, Parser)]
#[command(
    name = "riffle",
    version,
    about = "A Kafka-compatible event streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker and controller. Without --config: the embedded default
    /// (node 1, clients on 127.0.0.1:9092, controller on 127.0.0.1:9093,
    /// data in ./riffle-data).
    Server {
        /// A server.properties file with Kafka's property names; it is the
        /// whole configuration, as with Kafka.
        #[arg(long)]
        config: Option<PathBuf>,
        /// key=value settings applied over the file or the embedded
        /// default; may be repeated.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Print the batches (and optionally records) of segment files or a
    /// partition directory, like Kafka's kafka-dump-log.
    DumpLog {
        /// `.log` segment files or partition directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also print every record's offset, timestamp, key and value sizes.
        #[arg(long)]
        print_records: bool,
        /// Check the segment's indexes against its batches.
        #[arg(long)]
        verify_index: bool,
    },
    /// Prepare and inspect a node's log directories, like Kafka's
    /// kafka-storage.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Describe the KRaft controller quorum, like Kafka's
    /// kafka-metadata-quorum.
    Quorum {
        /// Comma-separated host:port addresses of controller listeners; the
        /// first that accepts a connection is asked.
        #[arg(long, global = true, value_name = "HOST:PORT")]
        bootstrap_controller: Option<String>,
        #[command(subcommand)]
        command: QuorumCommand,
    },
    /// List, describe, reset the offsets of and delete consumer groups,
    /// like Kafka's kafka-consumer-groups.
    Groups(groups::Args),
    /// List and describe transactions and the producers of a partition,
    /// like Kafka's kafka-transactions.
    Transactions(transactions::Args),
    /// Create, delete, list and describe topics, like Kafka's
    /// kafka-topics.
    Topics(topics::Args),
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Print a new cluster id for `storage format --cluster-id`.
    RandomUuid,
    /// Write meta.properties into every log.dirs entry and metadata.log.dir
    /// of a configuration. Needed once before `riffle server --config`
    /// starts a node for the first time.
    Format {
        /// The server.properties the node will run with.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// The cluster id, the same on every node of the cluster
        /// (`riffle storage random-uuid` makes one).
        #[arg(long, short = 't')]
        cluster_id: String,
        /// key=value settings applied over the file, as with `riffle
        /// server`; may be repeated.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Skip directories that are already formatted (for this cluster
        /// and node) instead of failing, and format the others.
        #[arg(long, short = 'g')]
        ignore_formatted: bool,
    },
    /// Show the meta.properties of a configuration's directories and any
    /// problem with them; exits with 1 if there is one.
    Info {
        #[arg(long, short = 'c')]
        config: PathBuf,
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum QuorumCommand {
    /// Show the quorum's leader and lag (--status) or every replica of the
    /// metadata log (--replication).
    #[command(group(ArgGroup::new("what").required(true).args(["status", "replication"])))]
    Describe {
        /// A summary: cluster id, leader, epoch, high watermark, lag, voters
        /// and observers.
        #[arg(long)]
        status: bool,
        /// One row per voter and observer with its log end offset and lag.
        #[arg(long)]
        replication: bool,
        /// With --replication: timestamps as "N ms ago".
        #[arg(long, conflicts_with = "status")]
        human_readable: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let success = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let out = &mut std::io::stdout().lock();
    let result = match cli.command {
        Command::Server { config, overrides } => success(server::run(config, overrides)),
        Command::DumpLog {
            files,
            print_records,
            verify_index,
        } => success(dump_log::run(&files, print_records, verify_index, out)),
        Command::Storage { command } => match command {
            StorageCommand::RandomUuid => success(storage::random_uuid(out)),
            StorageCommand::Format {
                config,
                cluster_id,
                overrides,
                ignore_formatted,
            } => success(storage::format(
                &config,
                &overrides,
                &cluster_id,
                ignore_formatted,
                out,
            )),
            StorageCommand::Info { config, overrides } => storage::info(&config, &overrides, out),
        },
        Command::Quorum {
            bootstrap_controller,
            command:
                QuorumCommand::Describe {
                    status,
                    replication,
                    human_readable,
                },
        } => {
            let what = if replication {
                quorum::Describe::Replication { human_readable }
            } else {
                debug_assert!(status, "clap requires --status or --replication");
                quorum::Describe::Status
            };
            match bootstrap_controller {
                Some(addresses) => success(quorum::run(&addresses, what, out)),
                None => Err(anyhow::anyhow!(
                    "--bootstrap-controller HOST:PORT is required (a controller listener, 127.0.0.1:9093 in the embedded default)"
                )),
            }
        }
        Command::Groups(args) => groups::run(args, out),
        Command::Transactions(args) => transactions::run(args, out),
        Command::Topics(args) => topics::run(args, out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("riffle: {e:#}");
            ExitCode::FAILURE
        }
    }
}

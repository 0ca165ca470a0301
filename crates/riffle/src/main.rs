//! `riffle`: the server binary and the operator subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dump_log;
mod server;

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
    let result = match cli.command {
        Command::Server { config, overrides } => server::run(config, overrides),
        Command::DumpLog {
            files,
            print_records,
            verify_index,
        } => dump_log::run(
            &files,
            print_records,
            verify_index,
            &mut std::io::stdout().lock(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("riffle: {e:#}");
            ExitCode::FAILURE
        }
    }
}

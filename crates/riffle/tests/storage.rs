//! `riffle storage` and the start-up rule it serves: a node started with
//! `--config` runs only on formatted directories (Kafka's rule); formatting
//! once makes it start.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::free_port;

fn riffle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A single-node configuration with two log directories and a separate
/// metadata directory under `root`.
fn write_config(root: &Path) -> String {
    let (p, c) = (free_port(), free_port());
    let path = root.join("server.properties");
    std::fs::write(
        &path,
        format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{c}\n\
             listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}\n\
             controller.listener.names=CONTROLLER\n\
             log.dirs={a},{b}\n\
             metadata.log.dir={m}\n\
             offsets.topic.replication.factor=1\n",
            a = root.join("a").display(),
            b = root.join("b").display(),
            m = root.join("meta").display(),
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn random_uuid_prints_a_kafka_uuid() {
    let out = riffle(&["storage", "random-uuid"]);
    assert!(out.status.success());
    let id = text(&out.stdout);
    let id = id.trim_end();
    assert_eq!(id.len(), 22, "{id}");
    assert!(riffle_broker::meta_properties::validate_cluster_id(id).is_ok());
}

#[test]
fn format_then_start_a_node_with_a_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path());
    let dir = |n: &str| tmp.path().join(n).display().to_string();

    // Unformatted: the server refuses and says what to run.
    let out = riffle(&["server", "--config", &config]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "log directories {}, {}, {} are not formatted; run: riffle storage format --config <file> --cluster-id \"$(riffle storage random-uuid)\"",
            dir("a"),
            dir("b"),
            dir("meta")
        )),
        "{stderr}"
    );
    let out = riffle(&["storage", "info", "--config", &config]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));

    let cluster = "MkU3OEVBNTcwNTJENDM2Qk";
    let out = riffle(&[
        "storage",
        "format",
        "--config",
        &config,
        "--cluster-id",
        cluster,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Formatting data directory {} with metadata.version 3.9-IV0.\n\
             Formatting data directory {} with metadata.version 3.9-IV0.\n\
             Formatting metadata directory {} with metadata.version 3.9-IV0.\n",
            dir("a"),
            dir("b"),
            dir("meta")
        )
    );

    // Formatting again is refused, naming the first formatted directory.
    let out = riffle(&["storage", "format", "-c", &config, "-t", cluster]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("log directory {} is already formatted", dir("a"))),
        "{}",
        text(&out.stderr)
    );
    // A directory added with an override joins with --ignore-formatted.
    let more = format!("log.dirs={},{}", dir("a"), dir("c"));
    let out = riffle(&[
        "storage",
        "format",
        "-c",
        &config,
        "-t",
        cluster,
        "--override",
        &more,
        "--ignore-formatted",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("Skipping data directory {}", dir("a")))
            && stdout.contains(&format!("Formatting data directory {}", dir("c"))),
        "{stdout}"
    );

    let out = riffle(&["storage", "info", "--config", &config]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("cluster.id={cluster}")) && stdout.contains("node.id=1"),
        "{stdout}"
    );

    // Formatted: the server starts, with the cluster id given to format.
    let mut server = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(["server", "--config", &config])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(server.stderr.take().unwrap());
    let mut log = Vec::new();
    let started = stderr.lines().map_while(Result::ok).find(|line| {
        log.push(line.clone());
        line.contains("broker started")
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let started = started.unwrap_or_else(|| panic!("server exited:\n{}", log.join("\n")));
    assert!(
        started.contains(&format!("cluster_id={cluster}")),
        "{started}"
    );
}

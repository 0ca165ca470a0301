//! `riffle topics` against a `riffle server` process: a topic is created
//! with partitions and configs, described (checked against a raw Metadata
//! request for its id), listed with and without the internal
//! `__consumer_offsets`, created again (TOPIC_ALREADY_EXISTS and exit 1,
//! or nothing with `--if-not-exists`), deleted, deleted again
//! (UNKNOWN_TOPIC_OR_PARTITION, or nothing with `--if-exists`) and
//! recreated with a new id. Omitted partitions and replication factor take
//! the broker's defaults, and the controller's validation errors reach the
//! operator with their message. Bad arguments are usage errors (exit 2),
//! a broker that is not there an operational one (exit 1).
#![allow(clippy::unwrap_used)]

mod common;

use kafka_protocol::messages::*;
use riffle_broker::meta_properties::kafka_uuid_string;

use common::{call, free_port, riffle, sb, Run, Server};

impl Server {
    /// `riffle topics --bootstrap-server <this server> ARGS`.
    fn topics(&self, args: &[&str]) -> Run {
        self.tool("topics", args)
    }

    /// The topic id Metadata (v12) gives for `topic`.
    fn topic_id(&self, topic: &str) -> String {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(sb(topic))))]))
            .with_allow_auto_topic_creation(false);
        let r: MetadataResponse = call(self.addr(), ApiKey::Metadata, 12, &req).unwrap();
        assert_eq!(r.topics[0].error_code, 0, "{r:?}");
        kafka_uuid_string(&r.topics[0].topic_id)
    }
}

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The fields of a describe line (`Name: value`, tab-separated).
    fn field<'a>(line: &'a str, name: &str) -> &'a str {
        line.split('\t')
            .find_map(|f| f.strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    }

    /// Fails the test unless the command failed with exit code 1, printed
    /// nothing on stdout and said `expected` on stderr.
    fn failed_with(self, expected: &str) -> Run {
        let run = self.failed();
        assert!(run.stderr.contains(expected), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        run
    }
}

#[test]
fn a_topic_through_its_life() {
    // num.partitions=2 shows that omitted partitions are the broker's
    // default, not the tool's.
    let server = Server::start(&["num.partitions=2", "offsets.topic.num.partitions=1"]);
    // The tool does not retry refused connections: wait until the broker
    // listens.
    let list = server.wait_for("the broker to answer", || {
        let run = server.topics(&["list"]);
        (run.code == Some(0)).then_some(run)
    });
    assert!(list.stdout.is_empty(), "{list:?}");

    // Create with partitions and configs.
    let created = server
        .topics(&[
            "create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "retention.ms=3600000",
        ])
        .ok();
    assert_eq!(created.stdout, "Created topic orders.\n");

    // Describe: Kafka's lines, the configs that are not defaults.
    let described = server.topics(&["describe", "--topic", "orders"]).ok();
    let id = server.topic_id("orders");
    assert_eq!(id.len(), 22, "Kafka's base64 form: {id}");
    let mut expected = vec![format!(
        "Topic: orders\tTopicId: {id}\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: cleanup.policy=compact,retention.ms=3600000"
    )];
    for p in 0..3 {
        expected.push(format!(
            "\tTopic: orders\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1"
        ));
    }
    assert_eq!(described.lines(), expected, "{described:?}");

    // Omitted partitions and replication factor: the broker's defaults
    // (num.partitions=2, default.replication.factor=1), no configs.
    server.topics(&["create", "--topic", "audit"]).ok();
    let described = server.topics(&["describe", "--topic", "audit"]).ok();
    let lines = described.lines();
    assert_eq!(lines.len(), 3, "{described:?}");
    assert_eq!(Run::field(lines[0], "PartitionCount"), "2");
    assert_eq!(Run::field(lines[0], "ReplicationFactor"), "1");
    assert_eq!(Run::field(lines[0], "Configs"), "");

    // A period or underscore gets Kafka's metric-name warning, on stderr.
    let dotted = server.topics(&["create", "--topic", "a.b"]).ok();
    assert_eq!(dotted.stdout, "Created topic a.b.\n");
    assert!(dotted
        .stderr
        .contains("WARNING: Due to limitations in metric names"));

    // An internal topic: FindCoordinator creates __consumer_offsets. List
    // shows it, as Kafka's --list does, unless --exclude-internal.
    server.coordinator(0, "some-group");
    let list = server.topics(&["list"]).ok();
    assert_eq!(
        list.lines(),
        ["__consumer_offsets", "a.b", "audit", "orders"]
    );
    let list = server.topics(&["list", "--exclude-internal"]).ok();
    assert_eq!(list.lines(), ["a.b", "audit", "orders"]);

    // Describe without --topic: every topic, sorted.
    let all = server.topics(&["describe"]).ok();
    let topics: Vec<&str> = all
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with('\t'))
        .map(|l| Run::field(l, "Topic"))
        .collect();
    assert_eq!(topics, ["__consumer_offsets", "a.b", "audit", "orders"]);
    let all = server.topics(&["describe", "--exclude-internal"]).ok();
    assert_eq!(all.lines().len(), 3 + 3 + 4, "{all:?}");

    // A second create of the same topic fails, with the server's message.
    server.topics(&["create", "--topic", "orders"]).failed_with(
        "cannot create topic 'orders': TOPIC_ALREADY_EXISTS: Topic 'orders' already exists.",
    );
    // --if-not-exists: nothing printed, nothing changed.
    let again = server
        .topics(&[
            "create",
            "--topic",
            "orders",
            "--partitions",
            "5",
            "--if-not-exists",
        ])
        .ok();
    assert!(
        again.stdout.is_empty() && again.stderr.is_empty(),
        "{again:?}"
    );
    let described = server.topics(&["describe", "--topic", "orders"]).ok();
    assert_eq!(Run::field(described.lines()[0], "PartitionCount"), "3");

    // The controller's validation errors, with its messages.
    let r3 = server
        .topics(&["create", "--topic", "r3", "--replication-factor", "3"])
        .failed_with("cannot create topic 'r3': INVALID_REPLICATION_FACTOR: ");
    assert!(r3.stderr.contains("replication factor of 3"), "{r3:?}");
    let bad = server
        .topics(&[
            "create",
            "--topic",
            "bad",
            "--config",
            "cleanup.policy=bogus",
        ])
        .failed_with("cannot create topic 'bad': INVALID_CONFIG: ");
    assert!(bad.stderr.contains("bogus"), "{bad:?}");
    server
        .topics(&["create", "--topic", "no/slash"])
        .failed_with("INVALID_TOPIC_EXCEPTION");
    let list = server.topics(&["list", "--exclude-internal"]).ok();
    assert_eq!(list.lines(), ["a.b", "audit", "orders"]);

    // Describing a topic that does not exist.
    server
        .topics(&["describe", "--topic", "nope"])
        .failed_with("cannot describe topic 'nope': UNKNOWN_TOPIC_OR_PARTITION");
    let quiet = server
        .topics(&["describe", "--topic", "nope", "--if-exists"])
        .ok();
    assert!(quiet.stdout.is_empty(), "{quiet:?}");

    // Delete: nothing printed, and the topic is gone when the command
    // returns.
    let deleted = server.topics(&["delete", "--topic", "orders"]).ok();
    assert!(deleted.stdout.is_empty(), "{deleted:?}");
    let list = server.topics(&["list", "--exclude-internal"]).ok();
    assert_eq!(list.lines(), ["a.b", "audit"]);
    server
        .topics(&["describe", "--topic", "orders"])
        .failed_with("UNKNOWN_TOPIC_OR_PARTITION");

    // Deleting it again, or a topic that never existed, fails unless
    // --if-exists.
    server
        .topics(&["delete", "--topic", "orders"])
        .failed_with("cannot delete topic 'orders': UNKNOWN_TOPIC_OR_PARTITION");
    server
        .topics(&["delete", "--topic", "never-created"])
        .failed_with("cannot delete topic 'never-created': UNKNOWN_TOPIC_OR_PARTITION");
    let quiet = server
        .topics(&["delete", "--topic", "never-created", "--if-exists"])
        .ok();
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{quiet:?}"
    );

    // The name is free again: a new topic with a new id.
    server
        .topics(&["create", "--topic", "orders", "--partitions", "1"])
        .ok();
    let described = server.topics(&["describe", "--topic", "orders"]).ok();
    let line = described.lines()[0];
    assert_eq!(Run::field(line, "PartitionCount"), "1");
    assert_eq!(Run::field(line, "Configs"), "");
    assert_ne!(Run::field(line, "TopicId"), id);
}

#[test]
fn bad_arguments_are_usage_errors_and_a_missing_broker_an_operational_one() {
    for args in [
        // No --bootstrap-server.
        &["topics", "list"][..],
        &["topics", "--bootstrap-server", "127.0.0.1:1", "create"],
        &[
            "topics",
            "--bootstrap-server",
            "127.0.0.1:1",
            "create",
            "--topic",
            "t",
            "--partitions",
            "0",
        ],
        &[
            "topics",
            "--bootstrap-server",
            "127.0.0.1:1",
            "create",
            "--topic",
            "t",
            "--replication-factor",
            "0",
        ],
        &[
            "topics",
            "--bootstrap-server",
            "127.0.0.1:1",
            "create",
            "--topic",
            "t",
            "--config",
            "no-equals-sign",
        ],
        &["topics", "--bootstrap-server", "127.0.0.1:1", "delete"],
        &[
            "topics",
            "--bootstrap-server",
            "127.0.0.1:1",
            "describe",
            "--if-exists",
        ],
        &["topics", "--bootstrap-server", "127.0.0.1:1", "alter"],
    ] {
        let run = riffle(args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }

    // Nobody listening: exit 1 with the address and the reason.
    let address = format!("127.0.0.1:{}", free_port());
    for args in [
        vec!["list"],
        vec!["describe"],
        vec!["create", "--topic", "t"],
        vec!["delete", "--topic", "t"],
    ] {
        let mut full = vec![
            "topics",
            "--bootstrap-server",
            &address,
            "--timeout-ms",
            "2000",
        ];
        full.extend(args);
        let run = riffle(&full).failed();
        assert!(
            run.stderr.contains(&address) && run.stderr.contains("connection refused"),
            "{run:?}"
        );
        assert!(run.stdout.is_empty(), "{run:?}");
    }
}

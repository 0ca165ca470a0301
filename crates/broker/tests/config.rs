//! The broker configuration layer through its public API: Kafka's keys and
//! defaults, the start-up refusals (each naming its key), DescribeConfigs
//! answers, and `meta.properties` formatting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use riffle_broker::config::{
    config_def, parse_properties, validate_dynamic_broker_config, BrokerConfig, ConfigError,
    ConfigKind, ConfigSource, Role, SecurityProtocol, CONFIG_DEFS,
};
use riffle_broker::meta_properties::{
    self, ensure_formatted, generate_cluster_id, MetaProperties, MetaPropertiesError,
    META_PROPERTIES_FILE,
};

fn props(text: &str) -> Vec<(String, String)> {
    parse_properties(text).expect("test properties parse")
}

fn kv(key: &str, value: &str) -> (String, String) {
    (key.to_string(), value.to_string())
}

/// A valid combined-mode config with one setting changed.
fn with(key: &str, value: &str) -> Vec<(String, String)> {
    let mut p = BrokerConfig::embedded_default();
    p.retain(|(k, _)| k != key);
    p.push(kv(key, value));
    p
}

fn without(key: &str) -> Vec<(String, String)> {
    let mut p = BrokerConfig::embedded_default();
    p.retain(|(k, _)| k != key);
    p
}

fn build(p: Vec<(String, String)>) -> Result<BrokerConfig, ConfigError> {
    BrokerConfig::from_properties(p, vec![]).map(|(c, _)| c)
}

/// Builds, expecting a refusal about `key`; returns the message.
fn refused(p: Vec<(String, String)>, key: &str) -> String {
    let err = build(p).expect_err("configuration should be refused");
    let msg = err.to_string();
    assert_eq!(err.key(), Some(key), "{msg}");
    assert!(msg.contains(key), "message should name {key}: {msg}");
    msg
}

/// The broker-only node of a three-controller cluster.
fn broker_only() -> Vec<(String, String)> {
    props(
        "process.roles=broker\n\
         node.id=4\n\
         controller.quorum.voters=1@c1:9093,2@c2:9093,3@c3:9093\n\
         controller.listener.names=CONTROLLER\n\
         listeners=PLAINTEXT://10.0.0.4:9092\n\
         log.dirs=/data/a,/data/b\n",
    )
}

#[test]
fn example_file_is_the_embedded_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/server.properties");
    let text = std::fs::read_to_string(&path).expect("config/server.properties exists");
    let (from_file, file_warnings) =
        BrokerConfig::from_properties(props(&text), vec![]).expect("example file is valid");
    let (embedded, embedded_warnings) =
        BrokerConfig::from_properties(BrokerConfig::embedded_default(), vec![])
            .expect("embedded default is valid");
    assert_eq!(from_file, embedded);
    assert!(file_warnings.is_empty(), "{file_warnings:?}");
    assert!(embedded_warnings.is_empty(), "{embedded_warnings:?}");
}

#[test]
fn embedded_default_is_one_combined_node_on_loopback() {
    let c = build(BrokerConfig::embedded_default()).expect("valid");
    assert_eq!(c.node_id, 1);
    assert_eq!(c.process_roles, vec![Role::Broker, Role::Controller]);
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(c.listeners[1].to_string(), "CONTROLLER://127.0.0.1:9093");
    assert_eq!(
        c.advertised_listeners.len(),
        1,
        "controller listener is not advertised"
    );
    assert_eq!(
        c.advertised_listeners[0].to_string(),
        "PLAINTEXT://127.0.0.1:9092"
    );
    assert_eq!(c.advertised_controller_listeners[0].port, 9093);
    assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
    assert_eq!(c.log_dirs, vec![PathBuf::from("./riffle-data")]);
    assert_eq!(c.metadata_log_dir, PathBuf::from("./riffle-data"));
    assert_eq!(c.controller_quorum_voters[0].id, 1);
    assert_eq!(c.offsets_topic_replication_factor, 1);
}

#[test]
fn defaults_are_kafkas() {
    let expected = [
        ("num.partitions", "1"),
        ("default.replication.factor", "1"),
        ("auto.create.topics.enable", "true"),
        ("delete.topic.enable", "true"),
        ("log.dir", "/tmp/kafka-logs"),
        ("log.retention.hours", "168"),
        ("log.retention.bytes", "-1"),
        ("log.segment.bytes", "1073741824"),
        ("log.roll.hours", "168"),
        ("log.index.size.max.bytes", "10485760"),
        ("log.index.interval.bytes", "4096"),
        ("log.flush.interval.messages", "9223372036854775807"),
        ("log.cleanup.policy", "delete"),
        ("log.cleaner.enable", "true"),
        ("log.message.timestamp.type", "CreateTime"),
        ("message.max.bytes", "1048588"),
        ("socket.request.max.bytes", "104857600"),
        ("socket.send.buffer.bytes", "102400"),
        ("socket.receive.buffer.bytes", "102400"),
        ("connections.max.idle.ms", "600000"),
        ("max.connections", "2147483647"),
        ("max.connections.per.ip", "2147483647"),
        ("queued.max.requests", "500"),
        ("num.network.threads", "3"),
        ("num.io.threads", "8"),
        ("compression.type", "producer"),
        ("min.insync.replicas", "1"),
        ("offsets.topic.replication.factor", "3"),
        ("transaction.state.log.replication.factor", "3"),
        ("group.initial.rebalance.delay.ms", "3000"),
        ("metadata.max.retention.ms", "604800000"),
        ("log.dir.failure.timeout.ms", "30000"),
        ("listeners", "PLAINTEXT://:9092"),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        ),
    ];
    for (key, value) in expected {
        let def = config_def(key).unwrap_or_else(|| panic!("{key} is defined"));
        assert_eq!(def.default, Some(value), "{key}");
    }
    for key in [
        "node.id",
        "log.dirs",
        "log.retention.ms",
        "log.retention.minutes",
        "broker.rack",
    ] {
        assert_eq!(config_def(key).expect("defined").default, None, "{key}");
    }
    // The typed values of a minimal file are those defaults.
    let c = build(broker_only()).expect("valid");
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.connections_max_idle_ms, 600_000);
    assert_eq!(c.max_connections, i32::MAX);
    assert_eq!(c.queued_max_requests, 500);
    assert_eq!(c.offsets_topic_replication_factor, 3);
    assert_eq!(c.default_log_config(), riffle_log::LogConfig::default());
}

#[test]
fn ignored_settings_say_so_in_their_doc() {
    for def in CONFIG_DEFS.iter().filter(|d| !d.used) {
        assert!(def.doc.contains("Accepted"), "{}: {}", def.name, def.doc);
    }
    assert!(!config_def("num.network.threads").expect("defined").used);
    assert!(CONFIG_DEFS
        .iter()
        .all(|d| !d.name.starts_with("riffle.") || d.used));
}

#[test]
fn overrides_win_over_the_file() {
    let (c, _) = BrokerConfig::from_properties(
        with("num.partitions", "3"),
        vec![kv("num.partitions", "6"), kv("broker.rack", "eu-1a")],
    )
    .expect("valid");
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.broker_rack.as_deref(), Some("eu-1a"));
    // A bad file value is not rescued by an override of another key, but an
    // override of the same key replaces it before validation.
    let (c, _) = BrokerConfig::from_properties(
        with("num.partitions", "abc"),
        vec![kv("num.partitions", "2")],
    )
    .expect("override replaces the bad value");
    assert_eq!(c.num_partitions, 2);
}

#[test]
fn retention_precedence_is_ms_then_minutes_then_hours() {
    let ms = |p: Vec<(String, String)>| build(p).expect("valid").default_log_config().retention_ms;
    assert_eq!(ms(BrokerConfig::embedded_default()), 168 * 3_600_000);
    assert_eq!(ms(with("log.retention.hours", "1")), 3_600_000);
    let mut p = with("log.retention.hours", "1");
    p.push(kv("log.retention.minutes", "2"));
    assert_eq!(ms(p.clone()), 120_000);
    p.push(kv("log.retention.ms", "5"));
    assert_eq!(ms(p), 5);
    assert_eq!(ms(with("log.retention.ms", "-1")), -1);
    // Kafka treats any negative retention as unlimited.
    assert_eq!(ms(with("log.retention.hours", "-5")), -1);
    refused(with("log.retention.ms", "0"), "log.retention.ms");
}

#[test]
fn broker_log_settings_map_onto_topic_config() {
    let mut p = BrokerConfig::embedded_default();
    p.extend([
        kv("log.segment.bytes", "1048576"),
        kv("log.roll.hours", "2"),
        kv("log.index.size.max.bytes", "4096"),
        kv("log.index.interval.bytes", "100"),
        kv("log.retention.bytes", "999"),
        kv("log.flush.interval.messages", "10"),
        kv("log.flush.interval.ms", "20"),
        kv("log.cleanup.policy", "compact,delete"),
        kv("log.cleaner.delete.retention.ms", "30"),
        kv("log.cleaner.min.compaction.lag.ms", "40"),
        kv("log.cleaner.min.cleanable.ratio", "0.25"),
        kv("message.max.bytes", "2000"),
        kv("log.message.timestamp.type", "LogAppendTime"),
        kv("log.message.timestamp.before.max.ms", "50"),
        kv("log.message.timestamp.after.max.ms", "60"),
    ]);
    let l = build(p).expect("valid").default_log_config();
    assert_eq!(l.segment_bytes, 1_048_576);
    assert_eq!(l.segment_ms, 2 * 3_600_000);
    assert_eq!(l.segment_index_bytes, 4096);
    assert_eq!(l.index_interval_bytes, 100);
    assert_eq!(l.retention_bytes, 999);
    assert_eq!(l.flush_messages, 10);
    assert_eq!(l.flush_ms, 20);
    assert!(l.cleanup_policy_compact && l.cleanup_policy_delete);
    assert_eq!(l.delete_retention_ms, 30);
    assert_eq!(l.min_compaction_lag_ms, 40);
    assert_eq!(l.min_cleanable_dirty_ratio, 0.25);
    assert_eq!(l.max_message_bytes, 2000);
    assert_eq!(l.message_timestamp_before_max_ms, 50);
    assert_eq!(l.message_timestamp_after_max_ms, 60);
    // log.roll.ms wins over log.roll.hours.
    let mut p = with("log.roll.hours", "2");
    p.push(kv("log.roll.ms", "1234"));
    assert_eq!(
        build(p).expect("valid").default_log_config().segment_ms,
        1234
    );
}

#[test]
fn unknown_keys_warn_and_ignored_keys_say_so() {
    let mut p = BrokerConfig::embedded_default();
    p.push(kv("no.such.setting", "1"));
    p.push(kv("num.network.threads", "8"));
    let (_, warnings) = BrokerConfig::from_properties(p, vec![]).expect("valid");
    assert!(
        warnings.iter().any(|w| w.contains("no.such.setting")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("num.network.threads")),
        "{warnings:?}"
    );
}

#[test]
fn bad_values_name_key_value_and_problem() {
    let msg = refused(with("num.partitions", "abc"), "num.partitions");
    assert_eq!(
        msg,
        "Invalid value abc for configuration num.partitions: Not a number of type INT"
    );
    refused(with("num.partitions", "0"), "num.partitions");
    refused(
        with("auto.create.topics.enable", "yes"),
        "auto.create.topics.enable",
    );
    refused(with("log.segment.bytes", "13"), "log.segment.bytes");
    refused(with("log.cleanup.policy", "shred"), "log.cleanup.policy");
    refused(with("compression.type", "brotli"), "compression.type");
    refused(
        with("log.cleaner.min.cleanable.ratio", "1.5"),
        "log.cleaner.min.cleanable.ratio",
    );
    refused(with("process.roles", "broker,zookeeper"), "process.roles");
    refused(
        with("offsets.topic.replication.factor", "40000"),
        "offsets.topic.replication.factor",
    );
    refused(
        with("default.replication.factor", "0"),
        "default.replication.factor",
    );
    refused(
        with("max.connections.per.ip.overrides", "host"),
        "max.connections.per.ip.overrides",
    );
    refused(
        with("controller.quorum.voters", "1@127.0.0.1"),
        "controller.quorum.voters",
    );
    refused(
        with("controller.quorum.voters", "x@127.0.0.1:9093"),
        "controller.quorum.voters",
    );
    refused(
        with(
            "listeners",
            "PLAINTEXT://127.0.0.1:99999,CONTROLLER://127.0.0.1:9093",
        ),
        "listeners",
    );
    refused(
        with("listener.security.protocol.map", "PLAINTEXT:TLS"),
        "listener.security.protocol.map",
    );
}

#[test]
fn missing_required_settings_name_the_key() {
    let msg = refused(without("node.id"), "node.id");
    assert!(msg.starts_with("Missing required configuration"), "{msg}");
    refused(without("process.roles"), "process.roles");
    refused(
        without("controller.listener.names"),
        "controller.listener.names",
    );
    refused(with("log.dirs", " "), "log.dirs");
    refused(
        without("controller.quorum.voters"),
        "controller.quorum.voters",
    );
    // Without log.dirs, Kafka falls back to log.dir and its default, with a warning.
    let (c, warnings) = BrokerConfig::from_properties(without("log.dirs"), vec![]).expect("valid");
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kafka-logs")]);
    assert!(
        warnings.iter().any(|w| w.contains("log.dirs")),
        "{warnings:?}"
    );
    // Bootstrap servers can stand in for a static voter set.
    let mut p = broker_only();
    p.retain(|(k, _)| k != "controller.quorum.voters");
    p.push(kv(
        "controller.quorum.bootstrap.servers",
        "c1:9093,[::1]:9093",
    ));
    let c = build(p).expect("valid");
    assert_eq!(c.controller_quorum_bootstrap_servers[1].host, "::1");
}

#[test]
fn listener_cross_checks() {
    // A listener name with no security protocol.
    refused(
        with(
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,INTERNAL://127.0.0.1:9094",
        ),
        "listeners",
    );
    // The controller must listen on its controller listener.
    refused(
        with("listeners", "PLAINTEXT://127.0.0.1:9092"),
        "controller.listener.names",
    );
    // Names and ports must be distinct.
    let msg = refused(
        with(
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,plaintext://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
        ),
        "listeners",
    );
    assert!(msg.contains("PLAINTEXT"), "{msg}");
    refused(
        with(
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://localhost:9092",
        ),
        "listeners",
    );
    // ...except one IPv4 and one IPv6 address on the same port.
    let mut p = with(
        "listeners",
        "PLAINTEXT://127.0.0.1:9092,CONTROLLER://[::1]:9092",
    );
    p.retain(|(k, _)| k != "controller.quorum.voters");
    p.push(kv("controller.quorum.voters", "1@[::1]:9092"));
    let c = build(p).expect("v4 and v6 may share a port");
    assert_eq!(c.listeners[1].host, "::1");
    assert_eq!(c.controller_quorum_voters[0].host, "::1");
    // SSL and SASL are refused, naming the listener.
    let mut p = with(
        "listeners",
        "SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
    );
    p.push(kv("inter.broker.listener.name", "SSL"));
    let msg = refused(p, "listeners");
    assert!(msg.contains("PLAINTEXT") && msg.contains("SSL"), "{msg}");
    // Binding 0.0.0.0 is fine; advertising it is not.
    let msg = refused(
        with(
            "listeners",
            "PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093",
        ),
        "advertised.listeners",
    );
    assert!(msg.contains("0.0.0.0"), "{msg}");
    let mut p = with(
        "listeners",
        "PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093",
    );
    p.push(kv(
        "advertised.listeners",
        "PLAINTEXT://broker1.example.com:9092",
    ));
    let c = build(p).expect("valid");
    assert_eq!(c.advertised_listeners[0].host, "broker1.example.com");
    assert_eq!(c.listeners[0].host, "0.0.0.0");
    // An empty host binds all interfaces and advertises the host name.
    let c = build(with(
        "listeners",
        "PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093",
    ))
    .expect("valid");
    assert_eq!(c.listeners[0].host, "");
    assert!(!c.advertised_listeners[0].host.is_empty());
    // The inter-broker listener must be advertised.
    refused(
        with("inter.broker.listener.name", "CONTROLLER"),
        "inter.broker.listener.name",
    );
    let mut p = BrokerConfig::embedded_default();
    p.push(kv("security.inter.broker.protocol", "PLAINTEXT"));
    refused(p, "inter.broker.listener.name");
    // Advertised listeners must be a subset of listeners.
    refused(
        with("advertised.listeners", "PLAINTEXT://h:9092,OTHER://h:9095"),
        "advertised.listeners",
    );
}

#[test]
fn role_cross_checks() {
    let c = build(broker_only()).expect("valid broker-only node");
    assert_eq!(c.process_roles, vec![Role::Broker]);
    assert!(c.advertised_controller_listeners.is_empty());
    // The default map gives controller listeners PLAINTEXT in KRaft mode.
    assert_eq!(
        c.listener_security_protocol_map.get("CONTROLLER"),
        Some(&SecurityProtocol::Plaintext)
    );
    assert_eq!(c.log_dirs.len(), 2);
    assert_eq!(c.metadata_log_dir, PathBuf::from("/data/a"));
    // A broker-only node is not a voter.
    let mut p = broker_only();
    p.push(kv("controller.quorum.voters", "4@c4:9093"));
    refused(p, "controller.quorum.voters");
    // A broker-only node does not listen on controller listeners.
    let mut p = broker_only();
    p.push(kv(
        "listeners",
        "PLAINTEXT://10.0.0.4:9092,CONTROLLER://10.0.0.4:9093",
    ));
    refused(p, "listeners");
    // A controller is one of the voters.
    refused(with("node.id", "2"), "controller.quorum.voters");
    // A controller-only node listens on controller listeners only.
    let mut p = with("process.roles", "controller");
    p.retain(|(k, _)| k != "inter.broker.listener.name");
    refused(p, "listeners");
    let p = props(
        "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=1@c1:9093\n\
         controller.listener.names=CONTROLLER\nlisteners=CONTROLLER://c1:9093\nlog.dirs=/d\n",
    );
    let c = build(p).expect("valid controller-only node");
    assert!(c.advertised_listeners.is_empty());
    assert_eq!(c.advertised_controller_listeners[0].host, "c1");
    // broker.id, if given, must equal node.id.
    refused(with("broker.id", "2"), "broker.id");
    build(with("broker.id", "1")).expect("equal ids are fine");
}

#[test]
fn describe_broker_reports_sources_and_synonyms() {
    let mut p = BrokerConfig::embedded_default();
    p.push(kv("log.retention.hours", "24"));
    let c = build(p).expect("valid");
    let described = c.describe();
    assert_eq!(described.len(), CONFIG_DEFS.len());
    let get = |name: &str| {
        described
            .iter()
            .find(|d| d.name == name)
            .expect("described")
            .clone()
    };

    let hours = get("log.retention.hours");
    assert_eq!(hours.value.as_deref(), Some("24"));
    assert_eq!(hours.source, ConfigSource::StaticBrokerConfig);
    assert!(hours.read_only, "Kafka only makes log.retention.ms dynamic");
    assert_eq!(hours.config_type, ConfigKind::Int);
    let synonyms: Vec<(&str, ConfigSource)> = hours
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("log.retention.hours", ConfigSource::StaticBrokerConfig),
            ("log.retention.hours", ConfigSource::DefaultConfig)
        ]
    );

    let ms = get("log.retention.ms");
    assert_eq!(ms.value, None, "log.retention.ms itself is unset");
    assert_eq!(ms.source, ConfigSource::DefaultConfig);
    assert!(!ms.read_only);

    let partitions = get("num.partitions");
    assert_eq!(partitions.value.as_deref(), Some("1"));
    assert_eq!(partitions.source, ConfigSource::DefaultConfig);
    assert_eq!(get("node.id").source, ConfigSource::StaticBrokerConfig);
    assert_eq!(ConfigSource::DefaultConfig as i8, 5);
    assert_eq!(ConfigSource::StaticBrokerConfig as i8, 4);
    assert_eq!(ConfigSource::TopicConfig as i8, 1);
    assert_eq!(ConfigKind::Password as i8, 9);

    // Dynamic values take precedence, per broker over cluster default.
    let per_broker = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
    let cluster = BTreeMap::from([("log.retention.ms".to_string(), "2000".to_string())]);
    let d = c.describe_with_dynamic(&per_broker, &cluster);
    let ms = d
        .iter()
        .find(|d| d.name == "log.retention.ms")
        .expect("described");
    assert_eq!(ms.value.as_deref(), Some("1000"));
    assert_eq!(ms.source, ConfigSource::DynamicBrokerConfig);
    assert_eq!(
        ms.synonyms[1].source,
        ConfigSource::DynamicDefaultBrokerConfig
    );
    assert_eq!(ms.synonyms[2].name, "log.retention.hours");
}

#[test]
fn describe_topic_reports_value_source_and_synonyms() {
    let mut p = BrokerConfig::embedded_default();
    p.push(kv("log.retention.hours", "24"));
    let c = build(p).expect("valid");
    let topic = BTreeMap::from([("segment.bytes".to_string(), "1000".to_string())]);
    let d = c.describe_topic_config(&topic);
    let get = |name: &str| {
        d.iter()
            .find(|d| d.name == name)
            .expect("described")
            .clone()
    };
    for key in riffle_log::config::KEYS {
        get(key);
    }
    get("compression.type");
    get("min.insync.replicas");

    let retention = get("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("86400000"));
    assert_eq!(retention.source, ConfigSource::StaticBrokerConfig);
    let names: Vec<&str> = retention.synonyms.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["log.retention.hours", "log.retention.hours"]);
    assert_eq!(retention.synonyms[1].source, ConfigSource::DefaultConfig);

    let segment = get("segment.bytes");
    assert_eq!(segment.value.as_deref(), Some("1000"));
    assert_eq!(segment.source, ConfigSource::TopicConfig);
    assert_eq!(segment.synonyms[0].source, ConfigSource::TopicConfig);
    assert_eq!(segment.synonyms[1].name, "log.segment.bytes");

    let compression = get("compression.type");
    assert_eq!(compression.value.as_deref(), Some("producer"));
    assert_eq!(compression.source, ConfigSource::DefaultConfig);
    assert!(!compression.read_only);

    let flush = get("flush.ms");
    assert_eq!(flush.value.as_deref(), Some("9223372036854775807"));
}

#[test]
fn dynamic_broker_config_validation() {
    validate_dynamic_broker_config("log.retention.ms", "60000").expect("dynamic");
    validate_dynamic_broker_config("message.max.bytes", "2000000").expect("dynamic");
    validate_dynamic_broker_config("max.connections.per.ip", "100").expect("dynamic");
    let e = validate_dynamic_broker_config("log.retention.ms", "soon").expect_err("bad value");
    assert!(e.contains("log.retention.ms") && e.contains("soon"), "{e}");
    let e = validate_dynamic_broker_config("listeners", "PLAINTEXT://:1").expect_err("static");
    assert!(e.contains("listeners"), "{e}");
    let e = validate_dynamic_broker_config("bogus.key", "1").expect_err("unknown");
    assert!(e.contains("bogus.key"), "{e}");
    // Kafka's per-broker dynamic SASL settings are accepted and validated
    // even though Riffle does not serve SASL (librdkafka's 0081 sets one).
    validate_dynamic_broker_config("sasl.kerberos.min.time.before.relogin", "58000")
        .expect("dynamic SASL setting");
    validate_dynamic_broker_config("sasl.login.refresh.window.factor", "0.5").expect("fraction");
    let e = validate_dynamic_broker_config("sasl.login.refresh.window.factor", "2")
        .expect_err("out of range");
    assert!(e.contains("sasl.login.refresh.window.factor"), "{e}");
    let sensitive = config_def("sasl.jaas.config").expect("defined");
    assert_eq!(sensitive.kind, riffle_broker::config::ConfigKind::Password);
}

#[test]
fn properties_edge_cases() {
    let p = props(
        "# comment\n\
         ! another\n\
         \n\
         \x20  a = 1\n\
         b:2\n\
         c 3\n\
         d\n\
         e=x\\\n\
         \x20   y\n\
         path=C\\:\\\\data\n\
         uni=caf\\u00e9\n\
         a=last\n",
    );
    let expected: Vec<(String, String)> = [
        ("a", "last"),
        ("b", "2"),
        ("c", "3"),
        ("d", ""),
        ("e", "xy"),
        ("path", "C:\\data"),
        ("uni", "café"),
    ]
    .iter()
    .map(|(k, v)| kv(k, v))
    .collect();
    assert_eq!(p, expected);
    assert!(matches!(
        parse_properties("a=\\u12"),
        Err(ConfigError::Syntax { line: 1, .. })
    ));
    // Windows line endings.
    assert_eq!(props("a=1\r\nb=2\r\n"), vec![kv("a", "1"), kv("b", "2")]);
}

// --------------------------------------------------------------------------
// meta.properties
// --------------------------------------------------------------------------

fn dirs(root: &Path, names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| root.join(n)).collect()
}

#[test]
fn meta_properties_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert_eq!(meta_properties::read(tmp.path()).expect("readable"), None);
    let meta = MetaProperties::new_v1(generate_cluster_id(), 3);
    meta_properties::write(tmp.path(), &meta).expect("written");
    assert_eq!(
        meta_properties::read(tmp.path()).expect("readable"),
        Some(meta.clone())
    );
    let text = std::fs::read_to_string(tmp.path().join(META_PROPERTIES_FILE)).expect("exists");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#");
    assert!(
        lines[1].starts_with('#') && lines[1].contains("UTC"),
        "{text}"
    );
    assert!(lines.contains(&"version=1"), "{text}");
    assert!(lines.contains(&"node.id=3"), "{text}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("cluster.id=") && l.len() == "cluster.id=".len() + 22));
    assert!(lines.iter().any(|l| l.starts_with("directory.id=")));
    assert!(!tmp.path().join("meta.properties.tmp").exists());
}

#[test]
fn first_start_formats_and_later_starts_agree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dirs(tmp.path(), &["a", "b", "a"]);
    let first = ensure_formatted(&d, 1, Some(generate_cluster_id())).expect("formats");
    assert_eq!(
        first.dirs.len(),
        2,
        "repeated directories are formatted once"
    );
    assert_eq!(first.newly_formatted.len(), 2);
    let ids: Vec<_> = first.dirs.iter().map(|(_, m)| m.directory_id).collect();
    assert_ne!(ids[0], ids[1]);
    // A restart keeps the cluster id even if offered a new one.
    let second = ensure_formatted(&d, 1, Some(generate_cluster_id())).expect("reopens");
    assert_eq!(second.cluster_id, first.cluster_id);
    assert!(second.newly_formatted.is_empty());
    assert_eq!(second.dirs, first.dirs);
    // Without an offered id, formatted directories still open.
    ensure_formatted(&d, 1, None).expect("reopens without a new id");
    // An added empty directory joins the existing cluster.
    let more = dirs(tmp.path(), &["a", "b", "c"]);
    let third = ensure_formatted(&more, 1, Some(generate_cluster_id())).expect("adds c");
    assert_eq!(third.cluster_id, first.cluster_id);
    assert_eq!(third.newly_formatted, vec![tmp.path().join("c")]);
}

#[test]
fn formatting_refusals_name_what_to_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dirs(tmp.path(), &["x"]);
    ensure_formatted(&d, 1, Some(generate_cluster_id())).expect("formats");

    let err = ensure_formatted(&d, 2, None).expect_err("node id differs");
    let path = tmp.path().join("x").join(META_PROPERTIES_FILE);
    assert_eq!(
        err.to_string(),
        format!(
            "node.id 1 in {} does not match node.id=2 in the configuration",
            path.display()
        )
    );

    // Two directories from different clusters.
    let other = dirs(tmp.path(), &["y"]);
    ensure_formatted(&other, 1, Some(generate_cluster_id())).expect("formats");
    let both = dirs(tmp.path(), &["x", "y"]);
    let err = ensure_formatted(&both, 1, None).expect_err("clusters differ");
    assert!(
        matches!(err, MetaPropertiesError::ClusterIdMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("cluster.id"), "{err}");

    // A copied directory shares a directory id.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).expect("mkdir");
    std::fs::copy(&path, copy.join(META_PROPERTIES_FILE)).expect("copy");
    let err = ensure_formatted(&[tmp.path().join("x"), copy], 1, None).expect_err("duplicate id");
    assert!(err.to_string().contains("directory.id"), "{err}");

    // A garbled file names the file and line.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(
        bad.join(META_PROPERTIES_FILE),
        "version=1\ncluster.id=abc\nnode.id=one\n",
    )
    .expect("write");
    let err = ensure_formatted(std::slice::from_ref(&bad), 1, None).expect_err("garbled");
    let msg = err.to_string();
    assert!(
        msg.contains(&bad.join(META_PROPERTIES_FILE).display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("line 3"), "{msg}");

    // Nothing formatted and no cluster id offered.
    let err = ensure_formatted(&dirs(tmp.path(), &["fresh"]), 1, None).expect_err("unformatted");
    assert!(
        matches!(err, MetaPropertiesError::NotFormatted { .. }),
        "{err}"
    );

    // An unformatted directory that holds data is not adopted.
    let used = tmp.path().join("used");
    std::fs::create_dir_all(used.join("orders-0")).expect("mkdir");
    let err = ensure_formatted(&[used], 1, Some(generate_cluster_id())).expect_err("not empty");
    assert!(err.to_string().contains("orders-0"), "{err}");

    assert!(matches!(
        ensure_formatted(&[], 1, None),
        Err(MetaPropertiesError::NoDirs)
    ));
}

#[test]
fn older_files_are_completed() {
    // A Kafka 3.6 KRaft file has no directory.id; a ZooKeeper-era file is
    // version 0 with broker.id.
    let tmp = tempfile::tempdir().expect("tempdir");
    let v1 = tmp.path().join("v1");
    std::fs::create_dir_all(&v1).expect("mkdir");
    std::fs::write(v1.join(META_PROPERTIES_FILE), "#\n#Mon Jan 01 00:00:00 UTC 2024\nversion=1\nnode.id=5\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n").expect("write");
    let v0 = tmp.path().join("v0");
    std::fs::create_dir_all(&v0).expect("mkdir");
    std::fs::write(
        v0.join(META_PROPERTIES_FILE),
        "version=0\nbroker.id=5\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n",
    )
    .expect("write");
    let f = ensure_formatted(&[v1.clone(), v0.clone()], 5, None).expect("opens");
    assert_eq!(f.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
    for dir in [&v1, &v0] {
        let meta = meta_properties::read(dir)
            .expect("readable")
            .expect("present");
        assert!(meta.directory_id.is_some(), "{}", dir.display());
    }
    let err = ensure_formatted(&[v0], 6, None).expect_err("broker.id differs");
    assert!(err.to_string().contains("node.id 5"), "{err}");
}

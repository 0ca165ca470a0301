//! Formatting and the start-up checks of `meta.properties` through the
//! public API: `riffle storage format` ([`format`]) and what the broker
//! runs before it opens anything ([`check_at_startup`]). The rules are
//! Kafka's `Formatter` and `MetaPropertiesEnsemble.verify`; each test says
//! which one it checks.

use std::path::{Path, PathBuf};

use riffle_broker::meta_properties::{
    self, check_at_startup, format, generate_cluster_id, kafka_uuid_string, validate_cluster_id,
    FormatOutcome, MetaPropertiesError, META_PROPERTIES_FILE,
};

fn dirs(root: &Path, names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| root.join(n)).collect()
}

fn formatted_dirs(outcomes: &[FormatOutcome]) -> Vec<&Path> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            FormatOutcome::Formatted { dir, .. } => Some(dir.as_path()),
            FormatOutcome::AlreadyFormatted { .. } => None,
        })
        .collect()
}

#[test]
fn format_writes_every_directory_and_start_up_accepts_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dirs(tmp.path(), &["a", "b", "meta", "a"]);
    let cluster = generate_cluster_id();
    let outcomes = format(&d, &cluster, 3, false).expect("formats");
    assert_eq!(
        formatted_dirs(&outcomes),
        [&d[0], &d[1], &d[2]],
        "every directory once, in the order given; missing ones created"
    );
    let mut ids = Vec::new();
    for dir in &d[..3] {
        let meta = meta_properties::read(dir)
            .expect("readable")
            .expect("formatted");
        assert_eq!(meta.version, 1);
        assert_eq!(meta.cluster_id.as_deref(), Some(cluster.as_str()));
        assert_eq!(meta.node_id, Some(3));
        ids.push(meta.directory_id.expect("directory id"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each directory gets its own directory.id");

    let opened = check_at_startup(&d, 3, false).expect("formatted directories open");
    assert_eq!(opened.cluster_id, cluster);
    assert_eq!(opened.dirs.len(), 3);
    assert!(opened.newly_formatted.is_empty());
}

#[test]
fn format_refuses_formatted_directories_unless_told_to_skip_them() {
    // Kafka's Formatter: "already formatted" unless --ignore-formatted,
    // which formats only the empty directories.
    let tmp = tempfile::tempdir().expect("tempdir");
    let cluster = generate_cluster_id();
    format(&dirs(tmp.path(), &["a"]), &cluster, 1, false).expect("formats a");
    let before = std::fs::read(tmp.path().join("a").join(META_PROPERTIES_FILE)).expect("file");

    let both = dirs(tmp.path(), &["a", "b"]);
    let err = format(&both, &cluster, 1, false).expect_err("a is formatted");
    assert!(
        matches!(err, MetaPropertiesError::AlreadyFormatted { ref dir } if dir == &both[0]),
        "{err}"
    );
    assert!(err.to_string().contains("--ignore-formatted"), "{err}");
    assert!(
        !both[1].exists(),
        "a refusal leaves the other directories alone"
    );

    let outcomes = format(&both, &cluster, 1, true).expect("skips a, formats b");
    assert!(matches!(&outcomes[0], FormatOutcome::AlreadyFormatted { dir, .. } if dir == &both[0]));
    assert_eq!(formatted_dirs(&outcomes), [&both[1]]);
    let after = std::fs::read(tmp.path().join("a").join(META_PROPERTIES_FILE)).expect("file");
    assert_eq!(before, after, "a skipped directory is not rewritten");

    let again = format(&both, &cluster, 1, true).expect("nothing to do");
    assert!(formatted_dirs(&again).is_empty());
}

#[test]
fn format_refuses_a_directory_of_another_cluster_or_node_even_when_skipping() {
    // Kafka's Formatter verifies the ensemble against the cluster id and
    // node id being formatted before it looks at --ignore-formatted.
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dirs(tmp.path(), &["a"]);
    let first = generate_cluster_id();
    format(&d, &first, 1, false).expect("formats");

    let second = generate_cluster_id();
    let err = format(&d, &second, 1, true).expect_err("other cluster");
    let msg = err.to_string();
    assert!(
        matches!(err, MetaPropertiesError::OtherCluster { .. }),
        "{msg}"
    );
    assert!(msg.contains(&first) && msg.contains(&second), "{msg}");

    let err = format(&d, &first, 2, true).expect_err("other node");
    assert!(
        matches!(
            err,
            MetaPropertiesError::NodeIdMismatch {
                found: 1,
                configured: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn format_does_not_adopt_a_directory_that_holds_data() {
    // A Riffle rule (Kafka formats it): files without a meta.properties
    // may belong to another cluster.
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dirs(tmp.path(), &["empty", "used"]);
    std::fs::create_dir_all(d[1].join("orders-0")).expect("mkdir");
    let err = format(&d, &generate_cluster_id(), 1, false).expect_err("not empty");
    assert!(err.to_string().contains("orders-0"), "{err}");
    assert!(
        !d[0].exists(),
        "nothing is written when any directory is refused"
    );
}

#[test]
fn cluster_ids_must_be_kafka_uuids() {
    for bad in [
        "",
        "abc",
        "not-a-uuid-but-22-chr!",
        "MkU3OEVBNTcwNTJENDM2QkXX",
    ] {
        let err = validate_cluster_id(bad).expect_err(bad);
        assert!(err.to_string().contains("random-uuid"), "{err}");
    }
    // Reserved: Kafka's Uuid.randomUuid never returns these.
    assert!(validate_cluster_id("AAAAAAAAAAAAAAAAAAAAAA").is_err());
    assert!(validate_cluster_id("AAAAAAAAAAAAAAAAAAAAAQ").is_err());
    // Kafka's documentation example has non-zero bits after the last byte;
    // Java's decoder ignores them, so Riffle does too.
    validate_cluster_id("MkU3OEVBNTcwNTJENDM2Qk").expect("Kafka's example id");
    validate_cluster_id("5L6g3nShT-eMCtK--X86sw==").expect("padded");
    let id = generate_cluster_id();
    assert_eq!(
        kafka_uuid_string(&validate_cluster_id(&id).expect("generated")),
        id
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dirs(tmp.path(), &["a"]);
    assert!(matches!(
        format(&d, "nope", 1, false),
        Err(MetaPropertiesError::InvalidClusterId { .. })
    ));
    assert!(!d[0].exists());
}

#[test]
fn start_up_with_a_config_file_refuses_unformatted_directories_and_says_what_to_run() {
    // Kafka's KafkaRaftServer.initializeLogDirs: "No meta.properties found".
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dirs(tmp.path(), &["a", "b"]);
    let err = check_at_startup(&d, 1, false).expect_err("nothing formatted");
    assert_eq!(
        err.to_string(),
        format!(
            "log directories {}, {} are not formatted; run: riffle storage format --config <file> --cluster-id \"$(riffle storage random-uuid)\"",
            d[0].display(),
            d[1].display()
        )
    );
    assert!(
        !d[0].exists() && !d[1].exists(),
        "the check creates nothing"
    );

    // One directory added to a formatted node: keep its cluster id.
    let cluster = generate_cluster_id();
    format(&d[..1], &cluster, 1, false).expect("formats a");
    let err = check_at_startup(&d, 1, false).expect_err("b is new");
    assert_eq!(
        err.to_string(),
        format!(
            "log directory {} is not formatted; run: riffle storage format --config <file> --cluster-id {cluster} --ignore-formatted",
            d[1].display()
        )
    );
}

#[test]
fn start_up_refuses_directories_of_different_clusters_or_another_node() {
    // MetaPropertiesEnsemble.verify: one cluster id, the configured node id.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (ca, cb) = (generate_cluster_id(), generate_cluster_id());
    format(std::slice::from_ref(&a), &ca, 1, false).expect("formats a");
    format(std::slice::from_ref(&b), &cb, 1, false).expect("formats b");
    let err = check_at_startup(&[a.clone(), b.clone()], 1, false).expect_err("two clusters");
    let msg = err.to_string();
    for needle in [
        a.display().to_string(),
        b.display().to_string(),
        ca.clone(),
        cb,
    ] {
        assert!(msg.contains(&needle), "{msg} should name {needle}");
    }

    let err = check_at_startup(std::slice::from_ref(&a), 2, false).expect_err("node 1's dir");
    assert_eq!(
        err.to_string(),
        format!(
            "node.id 1 in {} does not match node.id=2 in the configuration",
            a.join(META_PROPERTIES_FILE).display()
        )
    );

    // A copied directory shares a directory.id.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).expect("mkdir");
    std::fs::copy(
        a.join(META_PROPERTIES_FILE),
        copy.join(META_PROPERTIES_FILE),
    )
    .expect("copy");
    let err = check_at_startup(&[a, copy], 1, false).expect_err("same directory id");
    assert!(
        matches!(err, MetaPropertiesError::DuplicateDirectoryId { .. }),
        "{err}"
    );
}

#[test]
fn start_up_completes_a_missing_directory_id_and_refuses_incomplete_version_0_files() {
    // KafkaRaftServer gives directories without a directory.id one (Kafka
    // 3.7+); it refuses files without a node id or cluster id.
    let tmp = tempfile::tempdir().expect("tempdir");
    let old = tmp.path().join("old");
    std::fs::create_dir_all(&old).expect("mkdir");
    std::fs::write(
        old.join(META_PROPERTIES_FILE),
        "#\n#Mon Jan 01 00:00:00 UTC 2024\nversion=1\nnode.id=5\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n",
    )
    .expect("write");
    let opened = check_at_startup(std::slice::from_ref(&old), 5, false).expect("opens");
    assert_eq!(opened.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
    let meta = meta_properties::read(&old)
        .expect("readable")
        .expect("present");
    assert!(meta.directory_id.is_some(), "directory.id added");

    let zk = tmp.path().join("zk");
    std::fs::create_dir_all(&zk).expect("mkdir");
    std::fs::write(zk.join(META_PROPERTIES_FILE), "version=0\nbroker.id=5\n").expect("write");
    let err = check_at_startup(std::slice::from_ref(&zk), 5, false).expect_err("no cluster id");
    assert!(
        matches!(
            err,
            MetaPropertiesError::MissingKey {
                key: "cluster.id",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_embedded_default_formats_on_first_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dirs(tmp.path(), &["data"]);
    let first = check_at_startup(&d, 1, true).expect("formats itself");
    assert_eq!(first.newly_formatted, d);
    let again = check_at_startup(&d, 1, false).expect("then opens as any formatted node");
    assert_eq!(again.cluster_id, first.cluster_id);
}

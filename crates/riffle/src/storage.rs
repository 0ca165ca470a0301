//! `riffle storage`: Kafka's `kafka-storage` tool.
//!
//! - `random-uuid` prints a new cluster id.
//! - `format` writes `meta.properties` into every `log.dirs` entry and
//!   `metadata.log.dir` of a configuration, the step a node started with
//!   `--config` needs before its first start (the embedded default formats
//!   itself). The checks and the writing are
//!   [`riffle_broker::meta_properties::format`]; this module loads the
//!   configuration the way `riffle server` does and reports.
//! - `info` shows what the directories hold and what is wrong with them.
//!
//! Riffle writes no `bootstrap.checkpoint`: the first start of the node
//! writes the initial `metadata.version` record itself. `format` reports
//! that version, as Kafka's tool reports the one it writes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use riffle_broker::config::BrokerConfig;
use riffle_broker::meta_properties::{
    self, kafka_uuid_string, FormatOutcome, MetaProperties, META_PROPERTIES_FILE,
};
use tracing::warn;

use crate::server::load_config;

/// The `metadata.version` a new Riffle cluster starts with, in Kafka's
/// spelling (`MetadataVersion.IBP_3_9_IV0`, feature level
/// [`riffle_metadata::controller::METADATA_VERSION_3_9_IV0`]).
const METADATA_VERSION: &str = "3.9-IV0";

/// The node's directories: every `log.dirs` entry, then `metadata.log.dir`
/// unless it is one of them, as `riffle server` opens them.
fn node_dirs(config: &BrokerConfig) -> Vec<PathBuf> {
    let mut dirs = config.log_dirs.clone();
    if !dirs.contains(&config.metadata_log_dir) {
        dirs.push(config.metadata_log_dir.clone());
    }
    dirs
}

/// "metadata directory" for the metadata log's directory (even when it is
/// also a log directory), "data directory" for the others.
fn dir_kind(dir: &Path, metadata_log_dir: &Path) -> &'static str {
    if dir == metadata_log_dir {
        "metadata directory"
    } else {
        "data directory"
    }
}

pub fn random_uuid(out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "{}", meta_properties::generate_cluster_id())?;
    Ok(())
}

/// `riffle storage format`.
pub fn format(
    config: &Path,
    overrides: &[String],
    cluster_id: &str,
    ignore_formatted: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let loaded = load_config(Some(config), overrides)?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let config = loaded.config;
    let outcomes = meta_properties::format(
        &node_dirs(&config),
        cluster_id,
        config.node_id,
        ignore_formatted,
    )?;
    out.write_all(format_report(&outcomes, &config.metadata_log_dir).as_bytes())?;
    Ok(())
}

/// One line per directory: formatted (with the metadata version the node
/// will start with) or skipped; and a summary line when nothing was
/// written.
fn format_report(outcomes: &[FormatOutcome], metadata_log_dir: &Path) -> String {
    let mut text = String::new();
    for outcome in outcomes {
        match outcome {
            FormatOutcome::Formatted { dir, .. } => text.push_str(&format!(
                "Formatting {} {} with metadata.version {METADATA_VERSION}.\n",
                dir_kind(dir, metadata_log_dir),
                dir.display()
            )),
            FormatOutcome::AlreadyFormatted { dir, .. } => text.push_str(&format!(
                "Skipping {} {}: it is already formatted for this cluster and node.\n",
                dir_kind(dir, metadata_log_dir),
                dir.display()
            )),
        }
    }
    if !outcomes
        .iter()
        .any(|o| matches!(o, FormatOutcome::Formatted { .. }))
    {
        text.push_str("Every directory was already formatted; nothing was written.\n");
    }
    text
}

/// What `info` found in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DirState {
    Missing,
    NotADirectory,
    NotFormatted,
    Unreadable(String),
    Formatted(MetaProperties),
}

fn inspect(dir: &Path) -> DirState {
    if !dir.exists() {
        return DirState::Missing;
    }
    if !dir.is_dir() {
        return DirState::NotADirectory;
    }
    match meta_properties::read(dir) {
        Ok(None) => DirState::NotFormatted,
        Ok(Some(meta)) => DirState::Formatted(meta),
        Err(e) => DirState::Unreadable(e.to_string()),
    }
}

/// `riffle storage info`: exit code 1 when a problem was found.
pub fn info(config: &Path, overrides: &[String], out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let loaded = load_config(Some(config), overrides)?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let mut dirs = node_dirs(&loaded.config);
    dirs.sort();
    let states: Vec<(PathBuf, DirState)> = dirs
        .into_iter()
        .map(|d| {
            let state = inspect(&d);
            (d, state)
        })
        .collect();
    let (text, problems) = info_report(&states);
    out.write_all(text.as_bytes())
        .context("cannot write the report")?;
    Ok(if problems {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The `info` report in the layout of Kafka's `kafka-storage info`: the
/// directories found, the first `meta.properties` as a sorted map, then
/// the problems. Returns whether there were problems.
fn info_report(states: &[(PathBuf, DirState)]) -> (String, bool) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut first: Option<(&Path, &MetaProperties)> = None;
    for (dir, state) in states {
        match state {
            DirState::Missing => problems.push(format!("{} does not exist", dir.display())),
            DirState::NotADirectory => {
                problems.push(format!("{} is not a directory", dir.display()))
            }
            DirState::NotFormatted => {
                found.push(dir);
                problems.push(format!("{} is not formatted.", dir.display()));
            }
            DirState::Unreadable(e) => {
                found.push(dir);
                problems.push(format!(
                    "cannot use {}: {e}",
                    dir.join(META_PROPERTIES_FILE).display()
                ));
            }
            DirState::Formatted(meta) => {
                found.push(dir);
                match first {
                    None => first = Some((dir, meta)),
                    Some((first_dir, first_meta)) => {
                        if first_meta.cluster_id != meta.cluster_id {
                            problems.push(format!(
                                "{} and {} name different clusters ({} and {}).",
                                first_dir.display(),
                                dir.display(),
                                first_meta.cluster_id.as_deref().unwrap_or("none"),
                                meta.cluster_id.as_deref().unwrap_or("none"),
                            ));
                        } else if first_meta.node_id != meta.node_id {
                            problems.push(format!(
                                "{} and {} name different nodes ({} and {}).",
                                first_dir.display(),
                                dir.display(),
                                first_meta.node_id.map_or("none".into(), |n| n.to_string()),
                                meta.node_id.map_or("none".into(), |n| n.to_string()),
                            ));
                        }
                    }
                }
            }
        }
    }
    if let Some((dir, meta)) = first {
        if meta.version == 0 {
            problems.push(format!(
                "{} is formatted for ZooKeeper mode (version 0), but Riffle runs in KRaft mode.",
                dir.display()
            ));
        }
    }

    let mut text = String::new();
    if states.is_empty() {
        text.push_str("No directories specified.\n");
        return (text, false);
    }
    if !found.is_empty() {
        text.push_str(if found.len() == 1 {
            "Found log directory:\n"
        } else {
            "Found log directories:\n"
        });
        for d in &found {
            text.push_str(&format!("  {}\n", d.display()));
        }
        text.push('\n');
    }
    if let Some((_, meta)) = first {
        text.push_str(&format!("Found metadata: {}\n\n", metadata_map(meta)));
    }
    if !problems.is_empty() {
        text.push_str(if problems.len() == 1 {
            "Found problem:\n"
        } else {
            "Found problems:\n"
        });
        for p in &problems {
            text.push_str(&format!("  {p}\n"));
        }
        text.push('\n');
    }
    (text, !problems.is_empty())
}

/// The file's keys as Java prints a sorted map: `{cluster.id=…, node.id=1}`.
fn metadata_map(meta: &MetaProperties) -> String {
    let mut map = BTreeMap::new();
    if let Some(c) = &meta.cluster_id {
        map.insert("cluster.id", c.clone());
    }
    if let Some(d) = &meta.directory_id {
        map.insert("directory.id", kafka_uuid_string(d));
    }
    if let Some(n) = meta.node_id {
        map.insert(
            if meta.version == 0 {
                "broker.id"
            } else {
                "node.id"
            },
            n.to_string(),
        );
    }
    map.insert("version", meta.version.to_string());
    let items: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(cluster: &str, node: i32) -> MetaProperties {
        MetaProperties {
            version: 1,
            cluster_id: Some(cluster.to_string()),
            node_id: Some(node),
            directory_id: meta_properties::parse_kafka_uuid("7PDu0jVxRGOVMnAHrJ0DJQ"),
        }
    }

    #[test]
    fn the_metadata_version_named_is_the_one_the_controller_writes() {
        assert_eq!(riffle_metadata::controller::METADATA_VERSION_3_9_IV0, 21);
    }

    #[test]
    fn format_report_names_each_directory_and_its_kind() {
        let m = meta("5L6g3nShT-eMCtK--X86sw", 1);
        let outcomes = vec![
            FormatOutcome::Formatted {
                dir: "/data/a".into(),
                meta: m.clone(),
            },
            FormatOutcome::AlreadyFormatted {
                dir: "/data/b".into(),
                meta: m.clone(),
            },
            FormatOutcome::Formatted {
                dir: "/meta".into(),
                meta: m.clone(),
            },
        ];
        assert_eq!(
            format_report(&outcomes, Path::new("/meta")),
            "Formatting data directory /data/a with metadata.version 3.9-IV0.\n\
             Skipping data directory /data/b: it is already formatted for this cluster and node.\n\
             Formatting metadata directory /meta with metadata.version 3.9-IV0.\n"
        );
        let skipped = vec![FormatOutcome::AlreadyFormatted {
            dir: "/meta".into(),
            meta: m,
        }];
        assert!(format_report(&skipped, Path::new("/meta"))
            .ends_with("Every directory was already formatted; nothing was written.\n"));
    }

    #[test]
    fn info_lists_directories_metadata_and_problems() {
        let states = vec![
            (PathBuf::from("/a"), DirState::Formatted(meta("c1", 1))),
            (PathBuf::from("/b"), DirState::Formatted(meta("c2", 1))),
            (PathBuf::from("/c"), DirState::NotFormatted),
            (PathBuf::from("/d"), DirState::Missing),
        ];
        let (text, problems) = info_report(&states);
        assert!(problems);
        assert_eq!(
            text,
            "Found log directories:\n  /a\n  /b\n  /c\n\n\
             Found metadata: {cluster.id=c1, directory.id=7PDu0jVxRGOVMnAHrJ0DJQ, node.id=1, version=1}\n\n\
             Found problems:\n  /a and /b name different clusters (c1 and c2).\n  /c is not formatted.\n  /d does not exist\n\n"
        );
        let healthy = vec![(PathBuf::from("/a"), DirState::Formatted(meta("c1", 1)))];
        let (text, problems) = info_report(&healthy);
        assert!(!problems);
        assert!(text.starts_with("Found log directory:\n  /a\n\n"), "{text}");
    }
}

//! Kafka's `meta.properties`: the file in every log directory that says
//! which cluster and node the directory belongs to.
//!
//! Riffle writes version 1 (KRaft) files as Kafka 3.9 does: `version=1`,
//! `cluster.id`, `node.id` and `directory.id`, under the two-line `#` header
//! that `java.util.Properties.store` writes. Writes are atomic: a temporary
//! file is written and fsynced, renamed over the old one, and the directory
//! is fsynced.
//!
//! Three entry points:
//!
//! - [`format`] is `riffle storage format` (Kafka's `kafka-storage format`):
//!   it writes a version 1 file with the given cluster id into every
//!   unformatted directory, and refuses directories that are already
//!   formatted unless asked to skip them.
//! - [`check_at_startup`] is what the broker runs before it opens anything.
//!   With a configuration file every directory must already be formatted,
//!   as Kafka requires ([`verify_formatted`]); only the embedded default
//!   (`riffle server` without `--config`) formats on first start
//!   ([`ensure_formatted`]).
//! - [`ensure_formatted`] formats empty directories itself when the caller
//!   supplies a cluster id, including an empty directory added next to
//!   formatted ones (it gets their cluster id). Kafka never formats at
//!   start-up; this exists so that `riffle server` works with no set-up.
//!
//! Both start-up paths apply Kafka's `MetaPropertiesEnsemble.verify` rules
//! (one cluster id, the configured node id, no shared `directory.id`) and
//! give a version 1 file without a `directory.id` a new one, as Kafka 3.7
//! and later do. Version 0 files (ZooKeeper mode, `broker.id`) are read so
//! that a migrated node starts.
//!
//! Departures from Kafka: an unreadable or garbled file stops `format` and
//! start-up instead of the directory being skipped as failed, and an
//! unformatted directory that already holds files is never formatted (Kafka
//! formats it and adopts whatever is in it).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use uuid::Uuid;

use crate::config::parse_properties;

/// The file name inside each log directory.
pub const META_PROPERTIES_FILE: &str = "meta.properties";
const TMP_SUFFIX: &str = ".tmp";

/// Why a directory cannot be used. Each variant names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but cannot be understood.
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Garbled {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    #[error("node.id {found} in {} does not match node.id={configured} in the configuration", path.display())]
    NodeIdMismatch {
        path: PathBuf,
        found: i32,
        configured: i32,
    },
    #[error(
        "cluster.id {first} in {} does not match cluster.id {second} in {}; the directories belong to different clusters",
        first_path.display(),
        second_path.display()
    )]
    ClusterIdMismatch {
        first_path: PathBuf,
        first: String,
        second_path: PathBuf,
        second: String,
    },
    #[error("directory.id {id} appears in both {} and {}; each directory needs its own id", first_path.display(), second_path.display())]
    DuplicateDirectoryId {
        id: String,
        first_path: PathBuf,
        second_path: PathBuf,
    },
    /// Directories without `meta.properties` where start-up may not format.
    /// `cluster_id` is the id of the directories that are formatted, if any,
    /// so the message can say how to add the others to the same cluster.
    #[error("{}", not_formatted_message(dirs, cluster_id.as_deref()))]
    NotFormatted {
        dirs: Vec<PathBuf>,
        cluster_id: Option<String>,
    },
    /// A version 0 file lacks a key that start-up needs (version 1 files
    /// without them are [`MetaPropertiesError::Garbled`]).
    #[error("{} has no {key}; format the directory again or add {key} to the file", path.display())]
    MissingKey { path: PathBuf, key: &'static str },
    /// `format` was given a cluster id that is not a Kafka UUID.
    #[error("invalid cluster id {id:?}: {reason}; generate one with `riffle storage random-uuid`")]
    InvalidClusterId { id: String, reason: &'static str },
    /// `format` found a directory formatted for another cluster.
    #[error("cluster.id {found} in {} does not match the cluster id {given} being formatted; the directory belongs to another cluster", path.display())]
    OtherCluster {
        path: PathBuf,
        found: String,
        given: String,
    },
    /// `format` found a formatted directory and was not told to skip them.
    #[error("log directory {} is already formatted; use --ignore-formatted to skip formatted directories and format the others", dir.display())]
    AlreadyFormatted { dir: PathBuf },
    #[error("{} has no meta.properties but is not empty (it holds {entry}); refusing to format a directory with data in it", dir.display())]
    NotEmpty { dir: PathBuf, entry: String },
    #[error("no log directory was given")]
    NoDirs,
}

/// The command that formats `dirs`, for the start-up refusal. The server
/// does not know the configuration file's name, so it stands as `<file>`.
fn not_formatted_message(dirs: &[PathBuf], cluster_id: Option<&str>) -> String {
    let list = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let (noun, verb) = if dirs.len() == 1 {
        ("log directory", "is")
    } else {
        ("log directories", "are")
    };
    let command = match cluster_id {
        // Adding directories to a formatted node keeps its cluster id.
        Some(id) => {
            format!("riffle storage format --config <file> --cluster-id {id} --ignore-formatted")
        }
        None => {
            "riffle storage format --config <file> --cluster-id \"$(riffle storage random-uuid)\""
                .to_string()
        }
    };
    format!("{noun} {list} {verb} not formatted; run: {command}")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetaPropertiesError + '_ {
    move |source| MetaPropertiesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The contents of one `meta.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// 0 (ZooKeeper mode, `broker.id`) or 1 (KRaft, `node.id`).
    pub version: u32,
    /// Always present in version 1; optional in version 0.
    pub cluster_id: Option<String>,
    /// `node.id` in version 1, `broker.id` in version 0 (optional there).
    pub node_id: Option<i32>,
    /// Kafka's per-directory id (KIP-858), absent in older files.
    pub directory_id: Option<Uuid>,
}

impl MetaProperties {
    /// A new version 1 file for a directory being formatted.
    pub fn new_v1(cluster_id: String, node_id: i32) -> MetaProperties {
        MetaProperties {
            version: 1,
            cluster_id: Some(cluster_id),
            node_id: Some(node_id),
            directory_id: Some(generate_directory_id()),
        }
    }

    /// The file's text as Riffle writes it (header comment, then
    /// `key=value` lines), with `now` in the header.
    pub fn to_text(&self, now: SystemTime) -> String {
        let mut text = format!("#\n#{}\n", java_date(now));
        if let Some(c) = &self.cluster_id {
            text.push_str(&format!("cluster.id={c}\n"));
        }
        if let Some(d) = &self.directory_id {
            text.push_str(&format!("directory.id={}\n", kafka_uuid_string(d)));
        }
        if let Some(n) = self.node_id {
            let key = if self.version == 0 {
                "broker.id"
            } else {
                "node.id"
            };
            text.push_str(&format!("{key}={n}\n"));
        }
        text.push_str(&format!("version={}\n", self.version));
        text
    }
}

/// The result of [`ensure_formatted`]: the cluster and node every directory
/// agrees on, and each directory's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormattedDirs {
    pub cluster_id: String,
    pub node_id: i32,
    pub dirs: Vec<(PathBuf, MetaProperties)>,
    /// The directories formatted by this call.
    pub newly_formatted: Vec<PathBuf>,
}

/// Kafka's text form of a UUID: URL-safe base64 of the 16 bytes, no padding
/// (22 characters).
pub fn kafka_uuid_string(uuid: &Uuid) -> String {
    URL_SAFE_NO_PAD.encode(uuid.as_bytes())
}

/// Decodes as Java's URL-safe `Base64` decoder does for Kafka's
/// `Uuid.fromString`: padding optional, and bits past the last byte
/// ignored rather than required to be zero. Kafka's documentation uses
/// such an id (`MkU3OEVBNTcwNTJENDM2Qk`), so operators have them.
const KAFKA_UUID_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses Kafka's UUID text: 22 characters of URL-safe base64 (24 with
/// `==` padding, which Kafka also accepts).
pub fn parse_kafka_uuid(text: &str) -> Option<Uuid> {
    if !(text.len() == 22 || (text.len() == 24 && text.ends_with("=="))) {
        return None;
    }
    let bytes = KAFKA_UUID_DECODER.decode(text).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// A random v4 UUID that Kafka's `Uuid.randomUuid` could also return: not
/// reserved (all-zero high half with a low half below 100) and with a text
/// form that does not start with `-`, which command lines would take for
/// an option.
fn random_kafka_uuid() -> Uuid {
    loop {
        let uuid = Uuid::new_v4();
        let (high, low) = uuid.as_u64_pair();
        if high == 0 && low < 100 {
            continue;
        }
        if kafka_uuid_string(&uuid).starts_with('-') {
            continue;
        }
        return uuid;
    }
}

/// A new cluster id, in the form `kafka-storage random-uuid` prints.
pub fn generate_cluster_id() -> String {
    kafka_uuid_string(&random_kafka_uuid())
}

/// A new directory id.
pub fn generate_directory_id() -> Uuid {
    random_kafka_uuid()
}

/// Reads `dir/meta.properties`. `Ok(None)` when the file does not exist.
pub fn read(dir: &Path) -> Result<Option<MetaProperties>, MetaPropertiesError> {
    let path = dir.join(META_PROPERTIES_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    parse(&path, &bytes).map(Some)
}

fn garbled(path: &Path, line: Option<usize>, reason: impl Into<String>) -> MetaPropertiesError {
    MetaPropertiesError::Garbled {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// The 1-based line on which `key` is set, for error messages.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with(['=', ':', ' ', '\t']) || rest.is_empty())
        })
        .map(|i| i + 1)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<MetaProperties, MetaPropertiesError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        garbled(path, Some(line), "not text (invalid UTF-8)")
    })?;
    if text.contains('\0') {
        let line = text[..text.find('\0').unwrap_or(0)].matches('\n').count() + 1;
        return Err(garbled(path, Some(line), "not text (contains NUL bytes)"));
    }
    // Every line Kafka writes is a comment or key=value; anything else
    // means the file was damaged.
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with('!') {
            continue;
        }
        if !t.contains('=') && !t.contains(':') {
            return Err(garbled(
                path,
                Some(i + 1),
                format!("expected key=value, found {t:?}"),
            ));
        }
    }
    let props: BTreeMap<String, String> = parse_properties(text)
        .map_err(|e| match e {
            crate::config::ConfigError::Syntax { line, reason } => {
                garbled(path, Some(line), reason)
            }
            other => garbled(path, None, other.to_string()),
        })?
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect();
    let version = match props.get("version").map(String::as_str) {
        None | Some("0") => 0,
        Some("1") => 1,
        Some(other) => {
            return Err(garbled(
                path,
                line_of(text, "version"),
                format!("unsupported version {other:?} (expected 0 or 1)"),
            ))
        }
    };
    let int = |key: &str| -> Result<Option<i32>, MetaPropertiesError> {
        match props.get(key) {
            None => Ok(None),
            Some(v) => v.parse::<i32>().map(Some).map_err(|_| {
                garbled(
                    path,
                    line_of(text, key),
                    format!("{key}={v} is not a whole number"),
                )
            }),
        }
    };
    let node_id = if version == 0 {
        int("broker.id")?
    } else {
        int("node.id")?
    };
    let cluster_id = props.get("cluster.id").cloned();
    if version == 1 {
        if cluster_id.as_deref().is_none_or(str::is_empty) {
            return Err(garbled(
                path,
                line_of(text, "cluster.id"),
                "cluster.id is missing (required in version 1)",
            ));
        }
        if node_id.is_none() {
            return Err(garbled(
                path,
                None,
                "node.id is missing (required in version 1)",
            ));
        }
    }
    if let Some(n) = node_id {
        if n < 0 {
            let key = if version == 0 { "broker.id" } else { "node.id" };
            return Err(garbled(
                path,
                line_of(text, key),
                format!("{key}={n} is negative"),
            ));
        }
    }
    let directory_id = match props.get("directory.id") {
        None => None,
        Some(v) => Some(parse_kafka_uuid(v).ok_or_else(|| {
            garbled(
                path,
                line_of(text, "directory.id"),
                format!("directory.id={v} is not a Kafka UUID"),
            )
        })?),
    };
    Ok(MetaProperties {
        version,
        cluster_id,
        node_id,
        directory_id,
    })
}

/// Writes `dir/meta.properties` atomically: a temporary file is written
/// and fsynced, renamed into place, and the directory fsynced, so a crash
/// leaves either the old file or the new one.
pub fn write(dir: &Path, meta: &MetaProperties) -> Result<(), MetaPropertiesError> {
    let path = dir.join(META_PROPERTIES_FILE);
    let tmp = dir.join(format!("{META_PROPERTIES_FILE}{TMP_SUFFIX}"));
    let text = meta.to_text(SystemTime::now());
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

/// Entries that do not make a directory "in use": a leftover temporary
/// file from an interrupted format, `lost+found`, and hidden files.
fn first_significant_entry(dir: &Path) -> Result<Option<String>, MetaPropertiesError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == format!("{META_PROPERTIES_FILE}{TMP_SUFFIX}")
            || name == "lost+found"
            || name.starts_with('.')
        {
            continue;
        }
        return Ok(Some(name));
    }
    Ok(None)
}

/// `dirs` without repeats, in their first order.
fn unique_dirs(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, MetaPropertiesError> {
    let mut unique: Vec<PathBuf> = Vec::new();
    for d in dirs {
        if !unique.contains(d) {
            unique.push(d.clone());
        }
    }
    if unique.is_empty() {
        return Err(MetaPropertiesError::NoDirs);
    }
    Ok(unique)
}

/// What the formatted directories agree on, once [`verify`] has passed.
#[derive(Debug, Default)]
struct Ensemble {
    /// The cluster id of the formatted directories, and the first file
    /// that names it.
    cluster: Option<(PathBuf, String)>,
    /// Every directory id in use, with the file that holds it.
    dir_ids: BTreeMap<Uuid, PathBuf>,
}

impl Ensemble {
    /// A directory id no directory of this node uses yet, recorded as
    /// `dir`'s.
    fn new_directory_id(&mut self, dir: &Path) -> Uuid {
        let mut id = generate_directory_id();
        while self.dir_ids.contains_key(&id) {
            id = generate_directory_id();
        }
        self.dir_ids.insert(id, dir.join(META_PROPERTIES_FILE));
        id
    }
}

/// Kafka's `MetaPropertiesEnsemble.verify` over the files found: every
/// node id equals `node_id`, every cluster id equals `given_cluster_id`
/// (when formatting with one) or the first one found, and no two
/// directories share a directory id.
fn verify(
    found: &[(PathBuf, Option<MetaProperties>)],
    node_id: i32,
    given_cluster_id: Option<&str>,
) -> Result<Ensemble, MetaPropertiesError> {
    let mut ensemble = Ensemble::default();
    for (dir, meta) in found {
        let Some(meta) = meta else { continue };
        let path = dir.join(META_PROPERTIES_FILE);
        if let Some(n) = meta.node_id {
            if n != node_id {
                return Err(MetaPropertiesError::NodeIdMismatch {
                    path,
                    found: n,
                    configured: node_id,
                });
            }
        }
        if let Some(c) = &meta.cluster_id {
            if let Some(given) = given_cluster_id {
                if c != given {
                    return Err(MetaPropertiesError::OtherCluster {
                        path,
                        found: c.clone(),
                        given: given.to_string(),
                    });
                }
            }
            match &ensemble.cluster {
                Some((first_path, first)) if first != c => {
                    return Err(MetaPropertiesError::ClusterIdMismatch {
                        first_path: first_path.clone(),
                        first: first.clone(),
                        second_path: path,
                        second: c.clone(),
                    })
                }
                Some(_) => {}
                None => ensemble.cluster = Some((path.clone(), c.clone())),
            }
        }
        if let Some(id) = meta.directory_id {
            if let Some(first_path) = ensemble.dir_ids.insert(id, path.clone()) {
                return Err(MetaPropertiesError::DuplicateDirectoryId {
                    id: kafka_uuid_string(&id),
                    first_path,
                    second_path: path,
                });
            }
        }
    }
    Ok(ensemble)
}

/// Reads the `meta.properties` of every directory, `None` where there is
/// none.
fn read_all(
    dirs: &[PathBuf],
) -> Result<Vec<(PathBuf, Option<MetaProperties>)>, MetaPropertiesError> {
    dirs.iter().map(|d| Ok((d.clone(), read(d)?))).collect()
}

/// The start-up check the broker runs before it opens any log: with
/// `auto_format` (the embedded default) it is [`ensure_formatted`] with a
/// new cluster id for a first start; otherwise every directory must
/// already be formatted ([`verify_formatted`]).
pub fn check_at_startup(
    dirs: &[PathBuf],
    node_id: i32,
    auto_format: bool,
) -> Result<FormattedDirs, MetaPropertiesError> {
    if auto_format {
        ensure_formatted(dirs, node_id, Some(generate_cluster_id()))
    } else {
        verify_formatted(dirs, node_id)
    }
}

/// Kafka's start-up rule: every directory (log dirs and the metadata log
/// dir; repeats are ignored) must hold a `meta.properties` naming the same
/// cluster and `node_id`, with distinct directory ids. Refuses otherwise,
/// naming the directories and the command that formats them. Files are
/// only changed to add a missing `directory.id`. Nothing is created: a
/// missing directory is an unformatted one.
pub fn verify_formatted(
    dirs: &[PathBuf],
    node_id: i32,
) -> Result<FormattedDirs, MetaPropertiesError> {
    let found = read_all(&unique_dirs(dirs)?)?;
    let mut ensemble = verify(&found, node_id, None)?;
    let unformatted: Vec<PathBuf> = found
        .iter()
        .filter(|(_, meta)| meta.is_none())
        .map(|(d, _)| d.clone())
        .collect();
    if !unformatted.is_empty() {
        return Err(MetaPropertiesError::NotFormatted {
            dirs: unformatted,
            cluster_id: ensemble.cluster.map(|(_, c)| c),
        });
    }
    let mut result = FormattedDirs {
        cluster_id: String::new(),
        node_id,
        dirs: Vec::new(),
        newly_formatted: Vec::new(),
    };
    for (dir, meta) in found {
        let Some(mut meta) = meta else {
            unreachable!("unformatted directories were refused above");
        };
        let path = dir.join(META_PROPERTIES_FILE);
        // Kafka refuses these too ("cluster ID not found"); only version
        // 0 files can lack them, version 1 ones do not parse without them.
        if meta.node_id.is_none() {
            return Err(MetaPropertiesError::MissingKey {
                path,
                key: "broker.id",
            });
        }
        let Some(cluster_id) = meta.cluster_id.clone() else {
            return Err(MetaPropertiesError::MissingKey {
                path,
                key: "cluster.id",
            });
        };
        if meta.directory_id.is_none() {
            meta.directory_id = Some(ensemble.new_directory_id(&dir));
            write(&dir, &meta)?;
        }
        result.cluster_id = cluster_id;
        result.dirs.push((dir, meta));
    }
    debug_assert!(!result.cluster_id.is_empty());
    Ok(result)
}

/// Checks, and on first start creates, the `meta.properties` of every
/// directory (log dirs and the metadata log dir; repeats are ignored).
///
/// Refuses when a file's node id differs from `node_id`, when two files
/// name different clusters or share a directory id, when a file is garbled,
/// or when nothing is formatted and `cluster_id_if_new` is `None`. Missing
/// directories are created. An unformatted directory that already holds
/// files is refused rather than adopted.
pub fn ensure_formatted(
    dirs: &[PathBuf],
    node_id: i32,
    cluster_id_if_new: Option<String>,
) -> Result<FormattedDirs, MetaPropertiesError> {
    let unique = unique_dirs(dirs)?;
    for dir in &unique {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let found = read_all(&unique)?;
    let mut ensemble = verify(&found, node_id, None)?;

    let cluster_id = match (ensemble.cluster.take(), cluster_id_if_new) {
        (Some((_, c)), _) => c,
        (None, Some(c)) => c,
        (None, None) => {
            return Err(MetaPropertiesError::NotFormatted {
                dirs: found.iter().map(|(d, _)| d.clone()).collect(),
                cluster_id: None,
            })
        }
    };

    let mut result = FormattedDirs {
        cluster_id: cluster_id.clone(),
        node_id,
        dirs: Vec::new(),
        newly_formatted: Vec::new(),
    };
    for (dir, meta) in found {
        let meta = match meta {
            Some(mut meta) => {
                // Complete older files as Kafka does: a missing directory id
                // (or, in version 0, cluster id / broker id) is filled in.
                let mut changed = false;
                if meta.directory_id.is_none() {
                    meta.directory_id = Some(ensemble.new_directory_id(&dir));
                    changed = true;
                }
                if meta.cluster_id.is_none() {
                    meta.cluster_id = Some(cluster_id.clone());
                    changed = true;
                }
                if meta.node_id.is_none() {
                    meta.node_id = Some(node_id);
                    changed = true;
                }
                if changed {
                    write(&dir, &meta)?;
                }
                meta
            }
            None => {
                if let Some(entry) = first_significant_entry(&dir)? {
                    return Err(MetaPropertiesError::NotEmpty { dir, entry });
                }
                let mut meta = MetaProperties::new_v1(cluster_id.clone(), node_id);
                meta.directory_id = Some(ensemble.new_directory_id(&dir));
                write(&dir, &meta)?;
                result.newly_formatted.push(dir.clone());
                meta
            }
        };
        result.dirs.push((dir, meta));
    }
    Ok(result)
}

/// What [`format`] did with one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatOutcome {
    /// The directory had no `meta.properties`; it now has this one.
    Formatted { dir: PathBuf, meta: MetaProperties },
    /// The directory was already formatted for this cluster and node and
    /// was left alone (`--ignore-formatted`).
    AlreadyFormatted { dir: PathBuf, meta: MetaProperties },
}

/// Checks that `id` can be a cluster id: a Kafka UUID (22 characters of
/// URL-safe base64) that is not one of the reserved values Kafka's
/// `Uuid.randomUuid` never returns (all-zero high half, low half below 100).
pub fn validate_cluster_id(id: &str) -> Result<Uuid, MetaPropertiesError> {
    let invalid = |reason| MetaPropertiesError::InvalidClusterId {
        id: id.to_string(),
        reason,
    };
    let uuid = parse_kafka_uuid(id)
        .ok_or_else(|| invalid("expected 22 characters of URL-safe base64 (a Kafka UUID)"))?;
    let (high, low) = uuid.as_u64_pair();
    if high == 0 && low < 100 {
        return Err(invalid("it is one of Kafka's reserved UUIDs"));
    }
    Ok(uuid)
}

/// `riffle storage format`, Kafka's `kafka-storage format`: gives every
/// directory in `dirs` (repeats are ignored) a version 1 `meta.properties`
/// with `cluster_id`, `node_id` and a new directory id, creating missing
/// directories.
///
/// Checks everything before writing anything, so a refusal leaves every
/// directory as it was. Refuses an invalid cluster id; formatted
/// directories whose node id or cluster id differ from the ones given, or
/// that share a directory id (even with `ignore_formatted`); any formatted
/// directory unless `ignore_formatted`; an unformatted directory that
/// already holds files; and a garbled file. Returns one outcome per
/// directory, in the order given.
pub fn format(
    dirs: &[PathBuf],
    cluster_id: &str,
    node_id: i32,
    ignore_formatted: bool,
) -> Result<Vec<FormatOutcome>, MetaPropertiesError> {
    validate_cluster_id(cluster_id)?;
    assert!(
        node_id >= 0,
        "node.id {node_id} passed configuration checks"
    );
    let found = read_all(&unique_dirs(dirs)?)?;
    let mut ensemble = verify(&found, node_id, Some(cluster_id))?;
    if !ignore_formatted {
        if let Some((dir, _)) = found.iter().find(|(_, meta)| meta.is_some()) {
            return Err(MetaPropertiesError::AlreadyFormatted { dir: dir.clone() });
        }
    }
    for (dir, meta) in &found {
        if meta.is_none() && dir.exists() {
            if let Some(entry) = first_significant_entry(dir)? {
                return Err(MetaPropertiesError::NotEmpty {
                    dir: dir.clone(),
                    entry,
                });
            }
        }
    }
    let mut outcomes = Vec::with_capacity(found.len());
    for (dir, meta) in found {
        let outcome = match meta {
            Some(meta) => FormatOutcome::AlreadyFormatted { dir, meta },
            None => {
                fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                let mut meta = MetaProperties::new_v1(cluster_id.to_string(), node_id);
                meta.directory_id = Some(ensemble.new_directory_id(&dir));
                write(&dir, &meta)?;
                FormatOutcome::Formatted { dir, meta }
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// `java.util.Date.toString()` in UTC: `Thu Mar 14 10:01:02 UTC 2024`.
fn java_date(now: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        year
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        for _ in 0..200 {
            let id = generate_cluster_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            let uuid = parse_kafka_uuid(&id).expect("parses back");
            assert_eq!(kafka_uuid_string(&uuid), id);
        }
    }

    #[test]
    fn date_header_matches_java_format() {
        // 2024-03-14T10:01:02Z was a Thursday.
        let t = UNIX_EPOCH + Duration::from_secs(1_710_410_462);
        assert_eq!(java_date(t), "Thu Mar 14 10:01:02 UTC 2024");
        assert_eq!(java_date(UNIX_EPOCH), "Thu Jan 01 00:00:00 UTC 1970");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(java_date(t), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn text_round_trips() {
        let meta = MetaProperties::new_v1(generate_cluster_id(), 7);
        let text = meta.to_text(SystemTime::now());
        assert!(text.starts_with("#\n#"));
        let parsed = parse(Path::new("x/meta.properties"), text.as_bytes()).expect("parses");
        assert_eq!(parsed, meta);
    }

    #[test]
    fn reads_a_kafka_written_file() {
        let text = "#\n#Thu Mar 14 10:01:02 UTC 2024\nnode.id=1\ndirectory.id=7PDu0jVxRGOVMnAHrJ0DJQ\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n";
        let meta = parse(Path::new("m"), text.as_bytes()).expect("parses");
        assert_eq!(meta.version, 1);
        assert_eq!(meta.node_id, Some(1));
        assert_eq!(meta.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
        assert_eq!(
            meta.directory_id.map(|d| kafka_uuid_string(&d)).as_deref(),
            Some("7PDu0jVxRGOVMnAHrJ0DJQ")
        );
    }

    #[test]
    fn garbled_files_name_the_line() {
        let err = parse(
            Path::new("/d/meta.properties"),
            b"#\nversion=1\nnode.id=x\ncluster.id=a\n",
        )
        .expect_err("bad node id")
        .to_string();
        assert!(err.contains("/d/meta.properties line 3"), "{err}");
        let err = parse(
            Path::new("/d/meta.properties"),
            b"version=1\nnode.id=1\ncluster.id=a\n\x07garbage\n",
        )
        .expect_err("bad line")
        .to_string();
        assert!(err.contains("line 4"), "{err}");
        let err = parse(
            Path::new("/d/meta.properties"),
            b"version=1\nnode.id=1\ncl\xffuster.id=a\n",
        )
        .expect_err("not utf-8")
        .to_string();
        assert!(err.contains("line 3"), "{err}");
        let err = parse(Path::new("/d/meta.properties"), b"version=2\n")
            .expect_err("version")
            .to_string();
        assert!(err.contains("line 1") && err.contains("version"), "{err}");
        let err = parse(Path::new("/d/meta.properties"), b"version=1\nnode.id=1\n")
            .expect_err("no cluster")
            .to_string();
        assert!(err.contains("cluster.id"), "{err}");
    }
}

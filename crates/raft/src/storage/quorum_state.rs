//! Kafka's `quorum-state` file: the durable election state.
//!
//! The file is one line of JSON: the `QuorumStateData` message in Kafka's
//! JSON converter form plus a `data_version` field, with no trailing
//! newline. We write version 0, the version Kafka writes for static voters
//! (`kraft.version` 0):
//!
//! ```text
//! {"clusterId":"","leaderId":1,"leaderEpoch":2,"votedId":-1,"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2}],"data_version":0}
//! ```
//!
//! and read versions 0 and 1 (`kraft.version` 1 drops `clusterId`,
//! `appliedOffset` and `currentVoters` and adds `votedDirectoryId`). As in
//! Kafka's generated converter, a field of the file's version must be
//! present, a field of another version must be absent, and unknown fields
//! are ignored. A leader or voted id of -1 means none.
//!
//! A write goes to `quorum-state.tmp`, is fsynced, renamed over
//! `quorum-state`, and the directory is fsynced: a crash leaves the old or
//! the new state, never a torn file. A file that cannot be read is an
//! error naming it; the node refuses to start rather than forget a vote.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::{corrupt, io_error, sync_dir, Result};
use crate::types::{ElectionState, NodeId};

/// The file's name inside `__cluster_metadata-0`.
pub const FILE_NAME: &str = "quorum-state";
/// The data versions this module reads; it writes the lowest.
pub const DATA_VERSION_MIN: i64 = 0;
pub const DATA_VERSION_MAX: i64 = 1;

const NONE: i32 = -1;

/// Version 0, fields in the order Kafka's converter writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuorumStateV0<'a> {
    cluster_id: &'a str,
    leader_id: i32,
    leader_epoch: i32,
    voted_id: i32,
    applied_offset: i64,
    current_voters: Vec<Voter>,
    #[serde(rename = "data_version")]
    data_version: i16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Voter {
    voter_id: i32,
}

/// The file's text for `state`: version 0 JSON, voters ascending.
pub fn encode(state: &ElectionState) -> String {
    assert!(state.epoch >= 0, "negative epoch in {state:?}");
    let data = QuorumStateV0 {
        cluster_id: "",
        leader_id: state.leader_id.unwrap_or(NONE),
        leader_epoch: state.epoch,
        voted_id: state.voted_id.unwrap_or(NONE),
        applied_offset: 0,
        current_voters: state
            .voters
            .iter()
            .map(|&voter_id| Voter { voter_id })
            .collect(),
        data_version: 0,
    };
    serde_json::to_string(&data).expect("a struct of numbers and strings serializes")
}

/// Parses the file's text. The error says what is wrong. The voter set of
/// a version 1 file is empty: that version keeps voters in the log.
pub fn decode(text: &str) -> Result<ElectionState, String> {
    // Kafka reads the first line only.
    let line = text
        .lines()
        .next()
        .filter(|l| !l.trim().is_empty())
        .ok_or("the file is empty")?;
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON (torn write?): {e}"))?;
    let Value::Object(map) = value else {
        return Err(format!("expected a JSON object, found {value}"));
    };
    let version = match map.get("data_version") {
        None => return Err("no data_version field".into()),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("data_version {v} is not an integer"))?,
    };
    if !(DATA_VERSION_MIN..=DATA_VERSION_MAX).contains(&version) {
        return Err(format!(
            "data_version {version} is not between {DATA_VERSION_MIN} and {DATA_VERSION_MAX}"
        ));
    }
    let fields = Fields { map: &map, version };
    // Fields of the other version must be absent; check them first so the
    // error names the real problem.
    let (this, other): (&[&str], &[&str]) = if version == 0 {
        (
            &[
                "clusterId",
                "leaderId",
                "leaderEpoch",
                "votedId",
                "appliedOffset",
                "currentVoters",
            ],
            &["votedDirectoryId"],
        )
    } else {
        (
            &["leaderId", "leaderEpoch", "votedId", "votedDirectoryId"],
            &["clusterId", "appliedOffset", "currentVoters"],
        )
    };
    for name in other {
        if map.contains_key(*name) {
            return Err(format!(
                "field {name} is not part of data_version {version}"
            ));
        }
    }
    for name in this {
        fields.get(name)?;
    }
    let epoch = fields.int("leaderEpoch", i64::from(i32::MIN), i64::from(i32::MAX))? as i32;
    if epoch < 0 {
        return Err(format!("leaderEpoch {epoch} is negative"));
    }
    let leader_id = fields.node_id("leaderId")?;
    let voted_id = fields.node_id("votedId")?;
    let mut voters = BTreeSet::new();
    if version == 0 {
        if !fields.get("clusterId")?.is_string() {
            return Err("clusterId is not a string".into());
        }
        fields.int("appliedOffset", i64::MIN, i64::MAX)?;
        match fields.get("currentVoters")? {
            Value::Null => {}
            Value::Array(list) => {
                for voter in list {
                    let id = voter
                        .get("voterId")
                        .and_then(Value::as_i64)
                        .filter(|id| (0..=i64::from(i32::MAX)).contains(id))
                        .ok_or_else(|| format!("bad entry {voter} in currentVoters"))?;
                    voters.insert(id as NodeId);
                }
            }
            other => return Err(format!("currentVoters {other} is not an array")),
        }
    } else if !fields.get("votedDirectoryId")?.is_string() {
        return Err("votedDirectoryId is not a string".into());
    }
    Ok(ElectionState {
        epoch,
        leader_id,
        voted_id,
        voters,
    })
}

struct Fields<'a> {
    map: &'a Map<String, Value>,
    version: i64,
}

impl Fields<'_> {
    fn get(&self, name: &str) -> Result<&Value, String> {
        self.map.get(name).ok_or_else(|| {
            format!(
                "field {name} is missing; it is mandatory in data_version {}",
                self.version
            )
        })
    }

    fn int(&self, name: &str, min: i64, max: i64) -> Result<i64, String> {
        let v = self.get(name)?;
        v.as_i64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("{name} {v} is not an integer in [{min}, {max}]"))
    }

    /// A node id, or -1 for none.
    fn node_id(&self, name: &str) -> Result<Option<NodeId>, String> {
        let id = self.int(name, i64::from(NONE), i64::from(i32::MAX))? as i32;
        Ok((id != NONE).then_some(id))
    }
}

/// The `quorum-state` file of one metadata partition directory.
#[derive(Debug, Clone)]
pub struct QuorumStateFile {
    path: PathBuf,
}

impl QuorumStateFile {
    /// The file in `partition_dir` (`<metadata.log.dir>/__cluster_metadata-0`).
    pub fn new(partition_dir: &Path) -> QuorumStateFile {
        QuorumStateFile {
            path: partition_dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tmp_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    }

    /// The persisted state; `None` when there is no file (first start).
    /// An unreadable file is [`StorageError::Corrupt`](super::StorageError)
    /// naming it and what is wrong.
    pub fn read(&self) -> Result<Option<ElectionState>> {
        let text = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&self.path)(e)),
        };
        let text = std::str::from_utf8(&text)
            .map_err(|e| corrupt(&self.path, format!("not UTF-8: {e}")))?;
        decode(text)
            .map(Some)
            .map_err(|reason| corrupt(&self.path, reason))
    }

    /// Makes `state` durable: on return it survives a crash.
    pub fn write(&self, state: &ElectionState) -> Result<()> {
        let text = encode(state);
        let tmp = self.tmp_path();
        let written = (|| {
            let mut f = fs::File::create(&tmp).map_err(io_error(&tmp))?;
            f.write_all(text.as_bytes()).map_err(io_error(&tmp))?;
            f.sync_all().map_err(io_error(&tmp))?;
            drop(f);
            fs::rename(&tmp, &self.path).map_err(io_error(&self.path))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_kafka() {
        let state = ElectionState {
            epoch: 2,
            leader_id: Some(1),
            voted_id: None,
            voters: BTreeSet::from([3, 1, 2]),
        };
        assert_eq!(
            encode(&state),
            r#"{"clusterId":"","leaderId":1,"leaderEpoch":2,"votedId":-1,"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}"#
        );
        assert_eq!(decode(&encode(&state)), Ok(state));
    }

    #[test]
    fn reads_version_1() {
        let text = r#"{"leaderId":-1,"leaderEpoch":2,"votedId":1,"votedDirectoryId":"J8aAPcfLQt2bqs1JT_rMgQ","data_version":1}"#;
        assert_eq!(
            decode(text),
            Ok(ElectionState {
                epoch: 2,
                leader_id: None,
                voted_id: Some(1),
                voters: BTreeSet::new(),
            })
        );
    }

    #[test]
    fn refuses_what_kafka_refuses() {
        let cases = [
            ("", "empty"),
            (
                r#"{"clusterId":"","leaderId":1,"leaderEp"#,
                "not valid JSON",
            ),
            ("[1]", "expected a JSON object"),
            (r#"{"leaderId":1}"#, "no data_version"),
            (
                r#"{"leaderId":9990,"leaderEpoch":3012,"votedId":-1,"appliedOffset": 0,"currentVoters":[],"data_version":2}"#,
                "data_version 2",
            ),
            (
                r#"{"leaderId":1,"leaderEpoch":2,"votedId":-1,"appliedOffset":0,"currentVoters":[],"data_version":0}"#,
                "clusterId is missing",
            ),
            (
                r#"{"clusterId":"","leaderId":1,"leaderEpoch":2,"votedId":-1,"votedDirectoryId":"AAAAAAAAAAAAAAAAAAAAAA","data_version":1}"#,
                "clusterId is not part of data_version 1",
            ),
            (
                r#"{"clusterId":"","leaderId":-2,"leaderEpoch":2,"votedId":-1,"appliedOffset":0,"currentVoters":[],"data_version":0}"#,
                "leaderId -2",
            ),
        ];
        for (text, expected) in cases {
            let err = decode(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn null_voters_are_an_empty_set() {
        let text = r#"{"clusterId":"","leaderId":-1,"leaderEpoch":0,"votedId":-1,"appliedOffset":0,"currentVoters":null,"data_version":0}"#;
        assert_eq!(decode(text).map(|s| s.voters), Ok(BTreeSet::new()));
    }
}

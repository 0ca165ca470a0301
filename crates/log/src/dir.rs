//! A log directory (`log.dirs` entry): partition directories named
//! `<topic>-<partition>`, the clean-shutdown marker, and the directory-level
//! checkpoints `recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint` and `cleaner-offset-checkpoint`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::log::{LoadState, Log};

/// Kafka's clean-shutdown marker file.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";

/// A topic name and partition number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a partition directory name; `None` for anything else
    /// (including Kafka's `-delete`, `-future` and `-stray` directories).
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(TopicPartition::new(topic, partition.parse().ok()?))
    }
}

/// The directory of the cluster metadata log (`__cluster_metadata-0`),
/// which [`LogDir`] leaves alone.
pub const METADATA_LOG_DIR_NAME: &str = "__cluster_metadata-0";

/// The logs of one directory and its checkpoints.
#[derive(Debug)]
pub struct LogDir {
    path: PathBuf,
    logs: BTreeMap<TopicPartition, Log>,
}

fn read_offsets(path: &Path) -> Result<BTreeMap<TopicPartition, i64>> {
    let mut out = BTreeMap::new();
    let Some(lines) = checkpoint::read(path)? else {
        return Ok(out);
    };
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        let parsed = match parts.as_slice() {
            [topic, partition, offset] => partition
                .parse()
                .ok()
                .zip(offset.parse().ok())
                .map(|(p, o)| (TopicPartition::new(*topic, p), o)),
            _ => None,
        };
        let Some((tp, offset)) = parsed else {
            return Err(LogError::CorruptFile {
                path: path.to_path_buf(),
                reason: format!("bad entry '{line}'"),
            });
        };
        out.insert(tp, offset);
    }
    Ok(out)
}

/// Reads a directory checkpoint; a corrupt one is ignored with a warning
/// (the logs it covers are then recovered from scratch), as losing it only
/// costs recovery time.
fn read_offsets_or_warn(path: &Path) -> BTreeMap<TopicPartition, i64> {
    read_offsets(path).unwrap_or_else(|e| {
        warn!("ignoring checkpoint: {e}");
        BTreeMap::new()
    })
}

impl LogDir {
    /// Opens every partition directory in `path` (creating `path` if
    /// needed). `config_for` gives each partition's topic config. The
    /// clean-shutdown marker is consumed: from here on a crash is unclean.
    pub fn open(
        path: &Path,
        mut config_for: impl FnMut(&TopicPartition) -> LogConfig,
        now_ms: i64,
    ) -> Result<LogDir> {
        fs::create_dir_all(path).map_err(LogError::io(path))?;
        let marker = path.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let recovery_points = read_offsets_or_warn(&path.join(RECOVERY_POINT_FILE));
        let start_offsets = read_offsets_or_warn(&path.join(LOG_START_OFFSET_FILE));
        let dirty_offsets = read_offsets_or_warn(&path.join(CLEANER_OFFSET_FILE));
        let mut logs = BTreeMap::new();
        let mut names: Vec<(TopicPartition, PathBuf)> = Vec::new();
        for entry in fs::read_dir(path).map_err(LogError::io(path))? {
            let entry = entry.map_err(LogError::io(path))?;
            if !entry
                .file_type()
                .map_err(LogError::io(entry.path()))?
                .is_dir()
            {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == METADATA_LOG_DIR_NAME {
                // The metadata log belongs to the metadata layer, which
                // opens and recovers it itself.
                continue;
            }
            if name.ends_with("-delete") {
                info!(dir = %entry.path().display(), "removing a partition directory left from a deletion");
                fs::remove_dir_all(entry.path()).map_err(LogError::io(entry.path()))?;
                continue;
            }
            match TopicPartition::from_dir_name(&name) {
                Some(tp) => names.push((tp, entry.path())),
                None => {
                    warn!(dir = %entry.path().display(), "skipping a directory that is not a partition")
                }
            }
        }
        for (tp, dir) in names {
            // Without a clean shutdown, a log missing from the recovery
            // checkpoint is recovered from its first segment.
            let state = LoadState {
                recovery_point: recovery_points.get(&tp).copied().unwrap_or(0),
                log_start_offset: start_offsets.get(&tp).copied().unwrap_or(0),
                had_clean_shutdown: clean && recovery_points.contains_key(&tp),
                now_ms,
            };
            let mut log = Log::open(&dir, config_for(&tp), state)?;
            if let Some(dirty) = dirty_offsets.get(&tp) {
                log.first_dirty_offset =
                    (*dirty).clamp(log.log_start_offset(), log.log_end_offset());
            }
            logs.insert(tp, log);
        }
        if clean {
            fs::remove_file(&marker).map_err(LogError::io(&marker))?;
            checkpoint::sync_dir(path)?;
        }
        Ok(LogDir {
            path: path.to_path_buf(),
            logs,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn get(&self, tp: &TopicPartition) -> Option<&Log> {
        self.logs.get(tp)
    }
    pub fn get_mut(&mut self, tp: &TopicPartition) -> Option<&mut Log> {
        self.logs.get_mut(tp)
    }
    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.logs.keys()
    }

    /// Returns the partition's log, creating an empty one if needed.
    pub fn get_or_create(
        &mut self,
        tp: &TopicPartition,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<&mut Log> {
        if !self.logs.contains_key(tp) {
            let dir = self.path.join(tp.dir_name());
            let log = Log::open(&dir, config, LoadState::unclean(now_ms))?;
            checkpoint::sync_dir(&self.path)?;
            self.logs.insert(tp.clone(), log);
        }
        Ok(self.logs.get_mut(tp).expect("inserted above"))
    }

    /// Deletes a partition: its directory is first renamed with a `-delete`
    /// suffix, so a crash midway finishes the deletion at the next open.
    pub fn delete(&mut self, tp: &TopicPartition) -> Result<bool> {
        let Some(log) = self.logs.remove(tp) else {
            return Ok(false);
        };
        let from = log.dir().to_path_buf();
        drop(log);
        let to = self
            .path
            .join(format!("{}.{}-delete", tp.dir_name(), std::process::id()));
        fs::rename(&from, &to).map_err(LogError::io(&from))?;
        checkpoint::sync_dir(&self.path)?;
        fs::remove_dir_all(&to).map_err(LogError::io(&to))?;
        self.checkpoint()?;
        Ok(true)
    }

    /// Writes the recovery-point, log-start-offset and cleaner checkpoints.
    pub fn checkpoint(&self) -> Result<()> {
        let lines = |f: &dyn Fn(&Log) -> i64| -> Vec<String> {
            self.logs
                .iter()
                .map(|(tp, log)| format!("{} {} {}", tp.topic, tp.partition, f(log)))
                .collect()
        };
        checkpoint::write(
            &self.path.join(RECOVERY_POINT_FILE),
            &lines(&|l| l.recovery_point()),
        )?;
        checkpoint::write(
            &self.path.join(LOG_START_OFFSET_FILE),
            &lines(&|l| l.log_start_offset()),
        )?;
        checkpoint::write(
            &self.path.join(CLEANER_OFFSET_FILE),
            &lines(&|l| l.first_dirty_offset),
        )?;
        Ok(())
    }

    /// Closes every log (sealing and flushing it), writes the checkpoints,
    /// then the clean-shutdown marker, in that order.
    pub fn close(mut self, now_ms: i64) -> Result<()> {
        for log in self.logs.values_mut() {
            log.flush(now_ms)?;
        }
        self.checkpoint()?;
        for (_, log) in std::mem::take(&mut self.logs) {
            log.close(now_ms)?;
        }
        let marker = self.path.join(CLEAN_SHUTDOWN_FILE);
        fs::write(&marker, b"{\"version\":0,\"brokerEpoch\":-1}").map_err(LogError::io(&marker))?;
        fs::File::open(&marker)
            .and_then(|f| f.sync_all())
            .map_err(LogError::io(&marker))?;
        checkpoint::sync_dir(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names() {
        assert_eq!(
            TopicPartition::from_dir_name("my-topic-12"),
            Some(TopicPartition::new("my-topic", 12))
        );
        assert_eq!(TopicPartition::from_dir_name("topic-0.abc-delete"), None);
        assert_eq!(TopicPartition::from_dir_name("nodash"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::new("a.b_c", 3).dir_name(), "a.b_c-3");
    }
}

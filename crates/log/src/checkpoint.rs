//! Kafka's checkpoint files: a version line, a count line, then one entry per
//! line. Used for `leader-epoch-checkpoint` ("epoch startOffset") and the log
//! directory's `recovery-point-offset-checkpoint` and
//! `log-start-offset-checkpoint` ("topic partition offset").
//!
//! Writes go to a temporary file that is fsynced and renamed over the old
//! one, then the directory is fsynced, so a crash leaves the old or the new
//! file, never a torn one.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{LogError, Result};

const VERSION: u32 = 0;

/// Writes `lines` as a version-0 checkpoint file, atomically.
pub fn write(path: &Path, lines: &[String]) -> Result<()> {
    let mut text = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp).map_err(LogError::io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(LogError::io(&tmp))?;
        f.sync_all().map_err(LogError::io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(LogError::io(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads a checkpoint file's entry lines; `None` if there is no file.
pub fn read(path: &Path) -> Result<Option<Vec<String>>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(path)(e)),
    };
    let corrupt = |reason: String| LogError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let version = lines.next().ok_or_else(|| corrupt("empty file".into()))?;
    if version.trim() != VERSION.to_string() {
        return Err(corrupt(format!("unsupported version '{version}'")));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("missing or bad entry count".into()))?;
    let entries: Vec<String> = lines.map(str::to_string).collect();
    if entries.len() != count {
        return Err(corrupt(format!(
            "declares {count} entries but has {}",
            entries.len()
        )));
    }
    Ok(Some(entries))
}

/// fsyncs a directory so that renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io(dir))
}

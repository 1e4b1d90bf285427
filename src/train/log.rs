//! The training log: one JSON object per line (`gconv train --log FILE`), written as the run
//! goes and read back by `gconv plot` for loss and accuracy curves.
//!
//! | `"kind"` | fields |
//! |---|---|
//! | `"run"` | `model`, `conv`, `groups`, `seed`, `input`, `device`, … (one per start or resume) |
//! | `"step"` | `epoch`, `step` (global), `loss` (the batch's), `lr` |
//! | `"epoch"` | `epoch`, `train_loss`, `train_acc`, `val_loss`, `val_acc`, `images_per_s`, `flgc` |
//! | `"test"` | `test_loss`, `test_acc`, `test_n` |
//!
//! Lines are appended whole (one `write` each), so a crash leaves at most one partial last
//! line, which [`read_log`] ignores. A run that goes on from a checkpoint (`--resume`, or
//! after a lost device) logs the epochs and steps after it again; [`read_log`] keeps the
//! last record of each, so every step and epoch appears once, as the run that finished did it.

use crate::error::{Error, Result};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest log file [`read_log`] reads (a long run logs ~100 bytes per step).
pub const MAX_LOG_BYTES: u64 = 256 << 20;

/// An open training log.
#[derive(Debug)]
pub struct TrainLog {
    file: File,
    path: PathBuf,
}

impl TrainLog {
    /// Creates `path` (replacing it), or appends to it when `resume` is set.
    pub fn open(path: &Path, resume: bool) -> Result<Self> {
        let mut o = OpenOptions::new();
        if resume {
            o.append(true).create(true);
        } else {
            o.write(true).create(true).truncate(true);
        }
        let file = o.open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends `record` with `"kind": kind` as one line.
    pub fn write(&mut self, kind: &str, mut record: Value) -> Result<()> {
        if let Value::Object(m) = &mut record {
            m.insert("kind".into(), Value::from(kind));
        }
        let mut line = record.to_string();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// One epoch's record of a log.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    /// Epoch number (from 1).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (0–1).
    pub train_acc: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy (0–1).
    pub val_acc: f64,
}

/// What [`read_log`] found in a log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunLog {
    /// The last `"run"` record (what was trained).
    pub run: Option<Value>,
    /// Epoch records in file order; a resumed run's repeated epochs keep the last.
    pub epochs: Vec<EpochRecord>,
    /// `(global step, batch loss)` of every `"step"` record.
    pub steps: Vec<(usize, f64)>,
    /// The `"test"` record, if the run finished.
    pub test: Option<Value>,
}

impl RunLog {
    /// A short name for the run: `model conv G=g seed s` from its `"run"` record.
    pub fn label(&self, fallback: &str) -> String {
        let Some(r) = &self.run else {
            return fallback.to_string();
        };
        let s = |k: &str| r.get(k).map(|v| v.to_string().replace('"', ""));
        match (s("conv"), s("groups"), s("seed")) {
            (Some(c), Some(g), Some(seed)) if c != "dense" => format!("{c} G={g} seed {seed}"),
            (Some(c), _, Some(seed)) => format!("{c} seed {seed}"),
            _ => fallback.to_string(),
        }
    }
}

/// Reads a training log. Unknown kinds are skipped; a malformed line is an error naming the
/// file and line, except a partial last line (a run killed mid-write), which is ignored.
pub fn read_log(path: &Path) -> Result<RunLog> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() || meta.len() > MAX_LOG_BYTES {
        return Err(Error::format(
            path,
            format!("not a training log (a regular file of at most {MAX_LOG_BYTES} bytes)"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut log = RunLog::default();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(Error::format(path, format!("line {}: {e}", i + 1))),
        };
        let num = |k: &str| -> Result<f64> {
            v.get(k)
                .and_then(Value::as_f64)
                .ok_or_else(|| Error::format(path, format!("line {}: no number `{k}`", i + 1)))
        };
        match v.get("kind").and_then(Value::as_str) {
            Some("run") => log.run = Some(v.clone()),
            Some("test") => log.test = Some(v.clone()),
            Some("step") => {
                // A step number at or below the last one: the run went back to a
                // checkpoint, and what follows replaces the steps logged since.
                let step = num("step")? as usize;
                while log.steps.last().is_some_and(|&(s, _)| s >= step) {
                    log.steps.pop();
                }
                log.steps.push((step, num("loss")?));
            }
            Some("epoch") => {
                let r = EpochRecord {
                    epoch: num("epoch")? as usize,
                    train_loss: num("train_loss")?,
                    train_acc: num("train_acc")?,
                    val_loss: num("val_loss")?,
                    val_acc: num("val_acc")?,
                };
                log.epochs.retain(|e| e.epoch < r.epoch);
                log.epochs.push(r);
            }
            _ => {}
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scratch_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gconv-log-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_resume_and_partial_last_line() {
        let dir = scratch_dir("round-trip");
        let p = dir.join("run.jsonl");
        let mut log = TrainLog::open(&p, false).unwrap();
        log.write("run", json!({"conv": "flgc", "groups": 4, "seed": 1}))
            .unwrap();
        log.write("step", json!({"step": 1, "loss": 2.5})).unwrap();
        for e in 1..=2 {
            let r = json!({"epoch": e, "train_loss": 1.0 / e as f64, "train_acc": 0.5,
                "val_loss": 1.2, "val_acc": 0.4});
            log.write("epoch", r).unwrap();
        }
        drop(log);
        // Resumed after epoch 1: epoch 2 is logged again and replaces the first one.
        let mut log = TrainLog::open(&p, true).unwrap();
        let r = json!({"epoch": 2, "train_loss": 0.1, "train_acc": 0.9, "val_loss": 0.2,
            "val_acc": 0.8});
        log.write("epoch", r).unwrap();
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"kind\": \"epo").unwrap();
        let got = read_log(&p).unwrap();
        assert_eq!(got.epochs.len(), 2);
        assert_eq!(got.epochs[1].val_acc, 0.8);
        assert_eq!(got.steps, vec![(1, 2.5)]);
        assert_eq!(got.label("x"), "flgc G=4 seed 1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn steps_logged_again_after_a_restart_replace_the_lost_ones() {
        let dir = scratch_dir("restart");
        let p = dir.join("run.jsonl");
        let mut log = TrainLog::open(&p, false).unwrap();
        for s in 1..=5 {
            log.write("step", json!({"step": s, "loss": 1.0})).unwrap();
        }
        // The device was lost during step 6's epoch; the run went back to step 3.
        for s in 4..=7 {
            log.write("step", json!({"step": s, "loss": 0.5})).unwrap();
        }
        drop(log);
        let got = read_log(&p).unwrap();
        let steps: Vec<usize> = got.steps.iter().map(|&(s, _)| s).collect();
        assert_eq!(steps, (1..=7).collect::<Vec<_>>());
        assert_eq!(got.steps[2], (3, 1.0));
        assert_eq!(got.steps[3], (4, 0.5));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let dir = scratch_dir("malformed");
        let p = dir.join("bad.jsonl");
        std::fs::write(&p, "{\"kind\":\"epoch\",\"epoch\":1}\n").unwrap();
        let e = read_log(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("train_loss"), "{e}");
        std::fs::write(&p, "not json\n{}\n").unwrap();
        assert!(read_log(&p).unwrap_err().to_string().contains("line 1"));
        assert!(read_log(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

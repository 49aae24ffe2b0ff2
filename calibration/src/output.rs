//! All-or-nothing output: files are written into a private staging directory inside the output
//! directory and renamed into place only when the whole run succeeded.

use crate::error::{CalibError, Result};
use std::path::{Path, PathBuf};

/// A staging directory; dropped without [`Staging::commit`], it is removed with its files (and
/// the output directory too, if this run created it).
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    tmp: PathBuf,
    created_out: bool,
    files: Vec<PathBuf>,
    done: bool,
}

impl Staging {
    pub fn new(out: &Path) -> Result<Self> {
        let created_out = !out.exists();
        if out.exists() && !out.is_dir() {
            return Err(CalibError::msg(format!(
                "--out {}: exists and is not a directory",
                out.display()
            )));
        }
        std::fs::create_dir_all(out).map_err(|e| {
            CalibError::msg(format!(
                "--out {}: cannot create the directory: {e}",
                out.display()
            ))
        })?;
        let tmp = out.join(format!(".dysample-calibrate-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&tmp) {
            if created_out {
                let _ = std::fs::remove_dir(out);
            }
            return Err(CalibError::msg(format!(
                "--out {}: cannot write into the directory: {e}",
                out.display()
            )));
        }
        Ok(Self {
            out: out.to_path_buf(),
            tmp,
            created_out,
            files: Vec::new(),
            done: false,
        })
    }

    /// Writes `rel` (a path relative to the output directory) into the staging directory.
    pub fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        let p = self.tmp.join(rel);
        self.create_parent(&p)?;
        std::fs::write(&p, bytes).map_err(|e| {
            CalibError::msg(format!(
                "--out {}: cannot write {rel}: {e}",
                self.out.display()
            ))
        })?;
        self.files.push(PathBuf::from(rel));
        Ok(())
    }

    /// Creates the directory that will hold `p` (in staging or in the output directory).
    fn create_parent(&self, p: &Path) -> Result<()> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| {
                CalibError::msg(format!(
                    "--out {}: cannot create {}: {e}",
                    self.out.display(),
                    d.display()
                ))
            })?;
        }
        Ok(())
    }

    /// Where a staged file lies now (for steps that read it back, e.g. an evaluation).
    pub fn staged(&self, rel: &str) -> PathBuf {
        self.tmp.join(rel)
    }

    /// Moves every staged file into the output directory; returns their final paths.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        let mut done = Vec::new();
        for rel in &self.files {
            let dst = self.out.join(rel);
            self.create_parent(&dst)?;
            std::fs::rename(self.tmp.join(rel), &dst).map_err(|e| {
                CalibError::msg(format!(
                    "--out {}: cannot move {} into place: {e}",
                    self.out.display(),
                    rel.display()
                ))
            })?;
            done.push(dst);
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
        self.done = true;
        Ok(done)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
            if self.created_out {
                let _ = std::fs::remove_dir(&self.out);
            }
        }
    }
}

//! The baselines file (`--baselines`, `baseline.path`): read once at start, saved every
//! `baseline.save_interval` of run time (capture time in replay, wall-clock time live) and at
//! the end, atomically. What is in it is the detector's business; this module only moves
//! bytes and says what went wrong.

use std::fmt::Display;
use std::path::PathBuf;
use std::time::Duration;

use surgewatch_export::diag::{self, Diag};

/// One run's baselines file.
pub struct BaselineFile {
    path: PathBuf,
    every_ns: u64,
    last_save_ns: Option<u64>,
}

impl BaselineFile {
    /// The file at `path`, saved every `save_interval`.
    pub fn new(path: PathBuf, save_interval: Duration) -> Self {
        BaselineFile {
            path,
            every_ns: u64::try_from(save_interval.as_nanos()).unwrap_or(u64::MAX),
            last_save_ns: None,
        }
    }

    /// The file's bytes. `None` when there is no file (a fresh start, silently) or it cannot
    /// be read (a warning: fresh baselines). Only a regular file is read, and at most the size
    /// its metadata gives, up to [`MAX_BYTES`]: a device (`/dev/zero`) or a FIFO is refused
    /// without reading, so it can neither stream forever nor hang the start.
    pub fn read(&self) -> Option<Vec<u8>> {
        match read_regular(&self.path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                self.unusable(e);
                None
            }
        }
    }

    /// Says how loading the bytes [`Self::read`] gave went: how many baselines, or why none
    /// (a corrupt or foreign file: fresh baselines).
    pub fn loaded<E: Display>(&self, result: Result<usize, E>) {
        match result {
            Ok(count) => diag::emit(Diag::BaselinesLoaded {
                count,
                path: self.path.clone(),
            }),
            Err(e) => self.unusable(e),
        }
    }

    fn unusable(&self, e: impl Display) {
        diag::emit(Diag::BaselinesUnusable {
            path: self.path.clone(),
            error: e.to_string(),
        });
    }

    /// Whether a periodic save is due at run time `now_ns`; the first call starts the period.
    pub fn due(&mut self, now_ns: u64) -> bool {
        match self.last_save_ns {
            None => {
                self.last_save_ns = Some(now_ns);
                false
            }
            Some(last) if now_ns.saturating_sub(last) >= self.every_ns => {
                self.last_save_ns = Some(now_ns);
                true
            }
            Some(_) => false,
        }
    }

    /// Writes `bytes` atomically: to a temporary file beside it, renamed over it. A failure
    /// is a warning (the run goes on; the next save tries again).
    pub fn save(&self, bytes: &[u8]) {
        let tmp = self.path.with_extension("tmp");
        let res = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = res {
            diag::emit(Diag::BaselinesNotSaved {
                path: self.path.clone(),
                error: e.to_string(),
            });
        }
    }
}

/// Largest baselines file read back (far above what the detector's limits let it save).
pub const MAX_BYTES: u64 = 1 << 30;

/// Reads `path` if it is a regular file of at most [`MAX_BYTES`], never more than its size.
fn read_regular(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = || Error::new(ErrorKind::InvalidInput, "not a regular file");
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    // Non-blocking: should the path have become a FIFO since, opening it does not wait for
    // a writer; the check below then refuses it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let len = meta.len();
    if len > MAX_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{len} bytes, more than the limit of {MAX_BYTES}"),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use surgewatch_export::diag::DiagKind;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("surgewatch-bf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn saves_are_due_every_interval_of_run_time_from_the_first_tick() {
        let mut f = BaselineFile::new("b.bin".into(), Duration::from_secs(60));
        let s = 1_000_000_000u64;
        let due: Vec<u64> = (1..=200)
            .map(|t| t * s)
            .filter(|&now| f.due(now))
            .map(|now| now / s)
            .collect();
        assert_eq!(due, [61, 121, 181]);
    }

    #[test]
    fn a_missing_file_is_a_fresh_start_and_a_saved_one_reads_back() {
        let dir = temp_dir("rw");
        let f = BaselineFile::new(dir.join("b.bin"), Duration::from_secs(60));
        let unusable = diag::stats().get(DiagKind::BaselinesUnusable);
        assert_eq!(f.read(), None);
        assert_eq!(diag::stats().get(DiagKind::BaselinesUnusable), unusable);
        f.save(b"one");
        f.save(b"two");
        assert_eq!(f.read().as_deref(), Some(&b"two"[..]));
        assert!(!dir.join("b.tmp").exists(), "renamed into place");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_place_is_a_warning() {
        let dir = temp_dir("ro");
        let f = BaselineFile::new(dir.join("no/such/dir/b.bin"), Duration::from_secs(1));
        let before = diag::stats().get(DiagKind::BaselinesNotSaved);
        f.save(b"x");
        assert_eq!(diag::stats().get(DiagKind::BaselinesNotSaved), before + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

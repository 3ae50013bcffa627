//! The baselines file (`--baselines`, `baseline.path`): read once at start, saved every
//! `baseline.save_interval` of run time (capture time in replay, wall-clock time live) and at
//! the end, atomically and durably. What is in it is the detector's business; this module
//! only moves bytes and says what went wrong.
//!
//! A save writes a temporary file of its own in the same directory (`.NAME.PID.N.tmp`,
//! created exclusively), syncs it, renames it over the file and syncs the directory, so a
//! crash leaves the old file or the new one, never a mix; a failed save removes its temporary
//! file (a full disk is not kept full), and those a killed process left are removed when the
//! next run takes the lock. For the whole run the sensor holds an advisory lock
//! on `NAME.lock` beside the file (`flock`, through std's `File::try_lock`), so two sensors
//! pointed at one file do not overwrite each other's baselines: the second one stops at
//! start with an error. The path is resolved first (symbolic links followed, the directory
//! made absolute), so two names of one file share one lock and a save replaces the file, not
//! a link to it. A path that exists but is not a regular file (a device, a FIFO, a directory)
//! gets no lock file beside it (no `/dev/zero.lock`): it is neither read nor saved over.

use std::fmt::Display;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Result};
use surgewatch_detect::LoadedBaselines;
use surgewatch_export::diag::{self, Diag};

/// Numbers the temporary files of this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One run's baselines file.
pub struct BaselineFile {
    path: PathBuf,
    every_ns: u64,
    last_save_ns: Option<u64>,
    /// The advisory lock, held (open) for the run; `None` when it could not be created.
    _lock: Option<File>,
    /// The file could not be used (corrupt, foreign, other baseline parameters): the first
    /// save moves it to `NAME.unusable` instead of replacing it.
    keep_aside: std::sync::atomic::AtomicBool,
}

impl BaselineFile {
    /// The file at `path`, saved every `save_interval`, locked for this run: an error when
    /// another process holds the lock. A lock file that cannot be created (an unwritable
    /// directory) is a warning, as the saves will be.
    pub fn open(path: PathBuf, save_interval: Duration) -> Result<Self> {
        let path = resolve(&path);
        let regular_or_absent = std::fs::metadata(&path).map_or(true, |m| m.is_file());
        let lock_path = lock_path(&path);
        let lock = if !regular_or_absent {
            None
        } else {
            match OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
            {
                Ok(f) => match f.try_lock() {
                    Ok(()) => {
                        remove_stale_temporaries(&path);
                        Some(f)
                    }
                    Err(TryLockError::WouldBlock) => bail!(
                        "baselines file {} is in use by another surgewatch (lock {} is held)",
                        path.display(),
                        lock_path.display()
                    ),
                    Err(TryLockError::Error(e)) => {
                        Self::not_saved(&path, format!("cannot lock {}: {e}", lock_path.display()));
                        None
                    }
                },
                Err(e) => {
                    Self::not_saved(&path, format!("cannot lock {}: {e}", lock_path.display()));
                    None
                }
            }
        };
        Ok(BaselineFile {
            path,
            every_ns: u64::try_from(save_interval.as_nanos()).unwrap_or(u64::MAX),
            last_save_ns: None,
            _lock: lock,
            keep_aside: std::sync::atomic::AtomicBool::new(false),
        })
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
    pub fn loaded<E: Display>(&self, result: Result<LoadedBaselines, E>) {
        match result {
            Ok(l) => diag::emit(Diag::BaselinesLoaded {
                count: l.loaded,
                dropped: l.dropped,
                path: self.path.clone(),
            }),
            Err(e) => self.unusable(e),
        }
    }

    fn unusable(&self, e: impl Display) {
        let regular = std::fs::metadata(&self.path).is_ok_and(|m| m.is_file());
        let kept_as = regular.then(|| kept_path(&self.path));
        self.keep_aside.store(regular, Ordering::Relaxed);
        diag::emit(Diag::BaselinesUnusable {
            path: self.path.clone(),
            error: e.to_string(),
            kept_as,
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

    /// Writes `bytes` atomically and durably (see the module docs). A failure is a warning
    /// (the run goes on; the next save tries again).
    pub fn save(&self, bytes: &[u8]) {
        if let Err(e) = self.save_via(|f| f.write_all(bytes)) {
            Self::not_saved(&self.path, e.to_string());
        }
    }

    fn not_saved(path: &Path, error: String) {
        diag::emit(Diag::BaselinesNotSaved {
            path: path.to_path_buf(),
            error,
        });
    }

    /// [`Self::save`] with the bytes written by `write` (the tests' seam for a failing write).
    fn save_via(&self, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
        // A rename over a device or a FIFO (`--baselines /dev/zero`) would replace it with a
        // regular file: save only over a regular file, or where nothing is yet.
        match std::fs::metadata(&self.path) {
            Ok(m) if !m.file_type().is_file() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file, not saved over",
                ));
            }
            _ => {}
        }
        let dir = dir_of(&self.path);
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            "{}{}.{n}.tmp",
            tmp_prefix(&self.path),
            std::process::id()
        ));
        if self.keep_aside.load(Ordering::Relaxed) {
            // What could not be read is kept, not replaced (a file written with other
            // baseline parameters is not lost by changing them back).
            std::fs::rename(&self.path, kept_path(&self.path))?;
            self.keep_aside.store(false, Ordering::Relaxed);
        }
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let written = write(&mut f)
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        drop(f);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // The rename is durable once the directory is.
        File::open(dir)?.sync_all()
    }
}

/// `path` with symbolic links followed and its directory absolute: the file itself (an
/// existing one, or the target of a dangling link, or a new name in an existing directory).
fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let within = |p: &Path| match (std::fs::canonicalize(dir_of(p)), p.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => p.to_path_buf(),
    };
    match std::fs::read_link(path) {
        // A link to a file not there yet: the file it names.
        Ok(target) if target.is_absolute() => within(&target),
        Ok(target) => within(&dir_of(path).join(target)),
        Err(_) => within(path),
    }
}

/// The directory a save writes its temporary file in.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The prefix of the temporary files of saves of `path` (`.NAME.`).
fn tmp_prefix(path: &Path) -> String {
    format!(
        ".{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// Removes what saves of a process killed mid-save (SIGKILL, a crash) left behind. Called
/// with the lock held, so no other process is saving.
fn remove_stale_temporaries(path: &Path) {
    let prefix = tmp_prefix(path);
    let Ok(entries) = std::fs::read_dir(dir_of(path)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// `NAME.unusable` beside the baselines file `NAME`: where an unusable file is kept.
fn kept_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".unusable");
    PathBuf::from(p)
}

/// `NAME.lock` beside the baselines file `NAME`.
fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
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
        let dir = temp_dir("due");
        let mut f = BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60)).unwrap();
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
        let f = BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60)).unwrap();
        let unusable = diag::stats().get(DiagKind::BaselinesUnusable);
        assert_eq!(f.read(), None);
        assert_eq!(diag::stats().get(DiagKind::BaselinesUnusable), unusable);
        f.save(b"one");
        f.save(b"two");
        assert_eq!(f.read().as_deref(), Some(&b"two"[..]));
        assert_eq!(entries(&dir), ["b.bin", "b.bin.lock"], "renamed into place");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unusable_file_is_kept_aside_at_the_first_save_not_replaced() {
        let dir = temp_dir("keep");
        std::fs::write(dir.join("b.bin"), b"foreign").unwrap();
        let f = BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60)).unwrap();
        let bytes = f.read().unwrap();
        f.loaded(Err::<LoadedBaselines, _>("bad magic"));
        f.save(b"fresh");
        f.save(b"fresher");
        assert_eq!(std::fs::read(dir.join("b.bin.unusable")).unwrap(), bytes);
        assert_eq!(std::fs::read(dir.join("b.bin")).unwrap(), b"fresher");
        assert_eq!(entries(&dir), ["b.bin", "b.bin.lock", "b.bin.unusable"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_place_is_a_warning() {
        let dir = temp_dir("ro");
        let before = diag::stats().get(DiagKind::BaselinesNotSaved);
        let f = BaselineFile::open(dir.join("no/such/dir/b.bin"), Duration::from_secs(1)).unwrap();
        assert_eq!(
            diag::stats().get(DiagKind::BaselinesNotSaved),
            before + 1,
            "no lock"
        );
        f.save(b"x");
        assert_eq!(diag::stats().get(DiagKind::BaselinesNotSaved), before + 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file() {
        let dir = temp_dir("full");
        let f = BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60)).unwrap();
        f.save(b"old");
        // A disk filling up half-way through the write.
        let res = f.save_via(|file| {
            file.write_all(b"partial")?;
            Err(io::Error::from(io::ErrorKind::StorageFull))
        });
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert_eq!(f.read().as_deref(), Some(&b"old"[..]));
        assert_eq!(
            entries(&dir),
            ["b.bin", "b.bin.lock"],
            "temporary file removed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn temporary_files_left_by_a_killed_sensor_are_removed_at_start() {
        let dir = temp_dir("stale");
        std::fs::write(dir.join(".b.bin.999999.0.tmp"), b"half a save").unwrap();
        std::fs::write(dir.join(".other.bin.999999.0.tmp"), b"not ours").unwrap();
        let f = BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60)).unwrap();
        assert_eq!(
            entries(&dir),
            [".other.bin.999999.0.tmp", "b.bin.lock"],
            "only this file's temporaries"
        );
        drop(f);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_names_of_one_file_share_its_lock_and_a_save_keeps_the_link() {
        let dir = temp_dir("link");
        std::fs::write(dir.join("b.bin"), b"old").unwrap();
        std::os::unix::fs::symlink("b.bin", dir.join("ln.bin")).unwrap();
        let first = BaselineFile::open(dir.join("ln.bin"), Duration::from_secs(60)).unwrap();
        let err = BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60)).err();
        assert!(err.is_some(), "the file's other name is locked too");
        first.save(b"new");
        let link = std::fs::symlink_metadata(dir.join("ln.bin")).unwrap();
        assert!(link.file_type().is_symlink(), "the link is still a link");
        assert_eq!(std::fs::read(dir.join("b.bin")).unwrap(), b"new");
        drop(first);
        // A dangling link names the file to create.
        std::os::unix::fs::symlink("c.bin", dir.join("new.bin")).unwrap();
        let f = BaselineFile::open(dir.join("new.bin"), Duration::from_secs(60)).unwrap();
        f.save(b"c");
        assert_eq!(std::fs::read(dir.join("c.bin")).unwrap(), b"c");
        assert!(std::fs::symlink_metadata(dir.join("new.bin"))
            .unwrap()
            .file_type()
            .is_symlink());
        drop(f);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_path_that_is_no_regular_file_gets_no_lock_file_beside_it() {
        let dir = temp_dir("nolock");
        std::fs::create_dir_all(dir.join("d")).unwrap();
        let f = BaselineFile::open(dir.join("d"), Duration::from_secs(60)).unwrap();
        assert!(f.read().is_none());
        f.save(b"x");
        assert!(dir.join("d").is_dir(), "never saved over");
        assert_eq!(entries(&dir), ["d"], "no d.lock");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_open_of_a_locked_file_is_an_error_until_the_first_is_closed() {
        let dir = temp_dir("lock");
        let first = BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60)).unwrap();
        let err = BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60))
            .err()
            .expect("second open must fail");
        let msg = err.to_string();
        assert!(msg.contains("in use by another surgewatch"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        drop(first);
        assert!(BaselineFile::open(dir.join("b.bin"), Duration::from_secs(60)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

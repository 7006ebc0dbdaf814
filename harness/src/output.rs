//! Output directories opa writes safely. opa deletes or replaces only what it can show it
//! wrote: a result directory carries a marker ([`MARKER`]) written before anything else, and
//! `--force` replaces a directory only when it has one (or is a run directory from before
//! markers: its `summary.json` reads as a run's). New results are written into a hidden
//! sibling and swapped in at the end, so an interruption of any kind leaves the previous
//! result whole; a lock file beside the directory refuses a second writer.
//!
//! A [`Claim`] is taken before any result is written and ends with [`Claim::commit`] (the new
//! result replaces the old) or by being dropped (the new one is removed, the old one kept).

use opa_reports::RunSummary;
use std::fs;
use std::path::{Path, PathBuf};

/// The file that marks a directory as opa's result: its kind and the writing opa's version.
pub const MARKER: &str = ".opa-run";

/// What kind of result a directory holds (written into its marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A run directory (`opa run`, `opa replay`, `opa merge`).
    Run,
    /// Repeats of a run (`--repeat N`).
    Repeats,
    /// An `opa stress` sweep.
    Stress,
    /// A saved baseline.
    Baseline,
}

impl Kind {
    /// What a directory of this kind holds, as said in messages.
    fn holds(self) -> &'static str {
        match self {
            Kind::Run => "a run",
            Kind::Repeats => "repeats",
            Kind::Stress => "a stress sweep",
            Kind::Baseline => "a baseline",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Repeats => "repeats",
            Kind::Stress => "stress",
            Kind::Baseline => "baseline",
        }
    }
}

/// A claimed output directory: locked, with the new result being written into a hidden
/// sibling ([`Claim::path`]).
#[derive(Debug)]
pub struct Claim {
    target: PathBuf,
    work: PathBuf,
    lock: PathBuf,
    done: bool,
}

/// `PARENT/.NAME.opa-SUFFIX` beside `target`.
fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.opa-{suffix}"))
}

/// Whether process `pid` is alive on this machine.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Why `dir` may not be replaced, if it may not: it holds files and no marker (nor a run's
/// summary), or, without `force`, anything at all.
fn refusal(dir: &Path, kind: Kind, force: bool) -> Option<String> {
    if dir.exists() && !dir.is_dir() {
        return Some(format!(
            "{}: is a file, not a directory; choose another --out",
            dir.display()
        ));
    }
    let empty = fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
    if empty {
        return None;
    }
    let ours = dir.join(MARKER).is_file()
        || fs::read(dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_slice::<RunSummary>(&t).ok())
            .is_some();
    match (ours, force) {
        (true, true) => None,
        (true, false) => Some(format!(
            "{} already holds {}; pass --force to replace it or --out another directory",
            dir.display(),
            kind.holds()
        )),
        (false, _) => Some(format!(
            "{} holds files opa did not write (no {MARKER} marker); opa replaces only its own results: choose a new or empty directory",
            dir.display()
        )),
    }
}

impl Claim {
    /// Claims `dir` for a new result of `kind`: takes its lock, checks it may be replaced
    /// (`force`), and creates the hidden directory the result is written into, marker first.
    /// Every refusal is bad input (its text names the directory and what to do).
    pub fn take(dir: &Path, kind: Kind, force: bool) -> Result<Claim, String> {
        let target = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if target.file_name().is_none() {
            return Err(format!(
                "{}: not a directory opa can write a result into; name one",
                dir.display()
            ));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let lock = sibling(&target, "lock");
        Self::lock(&lock, dir)?;
        let claim = Claim {
            work: sibling(&target, &format!("new-{}", std::process::id())),
            target,
            lock,
            done: false,
        };
        if let Some(why) = refusal(&claim.target, kind, force) {
            return Err(why);
        }
        let _ = fs::remove_dir_all(&claim.work);
        fs::create_dir_all(&claim.work)
            .map_err(|e| format!("creating {}: {e}", claim.work.display()))?;
        fs::write(
            claim.work.join(MARKER),
            format!(
                "kind = \"{}\"\nopa = \"{}\"\n",
                kind.name(),
                env!("CARGO_PKG_VERSION")
            ),
        )
        .map_err(|e| format!("writing {}: {e}", claim.work.display()))?;
        Ok(claim)
    }

    /// Creates the lock file `lock` holding this process's id (written whole before the lock
    /// appears: a hard link of a file already written, which fails where the lock exists); a
    /// lock of a live process is a refusal, one left by a process that is gone is taken over.
    fn lock(lock: &Path, dir: &Path) -> Result<(), String> {
        let me = std::process::id();
        let mine = lock.with_extension(format!("{me}"));
        fs::write(&mine, me.to_string()).map_err(|e| format!("{}: {e}", mine.display()))?;
        let result = (|| {
            for _ in 0..2 {
                match fs::hard_link(&mine, lock) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let holder = fs::read_to_string(lock)
                            .ok()
                            .and_then(|t| t.trim().parse::<u32>().ok());
                        match holder {
                            Some(pid) if alive(pid) => {
                                return Err(format!(
                                    "{}: another opa (process {pid}) is writing it (lock {}); wait for it, or remove the lock if no opa runs",
                                    dir.display(),
                                    lock.display()
                                ));
                            }
                            _ => {
                                let _ = fs::remove_file(lock);
                            }
                        }
                    }
                    Err(e) => return Err(format!("{}: {e}", lock.display())),
                }
            }
            Err(format!("{}: could not take the lock", lock.display()))
        })();
        let _ = fs::remove_file(&mine);
        result
    }

    /// Where the new result is written.
    pub fn path(&self) -> &Path {
        &self.work
    }

    /// The directory the result will be in once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether the target holds a previous result (which a commit replaces).
    pub fn replaces(&self) -> bool {
        fs::read_dir(&self.target).is_ok_and(|mut d| d.next().is_some())
    }

    /// Puts the new result in place of the previous one (removed) and releases the lock.
    pub fn commit(mut self) -> std::io::Result<PathBuf> {
        let old = sibling(&self.target, &format!("old-{}", std::process::id()));
        if self.target.exists() {
            let _ = fs::remove_dir_all(&old);
            fs::rename(&self.target, &old)?;
        }
        fs::rename(&self.work, &self.target)?;
        let _ = fs::remove_dir_all(&old);
        self.done = true;
        let _ = fs::remove_file(&self.lock);
        Ok(self.target.clone())
    }
}

impl Drop for Claim {
    /// Not committed: the new result is removed, the previous one stays; the lock goes.
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.work);
            let _ = fs::remove_file(&self.lock);
        }
    }
}

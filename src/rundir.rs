//! The run directory: its layout, the manifest (`run.json`) and the one-writer lock (`run.lock`).
//!
//! Owns: creating and opening a run directory, the manifest format and its version check, the
//! digests used for drift detection, and the exclusive lock held by `run`/`resume`.
//! Must not touch: the journal's or the ledger's contents (see `journal` and `ledger`), the
//! playbook or the CSV beyond hashing their bytes.
//!
//! Layout of a run directory:
//!
//! | file | written by | purpose |
//! |---|---|---|
//! | `run.json` | `run`, once | the manifest: what ran, with which files, vars and digests |
//! | `run.lock` | `run`/`resume` | held (flock) while a process works on the directory |
//! | `journal.jsonl` | `run`/`resume` | append-only record of every state change: the truth |
//! | `ledger.csv`, `ledger.jsonl` | end of `run`/`resume` | the results, rebuilt from the journal |
//! | `*.tmp` | transiently | a ledger or manifest being written; left behind only by a crash |
//!
//! `run.json` and `journal.jsonl` must be kept for `resume` and `status`; the ledger files can be
//! deleted (the next `resume` rebuilds them), and so can `run.lock` and `*.tmp` files when no
//! cosell process is working on the directory.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The version of the run directory layout and of `run.json`. Bump it when an older cosell
/// could misread a directory written by a newer one.
pub const RUN_FORMAT: u32 = 1;

/// File names inside a run directory.
pub const MANIFEST_FILE: &str = "run.json";
pub const LOCK_FILE: &str = "run.lock";
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// `run.json`: everything `resume` and `status` need to know about a run besides its journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`RUN_FORMAT`] of the cosell that created the directory.
    pub format: u32,
    pub run_id: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub playbook_name: String,
    /// Absolute.
    pub playbook_path: PathBuf,
    /// Absolute.
    pub input_path: PathBuf,
    /// The raw `--var NAME=VALUE` arguments, in command-line order.
    pub vars: Vec<String>,
    pub catalog: String,
    pub digests: Digests,
    pub cosell_version: String,
    /// Step ids: the `setup` steps first, then the per-row steps, each in playbook order.
    pub step_ids: Vec<String>,
    /// How many of the leading `step_ids` belong to `setup` (0 when there is no setup).
    #[serde(default)]
    pub setup_steps: usize,
    /// The names of the playbook's `ledger.columns`, in order.
    pub ledger_columns: Vec<String>,
    /// Data rows in the input when the run started (0: not recorded).
    #[serde(default)]
    pub total_rows: u64,
    /// Where the run sends its requests (never credentials): `resume` reuses it unless its
    /// flags say otherwise.
    #[serde(default)]
    pub connection: Connection,
    /// The partner account the run's credentials resolved to (STS GetCallerIdentity);
    /// `resume` refuses credentials of another account.
    #[serde(default)]
    pub account: Option<String>,
}

/// How a run connects, as recorded in `run.json`. Credentials are never recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// `--emulate`: the embedded emulator, whose state is kept in the run directory
    /// ([`EMULATOR_STATE_FILE`]).
    #[serde(default)]
    pub emulate: bool,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

/// The embedded emulator's state of an `--emulate` run (a rehearsal resumes against it).
pub const EMULATOR_STATE_FILE: &str = "emulator-state.json";

impl Manifest {
    /// The step ids of `setup`.
    pub fn setup_step_ids(&self) -> &[String] {
        &self.step_ids[..self.setup_steps.min(self.step_ids.len())]
    }
    /// The step ids each data row runs.
    pub fn row_step_ids(&self) -> &[String] {
        &self.step_ids[self.setup_steps.min(self.step_ids.len())..]
    }
}

/// sha256 (lowercase hex) of what a run was started with; `resume` compares them (drift).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// Of the playbook file's bytes.
    pub playbook: String,
    /// Of the input CSV file's bytes.
    pub input: String,
    /// Of the canonical vars list, see [`digest_vars`].
    pub vars: String,
}

impl Digests {
    /// The digests of a playbook, an input CSV and the raw `--var` arguments.
    pub fn compute(playbook: &Path, input: &Path, vars: &[String]) -> io::Result<Digests> {
        Ok(Digests {
            playbook: digest_file(playbook)?,
            input: digest_file(input)?,
            vars: digest_vars(vars),
        })
    }
}

/// sha256 hex of a file's bytes.
pub fn digest_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// sha256 hex of the vars' canonical form: each `NAME=VALUE` is split at its first `=`
/// (an argument without `=` is a name with an empty value), a later value of the same name
/// replaces an earlier one (as on the command line), and the result is sorted by name and
/// hashed as `NAME=VALUE\n` lines. So reordering distinct `--var`s is not drift, but changing
/// the value that wins is.
pub fn digest_vars(vars: &[String]) -> String {
    let mut map = BTreeMap::new();
    for v in vars {
        let (name, value) = v.split_once('=').unwrap_or((v.as_str(), ""));
        map.insert(name, value);
    }
    let mut h = Sha256::new();
    for (name, value) in map {
        h.update(name.as_bytes());
        h.update(b"=");
        h.update(value.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Errors opening or creating a run directory. Each names the path and the fix.
///
/// About [`RunDirError::Locked`]: the lock is an advisory `flock(2)` on `run.lock`, owned by the
/// open file of the process holding it. The OS releases it when that process exits for any
/// reason, including SIGKILL, a crash or a power loss, so a lock is never stale: when `Locked`
/// is returned, a live process holds it. The pid written in `run.lock` is informational.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error(
        "{}: not a run directory (no {MANIFEST_FILE}); pass the directory that `cosell run` created (default runs/<playbook name>-<UTC timestamp>)",
        path.display()
    )]
    NotARunDir { path: PathBuf },
    #[error(
        "{}: already holds a run ({MANIFEST_FILE} exists); continue it with `cosell resume {}`, or choose another --run-dir",
        path.display(), path.display()
    )]
    AlreadyExists { path: PathBuf },
    #[error(
        "{}: in use by another cosell process{}; only one `run`/`resume` may work on a run directory at a time. Check it with `ps -p {}`; wait for it to finish or stop it (Ctrl-C), then retry. (The lock is released by the OS as soon as that process exits, even when killed.)",
        path.display(),
        match (pid, since) {
            (Some(p), Some(s)) => format!(" (pid {p}, since {s})"),
            (Some(p), None) => format!(" (pid {p})"),
            _ => String::new(),
        },
        pid.map(|p| p.to_string()).unwrap_or_else(|| "<pid>".into())
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, as it wrote it in the lock file (None if not yet written).
        pid: Option<u32>,
        /// When the holder took the lock (RFC 3339), as it wrote it.
        since: Option<String>,
    },
    #[error(
        "{}: written by a newer cosell (run directory format {found}, this cosell reads format {supported} and older); upgrade cosell to resume or inspect it",
        path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "{}: the manifest is damaged ({reason}); it cannot be repaired automatically — restore it from a backup or start a new run",
        path.display()
    )]
    BadManifest { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl RunDirError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> RunDirError + '_ {
        move |source| RunDirError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Who holds a run directory's lock, as the holder wrote it in `run.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub pid: Option<u32>,
    pub since: Option<String>,
}

/// An open run directory. Opened by `create`/`open` it holds the exclusive lock until dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    manifest: Manifest,
    /// The locked `run.lock`; None for a read-only view.
    _lock: Option<File>,
}

impl RunDir {
    /// Create a run directory (and its parents), take the lock, and write `run.json`
    /// atomically. Refuses a directory that already holds a manifest.
    pub fn create(dir: &Path, manifest: &Manifest) -> Result<RunDir, RunDirError> {
        fs::create_dir_all(dir).map_err(RunDirError::io(dir))?;
        // Make the new directory's own entry durable too.
        if let Some(parent) = dir.parent() {
            sync_dir(parent).map_err(RunDirError::io(parent))?;
        }
        let lock = take_lock(dir)?;
        let mpath = dir.join(MANIFEST_FILE);
        if mpath.exists() {
            return Err(RunDirError::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        let mut bytes = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
        bytes.push(b'\n');
        write_atomically(&mpath, &bytes).map_err(RunDirError::io(&mpath))?;
        Ok(RunDir {
            path: dir.to_path_buf(),
            manifest: manifest.clone(),
            _lock: Some(lock),
        })
    }

    /// Open an existing run directory for `resume`: read `run.json`, refuse a newer format,
    /// take the lock.
    pub fn open(dir: &Path) -> Result<RunDir, RunDirError> {
        // Read first so that a wrong path is reported as such, not as a lock problem.
        read_manifest(dir)?;
        let lock = take_lock(dir)?;
        let manifest = read_manifest(dir)?;
        Ok(RunDir {
            path: dir.to_path_buf(),
            manifest,
            _lock: Some(lock),
        })
    }

    /// Open a run directory without the lock, for `status` (which only reads).
    pub fn open_readonly(dir: &Path) -> Result<RunDir, RunDirError> {
        let manifest = read_manifest(dir)?;
        Ok(RunDir {
            path: dir.to_path_buf(),
            manifest,
            _lock: None,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL_FILE)
    }
    /// Whether this handle holds the lock (false for `open_readonly`).
    pub fn is_locked(&self) -> bool {
        self._lock.is_some()
    }

    /// Whether another process holds the lock now (a `run`/`resume` is working on the
    /// directory), with its pid and start time as it wrote them. For `status`: it probes with a
    /// shared lock released at once, so a `run`/`resume` starting in that same instant may be
    /// told the directory is in use (and can simply be started again). Never creates a file.
    pub fn holder(&self) -> Option<LockHolder> {
        use fs4::fs_std::FileExt;
        if self._lock.is_some() {
            return None;
        }
        let lpath = self.path.join(LOCK_FILE);
        let mut file = File::open(&lpath).ok()?;
        match FileExt::try_lock_shared(&file) {
            Ok(true) => {
                let _ = FileExt::unlock(&file);
                None
            }
            Ok(false) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let (pid, since) = parse_lock_text(&text);
                Some(LockHolder { pid, since })
            }
            Err(_) => None,
        }
    }

    /// What changed since the run started, one sentence each naming "playbook", "input" or
    /// "vars" with the old and new digests; empty when nothing did.
    pub fn drift(&self, current: &Digests) -> Vec<String> {
        let old = &self.manifest.digests;
        let m = &self.manifest;
        let mut out = Vec::new();
        let mut check = |what: &str, place: String, old: &str, new: &str| {
            if old != new {
                out.push(format!(
                    "{what} changed since the run started ({place}): sha256 {} then, {} now",
                    short(old),
                    short(new)
                ));
            }
        };
        check(
            "playbook",
            m.playbook_path.display().to_string(),
            &old.playbook,
            &current.playbook,
        );
        check(
            "input",
            m.input_path.display().to_string(),
            &old.input,
            &current.input,
        );
        check(
            "vars",
            format!("--var {}", m.vars.join(" --var ")),
            &old.vars,
            &current.vars,
        );
        out
    }
}

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

fn read_manifest(dir: &Path) -> Result<Manifest, RunDirError> {
    let mpath = dir.join(MANIFEST_FILE);
    let bytes = match fs::read(&mpath) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RunDirError::NotARunDir {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => return Err(RunDirError::io(&mpath)(e)),
    };
    let bad = |reason: String| RunDirError::BadManifest {
        path: mpath.clone(),
        reason,
    };
    // Check the version before the shape: a newer format may have changed any field.
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let format = value
        .get("format")
        .and_then(|f| f.as_u64())
        .ok_or_else(|| bad("no numeric \"format\" field".into()))?;
    if format > RUN_FORMAT as u64 {
        return Err(RunDirError::NewerFormat {
            path: mpath.clone(),
            found: u32::try_from(format).unwrap_or(u32::MAX),
            supported: RUN_FORMAT,
        });
    }
    serde_json::from_value(value).map_err(|e| bad(e.to_string()))
}

fn take_lock(dir: &Path) -> Result<File, RunDirError> {
    use fs4::fs_std::FileExt;
    let lpath = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lpath)
        .map_err(RunDirError::io(&lpath))?;
    let got = FileExt::try_lock_exclusive(&file).map_err(RunDirError::io(&lpath))?;
    if !got {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let (pid, since) = parse_lock_text(&text);
        return Err(RunDirError::Locked {
            path: lpath,
            pid,
            since,
        });
    }
    // We hold it: record who we are (informational only; the flock is the lock).
    let text = format!(
        "pid {}\nsince {}\n",
        std::process::id(),
        crate::journal::timestamp()
    );
    file.set_len(0)
        .and_then(|_| {
            use std::io::Seek;
            file.seek(io::SeekFrom::Start(0))?;
            file.write_all(text.as_bytes())
        })
        .map_err(RunDirError::io(&lpath))?;
    Ok(file)
}

fn parse_lock_text(text: &str) -> (Option<u32>, Option<String>) {
    let mut pid = None;
    let mut since = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("pid ") {
            pid = p.trim().parse().ok();
        } else if let Some(s) = line.strip_prefix("since ") {
            since = Some(s.trim().to_string());
        }
    }
    (pid, since)
}

/// Write `bytes` to `path` so that a reader sees the old file or the new one, never a mix:
/// write a sibling temp file, fsync it, rename it over `path`, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// `name.ext` → `name.ext.tmp`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// fsync a directory so that a rename or a file creation in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: RUN_FORMAT,
            run_id: "invite-20261122T194500Z".into(),
            created_at: "2026-11-22T19:45:00Z".into(),
            playbook_name: "invite".into(),
            playbook_path: "/abs/invite.yaml".into(),
            input_path: "/abs/partners.csv".into(),
            vars: vec!["region=EU".into()],
            catalog: "Sandbox".into(),
            digests: Digests {
                playbook: "a".repeat(64),
                input: "b".repeat(64),
                vars: digest_vars(&["region=EU".into()]),
            },
            cosell_version: env!("CARGO_PKG_VERSION").into(),
            step_ids: vec!["whoami".into(), "invite".into(), "check".into()],
            setup_steps: 1,
            ledger_columns: vec!["partner".into()],
            total_rows: 0,
        }
    }

    #[test]
    fn create_then_open_round_trips_the_manifest() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/x");
        let m = manifest();
        let rd = RunDir::create(&dir, &m).unwrap();
        assert_eq!(rd.manifest(), &m);
        assert_eq!(rd.journal_path(), dir.join("journal.jsonl"));
        assert!(!dir.join("run.json.tmp").exists());
        drop(rd);
        let rd = RunDir::open(&dir).unwrap();
        assert_eq!(rd.manifest(), &m);
        assert_eq!(rd.manifest().setup_step_ids(), ["whoami".to_string()]);
        assert_eq!(
            rd.manifest().row_step_ids(),
            ["invite".to_string(), "check".to_string()]
        );
    }

    #[test]
    fn create_refuses_an_existing_run() {
        let t = tempfile::tempdir().unwrap();
        drop(RunDir::create(t.path(), &manifest()).unwrap());
        let e = RunDir::create(t.path(), &manifest()).unwrap_err();
        assert!(matches!(e, RunDirError::AlreadyExists { .. }), "{e}");
        assert!(e.to_string().contains("cosell resume"), "{e}");
    }

    #[test]
    fn second_open_is_locked_and_names_our_pid_until_the_first_is_dropped() {
        let t = tempfile::tempdir().unwrap();
        let first = RunDir::create(t.path(), &manifest()).unwrap();
        let e = RunDir::open(t.path()).unwrap_err();
        match &e {
            RunDirError::Locked { pid, since, .. } => {
                assert_eq!(*pid, Some(std::process::id()));
                assert!(since.is_some());
            }
            other => panic!("want Locked, got {other}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("ps -p"), "{msg}");
        // A reader does not need the lock, and sees who holds it.
        let ro = RunDir::open_readonly(t.path()).unwrap();
        assert!(!ro.is_locked());
        let h = ro.holder().expect("held");
        assert_eq!(h.pid, Some(std::process::id()));
        drop(first);
        assert_eq!(ro.holder(), None);
        assert!(RunDir::open(t.path()).unwrap().is_locked());
    }

    #[test]
    fn newer_format_is_refused_naming_both_versions() {
        let t = tempfile::tempdir().unwrap();
        let mut v = serde_json::to_value(manifest()).unwrap();
        v["format"] = (RUN_FORMAT + 1).into();
        v["something_new"] = true.into();
        fs::write(t.path().join("run.json"), v.to_string()).unwrap();
        for e in [
            RunDir::open(t.path()).unwrap_err(),
            RunDir::open_readonly(t.path()).unwrap_err(),
        ] {
            let msg = e.to_string();
            assert!(
                matches!(e, RunDirError::NewerFormat { found: 2, .. }),
                "{msg}"
            );
            assert!(
                msg.contains("format 2") && msg.contains("format 1"),
                "{msg}"
            );
        }
    }

    #[test]
    fn not_a_run_dir_and_damaged_manifest_name_the_path() {
        let t = tempfile::tempdir().unwrap();
        let e = RunDir::open(t.path()).unwrap_err();
        assert!(matches!(e, RunDirError::NotARunDir { .. }));
        assert!(e.to_string().contains(&t.path().display().to_string()));
        fs::write(t.path().join("run.json"), "{\"format\":1}").unwrap();
        let e = RunDir::open_readonly(t.path()).unwrap_err();
        assert!(matches!(e, RunDirError::BadManifest { .. }), "{e}");
        assert!(e.to_string().contains("run.json"), "{e}");
    }

    #[test]
    fn drift_names_what_changed() {
        let t = tempfile::tempdir().unwrap();
        let m = manifest();
        let rd = RunDir::create(t.path(), &m).unwrap();
        assert!(rd.drift(&m.digests).is_empty());
        let mut now = m.digests.clone();
        now.input = "c".repeat(64);
        now.vars = digest_vars(&["region=US".into()]);
        let d = rd.drift(&now);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("input changed"), "{d:?}");
        assert!(
            d[0].contains("/abs/partners.csv")
                && d[0].contains("bbbbbbbbbbbb then, cccccccccccc now")
        );
        assert!(
            d[1].starts_with("vars changed") && d[1].contains("--var region=EU"),
            "{d:?}"
        );
    }

    #[test]
    fn digests() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, "abc").unwrap();
        assert_eq!(
            digest_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let v = |xs: &[&str]| digest_vars(&xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["a=1", "b=2"]), v(&["b=2", "a=1"]));
        assert_eq!(v(&["a=0", "a=1"]), v(&["a=1"]));
        assert_ne!(v(&["a=1"]), v(&["a=2"]));
        assert_ne!(v(&["a=1=2"]), v(&["a=1"]));
        assert_ne!(v(&[]), v(&["a"]));
    }
}

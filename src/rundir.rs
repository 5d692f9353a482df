//! The run directory: its layout, the manifest (`run.json`) and the one-writer lock.
//!
//! Owns: creating (with a name no other run gets) and opening a run directory, the manifest
//! format and its version check, the checks that the journal beside `run.json` is there and
//! belongs to this run (its header only: the journal's records are the `journal` module's),
//! the digests used for drift detection, the exclusive lock held by `run`/`resume`, and the
//! private file modes. Must not touch: the journal's records or the ledger's contents (see
//! `journal` and `ledger`), the playbook or the CSV beyond hashing their bytes.
//!
//! Layout of a run directory (the directory mode 0700, every file 0600: they hold customer
//! data):
//!
//! | file | written by | purpose |
//! |---|---|---|
//! | `journal.jsonl` | `run` (header, at creation), `run`/`resume` | append-only record of every state change: the truth |
//! | `run.json` | `run`, once, after the journal header | the manifest: what ran, with which files, vars and digests |
//! | `run.lock` | `run`/`resume` | who holds the lock: pid, host, since (the lock itself is a `flock` on the directory) |
//! | `ledger.csv`, `ledger.xlsx`, `ledger.jsonl` | end of `run`/`resume` | the results, rebuilt from the journal |
//! | `*.tmp` | transiently | a ledger, manifest or `run.lock` being written; left behind only by a crash |
//!
//! Creation order is: directory (one `mkdir`, never reusing an existing run), lock, journal
//! with its header (fsynced), then `run.json` (atomically). So:
//! - `run.json` present, journal missing: damage ([`RunDirError::MissingJournal`], exit 4);
//! - journal present whose header names another run id: damage ([`RunDirError::ForeignJournal`]);
//! - no `run.json`, journal with only its header: a `run` that crashed while creating the
//!   directory, before anything was sent: not a run directory (exit 2), and `run --run-dir`
//!   may create the run there again;
//! - no `run.json`, journal with records: damage ([`RunDirError::MissingManifest`]).
//!
//! `run.json` and `journal.jsonl` must be kept for `resume` and `status`; the ledger files can be
//! deleted (the next `resume` rebuilds them), and so can `run.lock` and `*.tmp` files when no
//! cosell process is working on the directory (deleting `run.lock` while one is only loses the
//! holder's host and start time from the "in use" message; it never releases the lock).

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
    /// The sheet read, when the input is a workbook (`resume` reads the same one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sheet: Option<String>,
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
    /// `--concurrency` of the run (None: the playbook's); `resume` keeps it unless given.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// `--rate` flags of the run, in order; `resume` keeps them unless it is given its own.
    #[serde(default)]
    pub rates: Vec<String>,
    /// `--wait-for-quota` was given: `resume` waits for the quota too.
    #[serde(default)]
    pub wait_for_quota: bool,
    /// `--quota-window` of the run, as given; `resume` keeps it unless it is given its own.
    #[serde(default)]
    pub quota_window: Option<String>,
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
    /// Of the input file's bytes (a CSV or a workbook: saving a workbook again changes them).
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

/// What a run directory is, for the messages that say a path is not one.
const WHAT_A_RUN_DIR_IS: &str = "a run directory is the directory `cosell run` created (default runs/<playbook name>-<UTC timestamp>), holding run.json and journal.jsonl";

/// Errors opening or creating a run directory. Each names the path and the fix.
///
/// [`NotARunDir`](RunDirError::NotARunDir) is a usage error (exit 2: nothing was sent, the
/// path is wrong); every other variant about an existing directory is damage or the
/// environment (exit 4).
///
/// About [`RunDirError::Locked`]: the lock is an advisory `flock(2)` on the run directory
/// itself (its open directory handle), owned by the process holding it. The OS releases it
/// when that process exits for any reason, including SIGKILL, a crash or a power loss, so a
/// lock is never stale: when `Locked` is returned, a live process holds it. Deleting
/// `run.lock` does not release it: that file only tells who holds the lock (pid, host, since).
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{}: not a run directory ({reason}); {WHAT_A_RUN_DIR_IS}. Pass such a directory, e.g. one listed by `ls runs/`", path.display())]
    NotARunDir {
        path: PathBuf,
        /// What was found instead: "no such directory", "a file, not a directory", "no run.json".
        reason: String,
    },
    #[error(
        "{}: already holds a run ({MANIFEST_FILE} exists); continue it with `cosell resume {}`, or choose another --run-dir",
        path.display(), path.display()
    )]
    AlreadyExists { path: PathBuf },
    #[error(
        "{}: exists and is not empty; --run-dir must name a new (or empty) directory so that no other file is mixed up with the run. Choose another --run-dir, or leave it out to get runs/<playbook name>-<UTC timestamp>",
        path.display()
    )]
    NotEmpty { path: PathBuf },
    #[error(
        "{}: in use by another cosell process{}; only one `run`/`resume` may work on a run directory at a time. Check it with `ps -p {}`; wait for it to finish or stop it (Ctrl-C), then retry. (The lock is on the directory itself and is released by the OS as soon as that process exits, even when killed; deleting run.lock does not release it.)",
        path.display(),
        holder_text(pid, host, since),
        pid.map(|p| p.to_string()).unwrap_or_else(|| "<pid>".into())
    )]
    Locked {
        /// The run directory.
        path: PathBuf,
        /// The holder's pid (from the OS lock table, or as it wrote it in `run.lock`).
        pid: Option<u32>,
        /// The holder's host name, as it wrote it in `run.lock`.
        host: Option<String>,
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
    #[error(
        "{}: damaged run directory: {JOURNAL_FILE} holds records but there is no {MANIFEST_FILE} beside it; restore {MANIFEST_FILE} from a backup, or start a new run elsewhere",
        path.display()
    )]
    MissingManifest { path: PathBuf },
    #[error(
        "{}: damaged run directory: {MANIFEST_FILE} is here but its journal is missing (cosell writes the journal before {MANIFEST_FILE}, so it was deleted or moved); restore {JOURNAL_FILE} from a backup, or start a new run",
        path.display()
    )]
    MissingJournal {
        /// The missing journal.
        path: PathBuf,
    },
    #[error(
        "{}: damaged run directory: this journal belongs to run {journal_run_id}, but {MANIFEST_FILE} is run {manifest_run_id} (a journal copied in from another run?); put back this run's own journal, or resume the other run in its own directory",
        path.display()
    )]
    ForeignJournal {
        /// The journal.
        path: PathBuf,
        journal_run_id: String,
        manifest_run_id: String,
    },
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn holder_text(pid: &Option<u32>, host: &Option<String>, since: &Option<String>) -> String {
    let mut parts = Vec::new();
    if let Some(p) = pid {
        parts.push(format!("pid {p}"));
    }
    if let Some(h) = host {
        parts.push(format!("on {h}"));
    }
    if let Some(s) = since {
        parts.push(format!("since {s}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

impl RunDirError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> RunDirError + '_ {
        move |source| RunDirError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The documented exit code: 2 when the path is not a run directory, or (for `run`) a
    /// `--run-dir` that already holds a run or other files — usage errors, nothing was sent;
    /// 4 for everything else (a damaged, locked or unreadable run directory).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunDirError::NotARunDir { .. }
            | RunDirError::AlreadyExists { .. }
            | RunDirError::NotEmpty { .. } => crate::exit::INVALID,
            _ => crate::exit::ENVIRONMENT,
        }
    }
}

/// Who holds a run directory's lock: the pid from the OS lock table (Linux), else as the holder
/// wrote it in `run.lock`, with the host and start time it wrote there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub pid: Option<u32>,
    pub host: Option<String>,
    pub since: Option<String>,
}

/// An open run directory. Opened by `create`/`open` it holds the exclusive lock until dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    manifest: Manifest,
    /// The locked directory handle; None for a read-only view.
    _lock: Option<File>,
}

impl RunDir {
    /// Create a run directory at `dir` (its parents as needed; `dir` itself with mode 0700):
    /// take the lock, write `journal.jsonl` with its header (`manifest.run_id`), then `run.json`
    /// atomically, both mode 0600. A directory that exists is refused when it holds a run
    /// ([`RunDirError::AlreadyExists`]) or anything else ([`RunDirError::NotEmpty`]), except the
    /// leftovers of a creation that crashed before `run.json` was written (a header-only
    /// journal, `run.lock`, `*.tmp`), which are replaced.
    ///
    /// The journal comes first so that a `run.json` without a journal can only mean damage.
    pub fn create(dir: &Path, manifest: &Manifest) -> Result<RunDir, RunDirError> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(RunDirError::io(parent))?;
        }
        match private_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !dir.is_dir() {
                    return Err(RunDirError::NotEmpty {
                        path: dir.to_path_buf(),
                    });
                }
            }
            Err(e) => return Err(RunDirError::io(dir)(e)),
        }
        Self::init(dir, manifest)
    }

    /// Create a new run directory `parent/base`, or `parent/base-2`, `-3`, … when that exists:
    /// each candidate is made with one `mkdir` (atomic: two processes never get the same one),
    /// and an existing directory is never reused. The run id becomes the directory's name, so
    /// it is unique among the runs under `parent`. Otherwise as [`create`](Self::create).
    pub fn create_unique(
        parent: &Path,
        base: &str,
        manifest: &Manifest,
    ) -> Result<RunDir, RunDirError> {
        fs::create_dir_all(parent).map_err(RunDirError::io(parent))?;
        for n in 1u32.. {
            let name = if n == 1 {
                base.to_string()
            } else {
                format!("{base}-{n}")
            };
            let dir = parent.join(&name);
            match private_dir(&dir) {
                Ok(()) => {
                    let manifest = Manifest {
                        run_id: name,
                        ..manifest.clone()
                    };
                    return Self::init(&dir, &manifest);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(RunDirError::io(&dir)(e)),
            }
        }
        unreachable!("u32 run directory suffixes exhausted")
    }

    /// Lock the (existing) directory `dir`, check it is free for a new run, write the journal
    /// header and the manifest.
    fn init(dir: &Path, manifest: &Manifest) -> Result<RunDir, RunDirError> {
        if let Some(parent) = dir.parent() {
            // make the new directory's own entry durable too
            sync_dir(parent).map_err(RunDirError::io(parent))?;
        }
        let lock = take_lock(dir)?;
        let mpath = dir.join(MANIFEST_FILE);
        if mpath.exists() {
            return Err(RunDirError::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        let jpath = dir.join(JOURNAL_FILE);
        if jpath.exists() && !crate::journal::is_header_only(&jpath)? {
            return Err(RunDirError::MissingManifest {
                path: dir.to_path_buf(),
            });
        }
        let entries = fs::read_dir(dir).map_err(RunDirError::io(dir))?;
        for entry in entries {
            let name = entry.map_err(RunDirError::io(dir))?.file_name();
            let name = name.to_string_lossy();
            let leftover = name == LOCK_FILE || name == JOURNAL_FILE || name.ends_with(".tmp");
            if !leftover {
                return Err(RunDirError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
        }
        crate::journal::JournalWriter::create(&jpath, &manifest.run_id)
            .map_err(RunDirError::io(&jpath))?;
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
    /// take the lock, check that the journal is there and belongs to this run.
    pub fn open(dir: &Path) -> Result<RunDir, RunDirError> {
        // Read first so that a wrong path is reported as such, not as a lock problem.
        read_manifest(dir)?;
        let lock = take_lock(dir)?;
        let manifest = read_manifest(dir)?;
        check_journal(dir, &manifest)?;
        Ok(RunDir {
            path: dir.to_path_buf(),
            manifest,
            _lock: Some(lock),
        })
    }

    /// Open a run directory without the lock, for `status` (which only reads). Same checks as
    /// [`open`](Self::open) otherwise.
    pub fn open_readonly(dir: &Path) -> Result<RunDir, RunDirError> {
        let manifest = read_manifest(dir)?;
        check_journal(dir, &manifest)?;
        Ok(RunDir {
            path: dir.to_path_buf(),
            manifest,
            _lock: None,
        })
    }

    /// Change `run.json` (atomically): what a run learns after it started, e.g. the rows of
    /// `input.list` once listed (their file, digest and count).
    pub fn update_manifest(&mut self, change: impl FnOnce(&mut Manifest)) -> io::Result<()> {
        let mut m = self.manifest.clone();
        change(&mut m);
        let mut bytes = serde_json::to_vec_pretty(&m).map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_atomically(&self.path.join(MANIFEST_FILE), &bytes)?;
        self.manifest = m;
        Ok(())
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
    /// directory), and who. For `status`: it probes with a shared lock released at once, so a
    /// `run`/`resume` starting in that same instant may be told the directory is in use (and
    /// can simply be started again). Never creates a file.
    pub fn holder(&self) -> Option<LockHolder> {
        use fs4::fs_std::FileExt;
        if self._lock.is_some() {
            return None;
        }
        let file = File::open(&self.path).ok()?;
        match FileExt::try_lock_shared(&file) {
            Ok(true) => {
                let _ = FileExt::unlock(&file);
                None
            }
            Ok(false) => Some(read_holder(&self.path, &file)),
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

fn not_a_run_dir(dir: &Path, reason: &str) -> RunDirError {
    RunDirError::NotARunDir {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, RunDirError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_a_run_dir(dir, "a file, not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(not_a_run_dir(dir, "no such directory"))
        }
        Err(e) => return Err(RunDirError::io(dir)(e)),
    }
    let mpath = dir.join(MANIFEST_FILE);
    let bytes = match fs::read(&mpath) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A journal with records and no manifest is a run that lost its manifest; a
            // header-only journal is a creation that crashed before anything was sent.
            let jpath = dir.join(JOURNAL_FILE);
            if jpath.exists() && !crate::journal::is_header_only(&jpath)? {
                return Err(RunDirError::MissingManifest {
                    path: dir.to_path_buf(),
                });
            }
            return Err(not_a_run_dir(dir, "no run.json"));
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

/// The journal must be there (it is written before `run.json`) and its header must name this
/// run.
fn check_journal(dir: &Path, manifest: &Manifest) -> Result<(), RunDirError> {
    let jpath = dir.join(JOURNAL_FILE);
    match crate::journal::read_header(&jpath)? {
        None => Err(RunDirError::MissingJournal { path: jpath }),
        Some(h) if h.run_id != manifest.run_id => Err(RunDirError::ForeignJournal {
            path: jpath,
            journal_run_id: h.run_id,
            manifest_run_id: manifest.run_id.clone(),
        }),
        Some(_) => Ok(()),
    }
}

/// Take the exclusive lock on the run directory itself and record who holds it in `run.lock`.
/// The lock is on the directory's handle, not on a file in it, so deleting or replacing
/// `run.lock` cannot let a second writer in.
fn take_lock(dir: &Path) -> Result<File, RunDirError> {
    use fs4::fs_std::FileExt;
    let handle = File::open(dir).map_err(RunDirError::io(dir))?;
    let got = FileExt::try_lock_exclusive(&handle).map_err(RunDirError::io(dir))?;
    if !got {
        let h = read_holder(dir, &handle);
        return Err(RunDirError::Locked {
            path: dir.to_path_buf(),
            pid: h.pid,
            host: h.host,
            since: h.since,
        });
    }
    // We hold it: record who we are (informational: the flock is the lock).
    let text = format!(
        "pid {}\nhost {}\nsince {}\n",
        std::process::id(),
        hostname(),
        crate::journal::timestamp()
    );
    let lpath = dir.join(LOCK_FILE);
    write_atomically(&lpath, text.as_bytes()).map_err(RunDirError::io(&lpath))?;
    Ok(handle)
}

/// Who holds the lock on `dir` (whose open handle is `handle`).
fn read_holder(dir: &Path, handle: &File) -> LockHolder {
    let text = fs::read_to_string(dir.join(LOCK_FILE)).unwrap_or_default();
    let written = parse_lock_text(&text);
    match os_lock_holder(handle) {
        // run.lock is another process's (deleted and not rewritten, or stale): trust the OS
        Some(pid) if written.pid != Some(pid) => LockHolder {
            pid: Some(pid),
            host: None,
            since: None,
        },
        _ => written,
    }
}

/// The pid holding a `flock` on the file behind `handle`, from `/proc/locks` (Linux; None
/// elsewhere or when not found).
fn os_lock_holder(handle: &File) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let m = handle.metadata().ok()?;
        let dev = m.dev();
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let want = format!("{major:02x}:{minor:02x}:{}", m.ino());
        let ino_suffix = format!(":{}", m.ino());
        let locks = fs::read_to_string("/proc/locks").ok()?;
        let mut by_inode = Vec::new();
        for line in locks.lines() {
            // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:246951 0 EOF"; "1: -> FLOCK …" is a waiter
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || f[1] != "FLOCK" {
                continue;
            }
            let Ok(pid) = f[4].parse::<u32>() else {
                continue;
            };
            if f[5] == want {
                return Some(pid);
            }
            if f[5].ends_with(&ino_suffix) {
                by_inode.push(pid);
            }
        }
        // Some file systems (overlayfs) report another device number: accept a unique inode.
        (by_inode.len() == 1).then(|| by_inode[0])
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = handle;
        None
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn parse_lock_text(text: &str) -> LockHolder {
    let mut h = LockHolder {
        pid: None,
        host: None,
        since: None,
    };
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("pid ") {
            h.pid = p.trim().parse().ok();
        } else if let Some(s) = line.strip_prefix("host ") {
            h.host = Some(s.trim().to_string());
        } else if let Some(s) = line.strip_prefix("since ") {
            h.since = Some(s.trim().to_string());
        }
    }
    h
}

/// Create (or truncate) a file readable and writable by its owner only (mode 0600 on Unix,
/// also when it existed with a wider mode). Run directories hold customer data.
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path)?;
    restrict(&f)?;
    Ok(f)
}

/// Set an open file's mode to 0600 (Unix).
pub(crate) fn restrict(f: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if f.metadata()?.permissions().mode() & 0o777 != 0o600 {
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = f;
    Ok(())
}

/// `mkdir` with mode 0700 (Unix); fails with `AlreadyExists` if `dir` exists.
fn private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Write `bytes` to `path` so that a reader sees the old file or the new one, never a mix:
/// write a sibling temp file (mode 0600), fsync it, rename it over `path`, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = create_private(&tmp)?;
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
            ..Manifest::default()
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
        assert_eq!(e.exit_code(), crate::exit::INVALID);
        assert!(e.to_string().contains("cosell resume"), "{e}");
    }

    #[test]
    fn second_open_is_locked_and_names_our_pid_until_the_first_is_dropped() {
        let t = tempfile::tempdir().unwrap();
        let first = RunDir::create(t.path(), &manifest()).unwrap();
        let e = RunDir::open(t.path()).unwrap_err();
        match &e {
            RunDirError::Locked {
                pid, since, host, ..
            } => {
                assert_eq!(*pid, Some(std::process::id()));
                assert!(since.is_some());
                assert!(host.is_some());
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
    fn create_writes_the_journal_header_first_and_open_checks_it_belongs() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r");
        drop(RunDir::create(&dir, &manifest()).unwrap());
        let h = crate::journal::read_header(&dir.join(JOURNAL_FILE))
            .unwrap()
            .unwrap();
        assert_eq!(h.run_id, manifest().run_id);
        assert_eq!(h.format, crate::journal::JOURNAL_FORMAT);

        // a journal copied in from another run
        let other = t.path().join("other");
        let m2 = Manifest {
            run_id: "invite-20261122T194501.000Z".into(),
            ..manifest()
        };
        drop(RunDir::create(&other, &m2).unwrap());
        fs::copy(other.join(JOURNAL_FILE), dir.join(JOURNAL_FILE)).unwrap();
        for e in [
            RunDir::open(&dir).unwrap_err(),
            RunDir::open_readonly(&dir).unwrap_err(),
        ] {
            assert!(matches!(e, RunDirError::ForeignJournal { .. }), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("invite-20261122T194501.000Z")
                    && msg.contains("invite-20261122T194500Z")
                    && msg.contains("journal.jsonl"),
                "{msg}"
            );
            assert_eq!(e.exit_code(), crate::exit::ENVIRONMENT);
        }

        // no journal beside run.json
        fs::remove_file(dir.join(JOURNAL_FILE)).unwrap();
        for e in [
            RunDir::open(&dir).unwrap_err(),
            RunDir::open_readonly(&dir).unwrap_err(),
        ] {
            assert!(matches!(e, RunDirError::MissingJournal { .. }), "{e}");
            assert_eq!(e.exit_code(), crate::exit::ENVIRONMENT);
        }
        // an empty one
        fs::write(dir.join(JOURNAL_FILE), "").unwrap();
        let e = RunDir::open_readonly(&dir).unwrap_err();
        assert!(
            matches!(
                e,
                RunDirError::Journal(crate::journal::JournalError::NoHeader { .. })
            ),
            "{e}"
        );
    }

    #[test]
    fn a_journal_without_run_json_is_damage_unless_only_its_header_was_written() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r");
        drop(RunDir::create(&dir, &manifest()).unwrap());
        // a crash between the journal header and run.json: nothing was sent
        fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        let e = RunDir::open(&dir).unwrap_err();
        assert!(matches!(e, RunDirError::NotARunDir { .. }), "{e}");
        assert_eq!(e.exit_code(), crate::exit::INVALID);
        // ... and `run --run-dir` may create the run there again
        drop(RunDir::create(&dir, &manifest()).unwrap());
        // a journal with records and no run.json: damage
        let mut w = crate::journal::JournalWriter::open(&dir.join(JOURNAL_FILE)).unwrap();
        w.append(&crate::journal::Record::RetryFailedRows { at: "t".into() })
            .unwrap();
        w.commit().unwrap();
        fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        for e in [
            RunDir::open(&dir).unwrap_err(),
            RunDir::open_readonly(&dir).unwrap_err(),
            RunDir::create(&dir, &manifest()).unwrap_err(),
        ] {
            assert!(matches!(e, RunDirError::MissingManifest { .. }), "{e}");
            assert_eq!(e.exit_code(), crate::exit::ENVIRONMENT);
        }
    }

    #[test]
    fn not_a_run_directory_names_the_path_and_what_a_run_directory_is() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("file");
        fs::write(&file, "x").unwrap();
        for (p, why) in [
            (t.path().join("missing"), "no such directory"),
            (t.path().to_path_buf(), "no run.json"),
            (file, "a file, not a directory"),
        ] {
            for e in [
                RunDir::open(&p).unwrap_err(),
                RunDir::open_readonly(&p).unwrap_err(),
            ] {
                let msg = e.to_string();
                assert!(matches!(e, RunDirError::NotARunDir { .. }), "{msg}");
                assert_eq!(e.exit_code(), crate::exit::INVALID);
                assert!(msg.contains(&p.display().to_string()), "{msg}");
                assert!(msg.contains(why), "{msg}");
                assert!(msg.contains("holding run.json and journal.jsonl"), "{msg}");
            }
        }
    }

    #[test]
    fn create_refuses_a_directory_holding_other_files() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("notes.txt"), "mine").unwrap();
        let e = RunDir::create(t.path(), &manifest()).unwrap_err();
        assert!(matches!(e, RunDirError::NotEmpty { .. }), "{e}");
        assert!(t.path().join("notes.txt").exists());
        assert!(!t.path().join(MANIFEST_FILE).exists());
        // an empty one is fine
        let empty = t.path().join("empty");
        fs::create_dir(&empty).unwrap();
        RunDir::create(&empty, &manifest()).unwrap();
    }

    #[test]
    fn create_unique_never_reuses_a_directory_and_names_the_run_after_it() {
        let t = tempfile::tempdir().unwrap();
        let runs = t.path().join("runs");
        let base = "invite-20261122T194500.000Z";
        // someone else's directory of that name, even an empty one, is not reused
        fs::create_dir_all(runs.join(base)).unwrap();
        let a = RunDir::create_unique(&runs, base, &manifest()).unwrap();
        let b = RunDir::create_unique(&runs, base, &manifest()).unwrap();
        assert_eq!(a.path(), runs.join(format!("{base}-2")));
        assert_eq!(b.path(), runs.join(format!("{base}-3")));
        assert_eq!(a.manifest().run_id, format!("{base}-2"));
        assert_eq!(b.manifest().run_id, format!("{base}-3"));
        assert!(fs::read_dir(runs.join(base)).unwrap().next().is_none());
        drop(a);
        let a = RunDir::open(&runs.join(format!("{base}-2"))).unwrap();
        assert_eq!(a.manifest().run_id, format!("{base}-2"));
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/x");
        let _rd = RunDir::create(&dir, &manifest()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in [MANIFEST_FILE, JOURNAL_FILE, LOCK_FILE] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        // a temp file left world-readable by something else is narrowed when rewritten
        let p = dir.join("x.json");
        fs::write(tmp_path(&p), "old").unwrap();
        fs::set_permissions(tmp_path(&p), fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&p, b"new").unwrap();
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn deleting_run_lock_does_not_release_the_lock_and_the_holder_is_still_named() {
        let t = tempfile::tempdir().unwrap();
        let first = RunDir::create(t.path(), &manifest()).unwrap();
        let text = fs::read_to_string(t.path().join(LOCK_FILE)).unwrap();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("host ") && text.contains("since "), "{text}");
        fs::remove_file(t.path().join(LOCK_FILE)).unwrap();
        let e = RunDir::open(t.path()).unwrap_err();
        match &e {
            RunDirError::Locked { pid, .. } => {
                if cfg!(target_os = "linux") {
                    // from the OS lock table: run.lock is gone
                    assert_eq!(*pid, Some(std::process::id()), "{e}");
                }
            }
            other => panic!("want Locked, got {other}"),
        }
        assert!(!t.path().join(LOCK_FILE).exists());
        drop(first);
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
        assert_eq!(e.exit_code(), crate::exit::INVALID);
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

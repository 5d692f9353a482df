//! Test support: a builder that runs the real `cosell` binary in a temp dir, and an SDK
//! client for a running emulator.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root (for `playbooks/` and `examples/`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cosell` with arguments in a fresh temporary working directory.
pub struct Cosell {
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    dir: Dir,
    stdin: Option<String>,
}

/// The working directory: a fresh temporary one, or one a test keeps across several runs.
#[derive(Debug)]
pub enum Dir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Dir {
    pub fn path(&self) -> &Path {
        match self {
            Dir::Temp(t) => t.path(),
            Dir::Kept(p) => p,
        }
    }
}

/// What one run of `cosell` did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: Dir,
}

impl Cosell {
    pub fn new() -> Self {
        Cosell {
            args: Vec::new(),
            env: Vec::new(),
            dir: Dir::Temp(tempfile::tempdir().expect("temp dir")),
            stdin: None,
        }
    }
    /// Run in an existing directory (several runs share it: a run, then its resume).
    pub fn in_dir(dir: &Path) -> Self {
        Cosell {
            dir: Dir::Kept(dir.to_path_buf()),
            ..Cosell::new()
        }
    }
    /// Call Partner Central at `endpoint` as partner account `account` (static credentials
    /// in the environment, no shared config, no instance metadata).
    pub fn calling_as(self, endpoint: &str, account: &str) -> Self {
        self.arg("--endpoint-url")
            .arg(endpoint)
            .env("AWS_ACCESS_KEY_ID", account)
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
    }
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, it: I) -> Self {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn stdin(mut self, s: &str) -> Self {
        self.stdin = Some(s.into());
        self
    }
    /// Write a file (relative to the working directory) before running.
    pub fn file(self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, contents).unwrap();
        self
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// The configured command, to spawn by hand (kill tests).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosell"));
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
    /// Start it with its output captured (for tests that signal it and read what it said).
    pub fn spawn_piped(&self) -> std::process::Child {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cosell")
    }
    pub fn run(self) -> Outcome {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn cosell");
        if let Some(input) = &self.stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().expect("wait for cosell");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir,
        }
    }
}

impl Outcome {
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "exit code {} (want {want})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn stdout_has(&self, s: &str) -> &Self {
        assert!(
            self.stdout.contains(s),
            "stdout lacks {s:?}:\n{}",
            self.stdout
        );
        self
    }
    #[track_caller]
    pub fn stderr_has(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// A real SDK client for an emulator at `endpoint`, calling as `access_key_id` (a 12-digit key
/// id is the caller's partner account), with SDK retries off so tests see every error.
pub fn sdk_client(endpoint: &str, access_key_id: &str) -> aws_sdk_partnercentralselling::Client {
    use aws_sdk_partnercentralselling::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_partnercentralselling::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            access_key_id,
            "test-secret",
            None,
            None,
            "test",
        ))
        .retry_config(aws_sdk_partnercentralselling::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_partnercentralselling::Client::from_conf(conf)
}

/// An emulator running in-process on an ephemeral loopback port, for as long as it lives.
pub struct Emu {
    rt: tokio::runtime::Runtime,
    handle: Option<cosell::emulator::EmulatorHandle>,
    url: String,
}

impl Emu {
    /// `quotas` as the `--quotas` flag, `faults` as `--faults`, `task_delay` as `--task-delay`.
    pub fn start(quotas: &str, faults: &str, seed: u64, task_delay: &str) -> Emu {
        Emu::start_with_ttl(quotas, faults, seed, task_delay, "15d")
    }
    /// As [`Emu::start`], with invitations expiring after `ttl`.
    pub fn start_with_ttl(
        quotas: &str,
        faults: &str,
        seed: u64,
        task_delay: &str,
        ttl: &str,
    ) -> Emu {
        Emu::start_adjusted(quotas, faults, seed, task_delay, |a| {
            a.invitation_ttl = ttl.into()
        })
    }
    /// As [`Emu::start`], with further flags set by `adjust` (e.g. `--daily`).
    pub fn start_adjusted(
        quotas: &str,
        faults: &str,
        seed: u64,
        task_delay: &str,
        adjust: impl FnOnce(&mut cosell::emulator::EmulatorArgs),
    ) -> Emu {
        let ttl = "15d";
        let mut args = cosell::emulator::EmulatorArgs {
            bind: "127.0.0.1:0".parse().unwrap(),
            default_account: "111122223333".into(),
            invitation_ttl: ttl.into(),
            task_delay: task_delay.into(),
            quotas: quotas.into(),
            daily: vec![],
            quota_window: "24h".into(),
            faults: faults.into(),
            seed,
            state: None,
            persist_every_write: false,
            fixture: None,
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
        };
        adjust(&mut args);
        let config = cosell::emulator::EmulatorConfig::from_args(&args).expect("emulator flags");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let handle = rt
            .block_on(cosell::emulator::start(config, args.bind))
            .expect("start emulator");
        let url = handle.url();
        Emu {
            rt,
            handle: Some(handle),
            url,
        }
    }
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn stats(&self) -> serde_json::Value {
        self.handle.as_ref().unwrap().stats()
    }
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.rt.block_on(h.shutdown());
        }
    }
}

/// A ledger.csv as a list of rows keyed by column name.
pub fn read_ledger(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = r
        .headers()
        .unwrap()
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// The ledger at `path`, after asserting that every row succeeded.
#[track_caller]
pub fn all_succeeded(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let ledger = read_ledger(path);
    assert!(
        ledger.iter().all(|r| r["status"] == "succeeded"),
        "{ledger:#?}"
    );
    ledger
}

/// A TCP proxy on an ephemeral loopback port in front of `upstream` (`host:port`), that a
/// test can take away: `cut()` closes the listener and every connection through it, so the
/// endpoint becomes unreachable (connection refused) while the emulator behind stays up.
pub struct Proxy {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    addr: std::net::SocketAddr,
}

impl Proxy {
    pub fn start(upstream_url: &str) -> Proxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let upstream = upstream_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c) = (stop.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut g = c.lock().unwrap();
                    g.push(client.try_clone().unwrap());
                    g.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
            // dropping the listener here refuses every later connection
        });
        Proxy {
            url: format!("http://{addr}"),
            stop,
            conns,
            addr,
        }
    }
    pub fn url(&self) -> &str {
        &self.url
    }
    /// Take the endpoint away: refuse new connections and cut the open ones.
    pub fn cut(&self) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop so that it sees the flag and drops the listener
        let _ = std::net::TcpStream::connect(self.addr);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Send `sig` (`-INT`, `-TERM`, `-HUP`, `-KILL`) to `pid`, with `kill` from procps: no libc
/// binding needed in the tests.
pub fn signal(pid: u32, sig: &str) {
    std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
}

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
    dir: tempfile::TempDir,
    stdin: Option<String>,
}

/// What one run of `cosell` did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

impl Cosell {
    pub fn new() -> Self {
        Cosell {
            args: Vec::new(),
            env: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            stdin: None,
        }
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
    pub fn run(self) -> Outcome {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosell"));
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
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

//! A faithful local Partner Central Selling API (AWS JSON 1.0 over HTTP).
//!
//! Owns: the HTTP server, SigV4 identity (access key id → partner account), request
//! validation through `model`, the in-memory resources (engagements, invitations,
//! opportunities, tasks), idempotency, quotas, fault injection, state files and stats.
//! Must not touch: playbooks, CSV, the engine, journal or ledger. It shares only `model`.
//!
//! Rules the emulator keeps (documented for users in the README):
//! - Identity: a request without a SigV4 `Authorization` header is refused
//!   (`MissingAuthenticationTokenException`, 403). The caller's partner account is the access
//!   key id when it is 12 digits, otherwise `--default-account`. Signatures are not checked.
//! - Order of checks: route, signature, target, content type, declared length, fault draw,
//!   body (≤ 1 MiB), quota, JSON, model validation, catalog (`AWS`/`Sandbox`), idempotency,
//!   business rules.
//! - Tasks complete lazily: the first request (or stats read) after `--task-delay` completes
//!   them. An accepting task FAILS when, at completion, its invitation has expired
//!   (`InvitationValidationFailed`) or is no longer PENDING because another task or a rejection
//!   got there first (`EngagementInvitationConflict`). A from-opportunity task FAILS when its
//!   opportunity already started an engagement in the meantime (`OpportunityConflict`).
//! - Faults: each request that passes the framing checks draws once from the seeded generator;
//!   a `reset` drops the connection before the effect (first half of its slice) or after it.

mod config;
mod error;
mod limits;
mod ops;
mod server;
mod state;

pub use config::{parse_duration, Fault, Faults, Quotas};
pub use ops::OPERATIONS;

use clap::Args;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// `cosell emulator` flags.
#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (loopback by default; another address exposes the emulator).
    #[arg(long, default_value = "127.0.0.1:4566")]
    pub bind: SocketAddr,
    /// The partner account of callers whose access key id is not 12 digits.
    #[arg(long, default_value = "111122223333")]
    pub default_account: String,
    /// How long an invitation stays PENDING before it is EXPIRED (e.g. 15d, 2h, 30s).
    #[arg(long, default_value = "15d")]
    pub invitation_ttl: String,
    /// How long a Start…Task stays IN_PROGRESS (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s")]
    pub task_delay: String,
    /// Quotas: `aws` (documented), `none`, or `xN` (N times the documented rates).
    #[arg(long, default_value = "aws")]
    pub quotas: String,
    /// Injected faults: `throttle=0.05,internal=0.02,reset=0.01,latency=300ms@0.05`.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Seed for the fault generator (deterministic faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Load state from FILE at start and write it back at clean shutdown.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

/// Everything the emulator needs to run (the embeddable form of [`EmulatorArgs`]).
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The partner account of callers whose access key id is not 12 digits.
    pub default_account: String,
    /// How long an invitation stays PENDING before it reads as EXPIRED.
    pub invitation_ttl: Duration,
    /// How long a Start…Task stays IN_PROGRESS before it completes (or fails).
    pub task_delay: Duration,
    pub quotas: Quotas,
    pub faults: Faults,
    /// Seed of the fault generator (and of resource ids).
    pub seed: u64,
    /// State file: loaded at start when it exists, written at shutdown.
    pub state: Option<PathBuf>,
}

impl Default for EmulatorConfig {
    /// Account 111122223333, invitations expire after 15 days, tasks take 2 s, documented
    /// AWS quotas, no faults, seed 0, no state file.
    fn default() -> Self {
        EmulatorConfig {
            default_account: "111122223333".into(),
            invitation_ttl: Duration::from_secs(15 * 86_400),
            task_delay: Duration::from_secs(2),
            quotas: Quotas::Aws,
            faults: Faults::default(),
            seed: 0,
            state: None,
        }
    }
}

impl EmulatorConfig {
    /// Parse the CLI flags; the error names the flag, the rule and an example.
    pub fn from_args(a: &EmulatorArgs) -> Result<Self, String> {
        let acct = a.default_account.trim();
        if !(acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!(
                "--default-account {acct:?}: a partner account is 12 digits, e.g. 111122223333"
            ));
        }
        Ok(EmulatorConfig {
            default_account: acct.to_string(),
            invitation_ttl: parse_duration(&a.invitation_ttl)
                .map_err(|e| format!("--invitation-ttl: {e}"))?,
            task_delay: parse_duration(&a.task_delay).map_err(|e| format!("--task-delay: {e}"))?,
            quotas: Quotas::parse(&a.quotas)?,
            faults: Faults::parse(&a.faults)?,
            seed: a.seed,
            state: a.state.clone(),
        })
    }
}

/// A running emulator.
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: watch::Sender<bool>,
    accept_loop: tokio::task::JoinHandle<()>,
}

/// Start serving on `bind` (use `127.0.0.1:0` for an ephemeral port). Loads the state file
/// when the config names one that exists.
pub async fn start(config: EmulatorConfig, bind: SocketAddr) -> std::io::Result<EmulatorHandle> {
    let st = match &config.state {
        Some(p) => state::State::load(p, config.seed)?,
        None => None,
    }
    .unwrap_or_else(|| state::State::new(config.seed));
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(server::Shared::new(config, st));
    let (stop, stop_rx) = watch::channel(false);
    let accept_loop = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
    Ok(EmulatorHandle {
        addr,
        shared,
        stop,
        accept_loop,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<server::Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.changed() => return,
        };
        let stream = match conn {
            Ok((s, _)) => s,
            Err(e) => {
                // out of file descriptors and the like: back off briefly, keep serving
                tracing::warn!("emulator accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| server::handle(shared.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The same document as `GET /_emulator/stats`.
    pub fn stats(&self) -> serde_json::Value {
        self.shared.stats()
    }

    /// Stop accepting, close connections gracefully, and write the state file.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        let _ = self.accept_loop.await;
        if let Some(p) = &self.shared.config.state {
            let st = self.shared.lock();
            st.save(p)?;
        }
        Ok(())
    }
}

/// `cosell emulator`: serve until SIGINT/SIGTERM, then save the state file.
pub fn main(args: EmulatorArgs) -> i32 {
    let config = match EmulatorConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::INVALID;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return crate::exit::ENVIRONMENT;
        }
    };
    rt.block_on(async move {
        let default_account = config.default_account.clone();
        let summary = format!(
            "quotas {}, invitation ttl {:?}, task delay {:?}{}",
            config.quotas,
            config.invitation_ttl,
            config.task_delay,
            if config.faults.any() {
                format!(", faults {:?} seed {}", args.faults, config.seed)
            } else {
                String::new()
            }
        );
        let handle = match start(config, args.bind).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: cannot start the emulator on {}: {e}", args.bind);
                return crate::exit::ENVIRONMENT;
            }
        };
        println!(
            "cosell emulator listening on {} (account rule: a 12-digit access key id is the caller's partner account, any other key is {default_account}; {summary})",
            handle.url()
        );
        wait_for_signal().await;
        match handle.shutdown().await {
            Ok(()) => crate::exit::OK,
            Err(e) => {
                eprintln!("error: could not write the state file: {e}");
                crate::exit::ENVIRONMENT
            }
        }
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

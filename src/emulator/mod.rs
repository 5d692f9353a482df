//! A faithful local Partner Central Selling API (AWS JSON 1.0 over HTTP).
//!
//! Owns: the HTTP server, SigV4 identity (access key id → partner account), request
//! validation through `model`, the in-memory resources (engagements, invitations,
//! opportunities and their associations, solutions, tasks), idempotency, quotas, fault injection, state files and stats.
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
//!   opportunity was submitted in the meantime (`OpportunityConflict`); on an opportunity
//!   made from an engagement context it uses that engagement instead of creating one. An
//!   opportunity-from-engagement task FAILS on an unknown context (`ContextNotFound`) or when
//!   the caller already made an opportunity from that context (`OpportunityConflict`);
//!   prospecting tasks go PENDING, IN_PROGRESS, then COMPLETED (see `tasks`).
//! - Faults: each request that passes the framing checks draws once from the seeded generator;
//!   a `reset` drops the connection before the effect (first half of its slice) or after it.
//!   `task_failure` is drawn once per Start…Task from its own seeded generator (see `ops`).
//! - Connections cannot pin the emulator's file descriptors: a connection whose request head
//!   (or body) is not complete `header_read_timeout` (`--header-read-timeout`, 10 s) after its
//!   first byte is closed (slowloris), and a connection with no request in progress is closed
//!   after `idle_timeout` (`--idle-timeout`, 60 s) without a byte, whether it never sent one or
//!   is a kept-alive connection between requests. A request being answered is never cut.
//! - State file (`--state FILE`): locked for the emulator's lifetime (a second emulator on it
//!   fails at once naming the file and the holder's pid; the CLI exits 4), created 0600,
//!   written atomically at shutdown and, with `persist_every_write`
//!   (`--persist-every-write`), after every request that changed state (see `server`, `state`).
//! - Fixtures (`--fixture FILE`, `EmulatorConfig::fixture`, [`EmulatorHandle::load_fixture`])
//!   add resources that exist before a rehearsal; loading is idempotent (see `fixture`).
//! - STS `GetCallerIdentity` is served on the same endpoint (see `sts`).

mod config;
mod engagements;
mod error;
mod fixture;
mod invitations;
mod limits;
mod opportunities;
mod ops;
mod server;
mod settings;
mod snapshots;
mod solutions;
mod state;
mod sts;
mod tags;
mod tasks;

pub use config::{parse_duration, Fault, Faults, Quotas};
pub use fixture::Fixture;
pub use ops::OPERATIONS;
pub use sts::caller_identity_xml;

use clap::Args;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// A quota class's rolling budget, replacing the documented one (repeatable):
    /// `--daily write=100`.
    #[arg(long = "daily", value_name = "CLASS=N")]
    pub daily: Vec<String>,
    /// The length of the rolling quota window (default 24h), to rehearse multi-day campaigns.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub quota_window: String,
    /// Injected faults: `throttle=0.05,internal=0.02,reset=0.01,latency=300ms@0.05`.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Seed for the fault generator (deterministic faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Load state from FILE at start and write it back at clean shutdown (the file is locked
    /// against a second emulator and created with mode 0600).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Also write the --state file after every request that changed state, so that `kill -9`
    /// loses nothing the emulator acknowledged.
    #[arg(long, requires = "state")]
    pub persist_every_write: bool,
    /// Resources to create at start (YAML, or JSON when FILE ends in .json); items whose Id
    /// already exists are left as they are.
    #[arg(long, value_name = "FILE")]
    pub fixture: Option<PathBuf>,
    /// Close a connection whose request is not fully read this long after its first byte.
    #[arg(long, default_value = "10s")]
    pub header_read_timeout: String,
    /// Close a connection that sends nothing for this long between requests.
    #[arg(long, default_value = "60s")]
    pub idle_timeout: String,
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
    /// `--daily`: rolling budgets per class that replace the documented (scaled) ones.
    pub daily: std::collections::HashMap<crate::model::QuotaClass, u64>,
    /// `--quota-window`: the length of the rolling window of the budgets.
    pub quota_window: Duration,
    pub faults: Faults,
    /// Seed of the fault generator (and of resource ids).
    pub seed: u64,
    /// State file: loaded at start when it exists, written at shutdown; locked (one emulator
    /// per file) and created with mode 0600.
    pub state: Option<PathBuf>,
    /// Write the state file (atomically, fsynced) after every request that changed state,
    /// before answering it. Needs `state`.
    pub persist_every_write: bool,
    /// Resources loaded at start, after the state file (see [`Fixture`]).
    pub fixture: Option<Fixture>,
    /// A connection whose request head (or body) is incomplete this long after its first byte
    /// is closed.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for EmulatorConfig {
    /// Account 111122223333, invitations expire after 15 days, tasks take 2 s, documented
    /// AWS quotas, no faults, seed 0, no state file, no fixture, header read timeout 10 s,
    /// idle timeout 60 s.
    fn default() -> Self {
        EmulatorConfig {
            default_account: "111122223333".into(),
            invitation_ttl: Duration::from_secs(15 * 86_400),
            task_delay: Duration::from_secs(2),
            quotas: Quotas::Aws,
            daily: std::collections::HashMap::new(),
            quota_window: Duration::from_secs(86_400),
            faults: Faults::default(),
            seed: 0,
            state: None,
            persist_every_write: false,
            fixture: None,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
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
            daily: parse_daily(&a.daily)?,
            quota_window: parse_duration(&a.quota_window)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!(
                        "--quota-window {:?}: a duration such as 24h, 10m or 20s",
                        a.quota_window
                    )
                })?,
            faults: Faults::parse(&a.faults)?,
            seed: a.seed,
            state: a.state.clone(),
            persist_every_write: a.persist_every_write,
            fixture: match &a.fixture {
                Some(p) => Some(Fixture::from_file(p)?),
                None => None,
            },
            header_read_timeout: positive(&a.header_read_timeout, "--header-read-timeout")?,
            idle_timeout: positive(&a.idle_timeout, "--idle-timeout")?,
        })
    }
}

fn positive(v: &str, flag: &str) -> Result<Duration, String> {
    match parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("{flag} {v:?}: must be longer than 0, e.g. 10s")),
        Err(e) => Err(format!("{flag}: {e}")),
    }
}

/// The partner account the emulator (and its STS) assigns to an access key id: the key itself
/// when it is 12 digits, else `default_account`.
pub fn account_for_key(access_key_id: &str, default_account: &str) -> String {
    if access_key_id.len() == 12 && access_key_id.bytes().all(|b| b.is_ascii_digit()) {
        access_key_id.to_string()
    } else {
        default_account.to_string()
    }
}

/// A running emulator.
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: watch::Sender<bool>,
    accept_loop: tokio::task::JoinHandle<()>,
}

/// Start serving on `bind` (use `127.0.0.1:0` for an ephemeral port). Locks the state file
/// and loads it when it exists, then loads the fixture. Fails at once (`WouldBlock`, naming
/// the file and the holder's pid) when another emulator holds the state file.
pub async fn start(config: EmulatorConfig, bind: SocketAddr) -> std::io::Result<EmulatorHandle> {
    use std::io::{Error, ErrorKind};
    if config.persist_every_write && config.state.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "persist_every_write (--persist-every-write) needs a state file: set state (--state FILE)",
        ));
    }
    let lock = match &config.state {
        Some(p) => Some(state::StateLock::acquire(p)?),
        None => None,
    };
    let mut st = match &config.state {
        Some(p) => state::State::load(p, config.seed)?,
        None => None,
    }
    .unwrap_or_else(|| state::State::new(config.seed));
    if let Some(f) = &config.fixture {
        let ctx = fixture::LoadCtx {
            default_account: &config.default_account,
            ttl_ms: config.invitation_ttl.as_millis() as i64,
            now: state::now_ms(),
        };
        // InvalidInput: the caller's fixture is wrong (the CLI exits 2, not 4)
        fixture::load(&mut st, f, &ctx).map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
    }
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(server::Shared::new(config, st, lock));
    shared.persist_if_changed()?;
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
            let (header_timeout, idle_timeout) = (
                shared.config.header_read_timeout,
                shared.config.idle_timeout,
            );
            let clock = Arc::new(ConnClock::new());
            let io = Watched {
                inner: stream,
                clock: clock.clone(),
            };
            let busy = clock.clone();
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let guard = busy.begin();
                async move {
                    let r = server::handle(shared, req).await;
                    drop(guard);
                    r
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // dropping the connection closes the socket
                _ = watchdog(clock, header_timeout, idle_timeout) => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

/// What a connection is doing, for the idle and slow-request timeouts (milliseconds since the
/// connection was accepted).
struct ConnClock {
    base: Instant,
    /// Requests being served.
    in_flight: AtomicU64,
    /// 1 + when the first byte of the next request arrived; 0 when none has yet.
    first_byte: AtomicU64,
    /// When the connection last became idle (accepted, or a response finished).
    idle_since: AtomicU64,
}

impl ConnClock {
    fn new() -> Self {
        ConnClock {
            base: Instant::now(),
            in_flight: AtomicU64::new(0),
            first_byte: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
        }
    }
    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.first_byte.store(0, Relaxed);
        InFlight(self.clone())
    }
}

/// A request being served; dropping it (also when hyper cancels it) marks the end.
struct InFlight(Arc<ConnClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now(), Relaxed);
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Resolves when the connection must be closed: its request head has taken longer than
/// `header` since its first byte, or nothing arrived for `idle` while no request was in
/// progress. Requests being served are never cut here (their body read has its own bound).
async fn watchdog(clock: Arc<ConnClock>, header: Duration, idle: Duration) {
    let tick = (header.min(idle) / 8).clamp(Duration::from_millis(5), Duration::from_secs(1));
    let (header, idle) = (header.as_millis() as u64, idle.as_millis() as u64);
    loop {
        tokio::time::sleep(tick).await;
        if clock.in_flight.load(Relaxed) > 0 {
            continue;
        }
        let now = clock.now();
        let first = clock.first_byte.load(Relaxed);
        let late = if first != 0 {
            now.saturating_sub(first - 1) >= header
        } else {
            now.saturating_sub(clock.idle_since.load(Relaxed)) >= idle
        };
        if late {
            return;
        }
    }
}

/// The socket, noting when a request's first byte arrives.
struct Watched<S> {
    inner: S,
    clock: Arc<ConnClock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.clock.in_flight.load(Relaxed) == 0
            && self.clock.first_byte.load(Relaxed) == 0
        {
            let now = self.clock.now();
            self.clock.first_byte.store(now + 1, Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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

    /// Add a fixture's resources to the running emulator (see [`Fixture`]): returns how many
    /// items were added (items whose Id exists are left as they are). Nothing is added when an
    /// item is invalid; the error names it. Written through to the state file when
    /// `persist_every_write` is on.
    pub fn load_fixture(&self, fixture: &Fixture) -> Result<usize, String> {
        let c = &self.shared.config;
        let ctx = fixture::LoadCtx {
            default_account: &c.default_account,
            ttl_ms: c.invitation_ttl.as_millis() as i64,
            now: state::now_ms(),
        };
        let n = {
            let mut st = self.shared.lock();
            fixture::load(&mut st, fixture, &ctx)?
        };
        self.shared.persist_if_changed().map_err(|e| {
            format!(
                "the fixture was loaded but the state file {} could not be written: {e}",
                c.state
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            )
        })?;
        Ok(n)
    }

    /// Stop accepting, close connections gracefully, write the state file, and release its
    /// lock.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        let _ = self.accept_loop.await;
        let saved = self.shared.save_now();
        self.shared
            .state_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        saved
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
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                let prefix = match &args.fixture {
                    Some(p) if e.to_string().starts_with("fixture") => {
                        format!("--fixture {}: ", p.display())
                    }
                    _ => String::new(),
                };
                eprintln!("error: {prefix}{e}");
                return crate::exit::INVALID;
            }
            Err(e) => {
                // a locked or unreadable state file, an address in use
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

/// `--daily write=100`, repeatable: a class name and a whole number of requests.
fn parse_daily(
    flags: &[String],
) -> Result<std::collections::HashMap<crate::model::QuotaClass, u64>, String> {
    let classes: Vec<_> = crate::model::QuotaClass::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    let mut out = std::collections::HashMap::new();
    for f in flags {
        let (class, n) = f
            .split_once('=')
            .ok_or_else(|| format!("--daily {f:?}: expected CLASS=N, e.g. write=100"))?;
        let class = crate::model::QuotaClass::parse(class.trim()).ok_or_else(|| {
            format!(
                "--daily {f:?}: {:?} is not a quota class ({})",
                class.trim(),
                classes.join(", ")
            )
        })?;
        let n: u64 = n.trim().parse().map_err(|_| {
            format!("--daily {f:?}: the budget must be a whole number of requests, e.g. write=100")
        })?;
        out.insert(class, n);
    }
    Ok(out)
}

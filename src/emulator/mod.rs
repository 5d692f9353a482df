//! A faithful local Partner Central Selling API (AWS JSON 1.0 over HTTP).
//!
//! Owns: the HTTP server, SigV4 identity (access key id → partner account), request
//! validation through `model`, the in-memory resources (engagements, invitations,
//! opportunities, tasks), idempotency, quotas, fault injection, state files and stats.
//! Must not touch: playbooks, CSV, the engine, journal or ledger. It shares only `model`.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

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

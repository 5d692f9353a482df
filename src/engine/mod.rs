//! The scheduler: runs setup and rows through rate limiters, polls tasks, journals results.
//!
//! Owns: the coordinator loop, limiters, retries and backoff, task polling, and the
//! `ApiClient` trait with its SDK implementation. Must not touch: template syntax or CSV
//! parsing (it asks `plan` to render), on-disk formats (it asks `journal` and `ledger`).

pub mod api;
pub mod command;
pub mod coordinator;
pub mod limits;
pub mod listing;
pub mod live;
pub mod progress;
pub mod sdk;
mod sdk_gen;

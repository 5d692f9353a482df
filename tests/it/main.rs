//! The one integration-test binary: drives the real `cosell` binary and the real SDK.
mod campaigns;
mod emulator;
mod emulator_engagements;
mod emulator_offline;
mod emulator_opportunities;
mod emulator_snapshots;
mod engine;
mod journal;
mod quota;
mod rehearsal;
mod report;
mod resume;
mod run;
mod rundir;
mod sdk;
mod support;
mod validate;

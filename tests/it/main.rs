//! The one integration-test binary: drives the real `cosell` binary and the real SDK.
mod journal;
mod support;

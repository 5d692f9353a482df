//! The one integration-test binary: drives the real `cosell` binary and the real SDK.
mod support;
mod validate;

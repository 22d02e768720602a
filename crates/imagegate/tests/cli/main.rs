//! End-to-end tests of the `imagegate` binary against a real `docker-registry`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test set-up failures panic with their message

mod util;

mod bundles;
mod cluster;
mod deploy;
mod limits;
mod policies;
mod serve;
mod verify;
mod verify_bundle;
mod webhook;

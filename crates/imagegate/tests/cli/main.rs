//! End-to-end tests of the `imagegate` binary against a real `docker-registry`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test set-up failures panic with their message

mod util;

mod audit;
mod bundles;
mod deploy;
mod limits;
mod notation;
mod policies;
mod serve;
mod verify;
mod verify_bundle;
mod webhook;

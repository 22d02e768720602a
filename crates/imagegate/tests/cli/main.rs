//! End-to-end tests of the `imagegate` binary against a real `docker-registry`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test set-up failures panic with their message

mod util;

mod audit;
mod bundles;
mod chainsaw;
mod cluster;
mod crds;
mod deploy;
mod limits;
mod notation;
mod policies;
mod serve;
mod validate_policy;
mod verify;
mod verify_bundle;
mod webhook;

//! The policy crate's integration tests, one binary: loading and validation
//! (`policies`), conditions, and matching split by concern (kinds, names, selectors,
//! filters, autogen, image extraction, ImageInfo, image patterns). Fixtures live in
//! `tests/data/`, named after the case.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test set-up failures panic with their message

mod actions;
mod autogen;
mod conditions;
mod context; // rule `context` entries and the substitution of verifyImages entries
mod exceptions; // PolicyExceptions (kyverno.io/v2)
mod extraction;
mod filters;
mod image_info;
mod ivp; // ImageValidatingPolicy (CEL)
mod kinds;
mod names;
mod patterns;
mod policies;
mod reads;
mod selectors;
mod util;

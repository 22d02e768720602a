//! Kyverno `verifyImages` policies as users write them (and, in [`ivp`], the CEL
//! ImageValidatingPolicy kinds): the model (legacy and current
//! fields), validation with path-qualified errors, match/exclude, autogen for pod
//! controllers, image extraction and patterns, and conditions (JMESPath variables and
//! Kyverno's operators). Pure: nothing here fetches or verifies.
#![deny(missing_docs)]

pub mod autogen;
pub mod conditions;
pub mod error;
pub mod images;
pub mod ivp;
pub mod load;
pub mod matching;
pub mod model;
pub mod pattern;
pub mod validate;

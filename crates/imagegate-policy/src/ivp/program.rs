//! A compiled CEL expression with where it was written: what policies and exceptions
//! compile (a module of its own so both can use it without depending on each other).

use std::collections::BTreeSet;
use std::sync::Arc;

/// A compiled CEL expression and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// Field path, e.g. `spec.validations[1].expression`.
    pub path: String,
    /// The program.
    pub program: Arc<cel::Program>,
    /// Variables (`variables.<name>`) it reads.
    pub reads: BTreeSet<String>,
}

//! Errors of policy loading and validation: one enum, variants named after the cause.

use std::fmt;
use std::path::PathBuf;

/// Result of this crate's fallible functions.
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

/// One finding of policy validation: where (a Kyverno-style field path such as
/// `spec.rules[0].verifyImages[1].attestors[0].count`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path from the document root, e.g. `spec.rules[0].name`.
    pub path: String,
    /// What is wrong with that field.
    pub message: String,
}

impl FieldError {
    /// A finding at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is not well-formed YAML/JSON, or a field has the wrong type.
    /// `line`/`column` are 1-based positions in the whole source when known.
    #[error("{source_name}{}: {message}", location(*line, *column))]
    Yaml {
        /// File name (or other label) of the source text.
        source_name: String,
        /// 1-based line in the source, when known.
        line: Option<u64>,
        /// 1-based column in the source, when known.
        column: Option<u64>,
        /// Parser message, without location.
        message: String,
    },
    /// The policy parsed but breaks Kyverno's rules; every finding is listed.
    #[error("{source_name}: invalid policy {policy}:\n{}", join_errors(errors))]
    Invalid {
        /// File name (or other label) of the source text.
        source_name: String,
        /// `Kind/name` or `Kind/namespace/name` of the policy.
        policy: String,
        /// Every finding, in document order.
        errors: Vec<FieldError>,
    },
    /// A file or directory could not be read.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating-system error text.
        reason: String,
    },
    /// A policy file is larger than the limit; nothing of it was parsed.
    #[error("{}: file is {size} bytes, larger than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
}

fn location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

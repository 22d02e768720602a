//! ImageValidatingPolicy: loading and validation, CEL compilation, matching, autogen and
//! the pure evaluation with in-memory verification results.

mod chainsaw;
mod cli;
mod eval;
mod kyverno;
mod load;
mod matching;
mod support;

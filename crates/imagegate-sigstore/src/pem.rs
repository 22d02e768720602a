//! A small, strict PEM reader (RFC 7468 textual encoding), shared by every place that
//! reads PEM (keys, certificates, policies' key and chain fields).
//!
//! Text outside `-----BEGIN …-----` / `-----END …-----` pairs is ignored, as RFC 7468
//! allows. Every block is reported with its index (0-based, in order of appearance)
//! so that errors can say which block was wrong.

use thiserror::Error;

use crate::encoding;

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label between `BEGIN ` and the dashes, e.g. `PUBLIC KEY`.
    pub label: String,
    /// The decoded body.
    pub der: Vec<u8>,
}

/// Why a PEM text could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PemError {
    /// A `BEGIN` line has no matching `END` line.
    #[error("PEM block {index} (\"{label}\") has no END line")]
    MissingEnd {
        /// Block index.
        index: usize,
        /// Label of the BEGIN line.
        label: String,
    },
    /// The `END` label differs from the `BEGIN` label.
    #[error("PEM block {index} begins with \"{begin}\" but ends with \"{end}\"")]
    MismatchedEnd {
        /// Block index.
        index: usize,
        /// Label of the BEGIN line.
        begin: String,
        /// Label of the END line.
        end: String,
    },
    /// An `END` line without a `BEGIN` line.
    #[error("PEM END line \"{label}\" without a BEGIN line")]
    UnexpectedEnd {
        /// Label of the END line.
        label: String,
    },
    /// The body is not valid base64.
    #[error("PEM block {index} (\"{label}\") is not valid base64: {reason}")]
    Base64 {
        /// Block index.
        index: usize,
        /// Label.
        label: String,
        /// Decoder message.
        reason: String,
    },
    /// The body is empty.
    #[error("PEM block {index} (\"{label}\") is empty")]
    EmptyBody {
        /// Block index.
        index: usize,
        /// Label.
        label: String,
    },
}

fn boundary<'a>(line: &'a str, kind: &str) -> Option<&'a str> {
    line.strip_prefix("-----")?
        .strip_prefix(kind)?
        .strip_prefix(' ')?
        .strip_suffix("-----")
}

/// Encodes `der` as one PEM block labelled `label` (64-column base64 lines).
pub fn encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads every PEM block of `text`, in order.
pub fn parse_blocks(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some((label, body)) = current.as_mut() {
            if let Some(end) = boundary(line, "END") {
                let index = blocks.len();
                if end != label {
                    return Err(PemError::MismatchedEnd {
                        index,
                        begin: label.clone(),
                        end: end.to_owned(),
                    });
                }
                if body.is_empty() {
                    return Err(PemError::EmptyBody {
                        index,
                        label: label.clone(),
                    });
                }
                let der = encoding::decode_standard(body).map_err(|e| PemError::Base64 {
                    index,
                    label: label.clone(),
                    reason: e.to_string(),
                })?;
                blocks.push(PemBlock {
                    label: std::mem::take(label),
                    der,
                });
                current = None;
            } else {
                body.extend(line.chars().filter(|c| !c.is_whitespace()));
            }
        } else if let Some(begin) = boundary(line, "BEGIN") {
            current = Some((begin.to_owned(), String::new()));
        } else if let Some(end) = boundary(line, "END") {
            return Err(PemError::UnexpectedEnd {
                label: end.to_owned(),
            });
        }
    }
    if let Some((label, _)) = current {
        return Err(PemError::MissingEnd {
            index: blocks.len(),
            label,
        });
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks_and_ignores_explanatory_text() {
        let text = "hello\n-----BEGIN A-----\nAAEC\nAw==\n-----END A-----\nx\n-----BEGIN B C-----\n/w==\n-----END B C-----\n";
        let blocks = parse_blocks(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "A");
        assert_eq!(blocks[0].der, vec![0, 1, 2, 3]);
        assert_eq!(blocks[1].label, "B C");
        assert_eq!(blocks[1].der, vec![255]);
    }

    #[test]
    fn reports_errors_with_block_index() {
        let ok = "-----BEGIN A-----\nAA==\n-----END A-----\n";
        assert_eq!(
            parse_blocks(&format!("{ok}-----BEGIN A-----\nAA==\n")),
            Err(PemError::MissingEnd {
                index: 1,
                label: "A".into()
            })
        );
        assert!(matches!(
            parse_blocks(&format!("{ok}-----BEGIN A-----\n!!!!\n-----END A-----")),
            Err(PemError::Base64 { index: 1, .. })
        ));
        assert!(matches!(
            parse_blocks("-----BEGIN A-----\nAA==\n-----END B-----"),
            Err(PemError::MismatchedEnd { index: 0, .. })
        ));
        assert!(matches!(
            parse_blocks("-----BEGIN A-----\n-----END A-----"),
            Err(PemError::EmptyBody { index: 0, .. })
        ));
        assert!(matches!(
            parse_blocks("-----END A-----"),
            Err(PemError::UnexpectedEnd { .. })
        ));
        assert_eq!(parse_blocks("no pem here"), Ok(vec![]));
    }
}

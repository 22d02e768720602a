//! Loading policies from text and files: multi-document YAML (or JSON, a JSON array, or
//! a `kind: List`), skipping documents that are not `ClusterPolicy`/`Policy` (or an
//! ImageValidatingPolicy or a `kyverno.io` PolicyException, loaded beside them), then
//! validating ([`crate::validate`]) and normalising ([`crate::model::normalize`]) each
//! policy. Loaded policies are always in the current form.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{PolicyError, Result};
use crate::exception::{self, PolicyException};
use crate::model::{Policy, normalize};
use crate::unsupported::{PolicyWarning, unsupported_fields, unsupported_ivp_fields};
use crate::validate::{
    validate, validate_document, validate_exception, validate_exception_document,
};

/// Largest policy file (and text) accepted: 8 MiB.
pub const MAX_POLICY_BYTES: u64 = 8 * 1024 * 1024;

/// The policies of one or more sources, plus the documents that were not policies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedPolicies {
    /// Validated, normalised policies in source order.
    pub policies: Vec<Policy>,
    /// Documents skipped because their kind is not `ClusterPolicy`/`Policy`.
    pub skipped: Vec<SkippedDocument>,
    /// Fields of the policies that imagegate does not act on (log them).
    pub warnings: Vec<PolicyWarning>,
    /// Compiled `ImageValidatingPolicy`/`NamespacedImageValidatingPolicy` documents in
    /// source order.
    pub image_validating: Vec<crate::ivp::CompiledIvp>,
    /// Validated `kyverno.io/v2`/`v2beta1` PolicyExceptions in source order (found
    /// beside policies too, as Kyverno's CLI finds them).
    pub exceptions: Vec<PolicyException>,
    /// Compiled `policies.kyverno.io` PolicyExceptions (for ImageValidatingPolicies) in
    /// source order.
    pub cel_exceptions: Vec<crate::ivp::CompiledCelException>,
}

/// A document that was not a policy (e.g. a `Pod` or a `ConfigMap` in the same file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDocument {
    /// The source (file name) it came from.
    pub source: String,
    /// 1-based index of the document in its source.
    pub document: usize,
    /// Its `kind` (empty when absent).
    pub kind: String,
    /// Its `apiVersion` (empty when absent).
    pub api_version: String,
    /// Its `metadata.name`, when present.
    pub name: Option<String>,
}

impl fmt::Display for SkippedDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.kind.is_empty() {
            "document without kind"
        } else {
            &self.kind
        };
        write!(
            f,
            "{}: document {}: skipped {kind}",
            self.source, self.document
        )?;
        if let Some(name) = &self.name {
            write!(f, "/{name}")?;
        }
        write!(f, " (not a kyverno.io ClusterPolicy or Policy)")
    }
}

/// Parses, validates and normalises every `ClusterPolicy`/`Policy` of `text`; other
/// documents are skipped silently (use [`load_documents`] to see them). `source` names
/// the text in errors (usually the file name).
pub fn load_policies(text: &str, source: &str) -> Result<Vec<Policy>> {
    load_documents(text, source).map(|loaded| loaded.policies)
}

/// Like [`load_policies`], also returning the skipped documents.
pub fn load_documents(text: &str, source: &str) -> Result<LoadedPolicies> {
    if text.len() as u64 > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            path: PathBuf::from(source),
            size: text.len() as u64,
            limit: MAX_POLICY_BYTES,
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut loaded = LoadedPolicies::default();
    let mut index = 0;

    let trimmed = text.trim_start();
    // JSON (one object, an array of objects, or a List); anything else, including flow
    // YAML that is not JSON, goes to the YAML parser below.
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<Value>(text)
    {
        let typed = match value {
            Value::Object(_) => Typed::Json(text),
            _ => Typed::FromValue,
        };
        match value {
            Value::Array(items) => {
                for item in items {
                    index += 1;
                    process(item, Typed::FromValue, index, source, &mut loaded)?;
                }
            }
            other => {
                index += 1;
                process(other, typed, index, source, &mut loaded)?;
            }
        }
        return Ok(loaded);
    }

    for (line_offset, chunk) in split_documents(text) {
        index += 1;
        if is_blank_document(chunk) {
            continue;
        }
        let value: Value = serde_saphyr::from_str(chunk)
            .map_err(|e| yaml_error(&e, chunk, source, line_offset))?;
        if value.is_null() {
            continue;
        }
        process(
            value,
            Typed::Yaml(chunk, line_offset),
            index,
            source,
            &mut loaded,
        )?;
    }
    Ok(loaded)
}

/// Reads policy files and directories (their `*.yaml`, `*.yml`, `*.json` files, not
/// recursively, in name order). Files larger than [`MAX_POLICY_BYTES`] are refused.
/// Errors name the file.
pub fn load_policy_files(paths: &[PathBuf]) -> Result<LoadedPolicies> {
    let mut loaded = LoadedPolicies::default();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| io_error(path, &e))?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            for entry in fs::read_dir(path).map_err(|e| io_error(path, &e))? {
                let entry = entry.map_err(|e| io_error(path, &e))?;
                let file = entry.path();
                let is_policy_file = file.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    ["yaml", "yml", "json"]
                        .iter()
                        .any(|x| e.eq_ignore_ascii_case(x))
                });
                if is_policy_file && file.is_file() {
                    files.push(file);
                }
            }
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let text = read_limited(&file)?;
            let one = load_documents(&text, &file.display().to_string())?;
            loaded.policies.extend(one.policies);
            loaded.skipped.extend(one.skipped);
            loaded.warnings.extend(one.warnings);
            loaded.image_validating.extend(one.image_validating);
            loaded.exceptions.extend(one.exceptions);
            loaded.cel_exceptions.extend(one.cel_exceptions);
        }
    }
    Ok(loaded)
}

/// The text of the file `path`, refused when larger than [`MAX_POLICY_BYTES`] (read at
/// most that far, whatever its metadata says) or not UTF-8. For policy files and the
/// files that come with them (Kyverno CLI test and values files).
pub fn read_limited(path: &Path) -> Result<String> {
    let file = fs::File::open(path).map_err(|e| io_error(path, &e))?;
    let size = file.metadata().map_err(|e| io_error(path, &e))?.len();
    if size > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: MAX_POLICY_BYTES,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, &e))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: MAX_POLICY_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|e| PolicyError::Io {
        path: path.to_path_buf(),
        reason: format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
    })
}

fn io_error(path: &Path, e: &std::io::Error) -> PolicyError {
    PolicyError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Where the typed deserialisation of a document reads from (for error locations).
#[derive(Clone, Copy)]
enum Typed<'a> {
    /// A YAML document and the number of lines before it in the source.
    Yaml(&'a str, u64),
    /// A whole JSON text holding one object.
    Json(&'a str),
    /// Only the value is available (array items, `List` items).
    FromValue,
}

fn process(
    value: Value,
    typed: Typed<'_>,
    index: usize,
    source: &str,
    loaded: &mut LoadedPolicies,
) -> Result<()> {
    let Value::Object(map) = &value else {
        return Err(PolicyError::Yaml {
            source_name: source.to_owned(),
            line: match typed {
                Typed::Yaml(_, offset) => Some(offset + 1),
                _ => None,
            },
            column: None,
            message: format!("document {index} is not a mapping (a Kubernetes object)"),
        });
    };
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let kind = text("kind");
    match kind.as_str() {
        "ClusterPolicy" | "Policy" => {}
        crate::ivp::KIND_CLUSTER | crate::ivp::KIND_NAMESPACED => {
            let compiled =
                crate::ivp::compile_document(&value).map_err(|errors| PolicyError::Invalid {
                    source_name: source.to_owned(),
                    policy: raw_display_name(&value, &kind),
                    errors,
                })?;
            for finding in unsupported_ivp_fields(&compiled.policy) {
                loaded.warnings.push(PolicyWarning {
                    source: source.to_owned(),
                    policy: compiled.display_name(),
                    finding,
                });
            }
            loaded.image_validating.push(compiled);
            return Ok(());
        }
        exception::KIND if exception::API_VERSIONS.contains(&text("apiVersion").as_str()) => {
            let errors = validate_exception_document(&value);
            let display_name = raw_display_name(&value, &kind);
            if !errors.is_empty() {
                return Err(PolicyError::Invalid {
                    source_name: source.to_owned(),
                    policy: display_name,
                    errors,
                });
            }
            let exception: PolicyException =
                deserialize(value, typed, index, source, &display_name)?;
            let errors = validate_exception(&exception);
            if !errors.is_empty() {
                return Err(PolicyError::Invalid {
                    source_name: source.to_owned(),
                    policy: display_name,
                    errors,
                });
            }
            loaded.exceptions.push(exception);
            return Ok(());
        }
        crate::ivp::exception::KIND
            if crate::ivp::exception::API_VERSIONS.contains(&text("apiVersion").as_str()) =>
        {
            let compiled = crate::ivp::compile_exception_document(&value).map_err(|errors| {
                PolicyError::Invalid {
                    source_name: source.to_owned(),
                    policy: raw_display_name(&value, &kind),
                    errors,
                }
            })?;
            loaded.cel_exceptions.push(compiled);
            return Ok(());
        }
        "List" => {
            if let Some(items) = map.get("items").and_then(Value::as_array) {
                for item in items.clone() {
                    process(item, Typed::FromValue, index, source, loaded)?;
                }
            }
            return Ok(());
        }
        _ => {
            loaded.skipped.push(SkippedDocument {
                source: source.to_owned(),
                document: index,
                kind,
                api_version: text("apiVersion"),
                name: value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
            return Ok(());
        }
    }

    let display_name = raw_display_name(&value, &kind);
    let raw_errors = validate_document(&value);
    if !raw_errors.is_empty() {
        return Err(PolicyError::Invalid {
            source_name: source.to_owned(),
            policy: display_name,
            errors: raw_errors,
        });
    }

    let mut policy: Policy = deserialize(value, typed, index, source, &display_name)?;

    let errors = validate(&policy);
    if !errors.is_empty() {
        return Err(PolicyError::Invalid {
            source_name: source.to_owned(),
            policy: policy.display_name(),
            errors,
        });
    }
    for finding in unsupported_fields(&policy) {
        loaded.warnings.push(PolicyWarning {
            source: source.to_owned(),
            policy: policy.display_name(),
            finding,
        });
    }
    normalize(&mut policy);
    loaded.policies.push(policy);
    Ok(())
}

/// The typed form of a document, with the location of a type error in the source.
fn deserialize<T: serde::de::DeserializeOwned>(
    value: Value,
    typed: Typed<'_>,
    index: usize,
    source: &str,
    display_name: &str,
) -> Result<T> {
    match typed {
        Typed::Yaml(chunk, offset) => {
            serde_saphyr::from_str(chunk).map_err(|e| yaml_error(&e, chunk, source, offset))
        }
        Typed::Json(text) => serde_json::from_str(text).map_err(|e| PolicyError::Yaml {
            source_name: source.to_owned(),
            line: Some(e.line() as u64),
            column: Some(e.column() as u64),
            message: e.to_string(),
        }),
        Typed::FromValue => serde_json::from_value(value).map_err(|e| PolicyError::Yaml {
            source_name: source.to_owned(),
            line: None,
            column: None,
            message: format!("document {index} ({display_name}): {e}"),
        }),
    }
}

fn raw_display_name(value: &Value, kind: &str) -> String {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    match value.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns)
            if kind == "Policy"
                || kind == crate::ivp::KIND_NAMESPACED
                || kind == exception::KIND =>
        {
            format!("{kind}/{ns}/{name}")
        }
        _ => format!("{kind}/{name}"),
    }
}

fn yaml_error(e: &serde_saphyr::Error, chunk: &str, source: &str, line_offset: u64) -> PolicyError {
    let formatter = serde_saphyr::UserMessageFormatter;
    let options = serde_saphyr::render_options! {
        formatter: &formatter,
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let mut message = e.render_with_options(options);
    let location = e.location().filter(|l| l.line() > 0);
    if let Some(at) = message.rfind(" at line ")
        && location.is_some()
    {
        message.truncate(at);
    }
    // Quote the offending line: parser messages ("invalid boolean") do not name the field.
    let quoted = location
        .and_then(|l| chunk.lines().nth(usize::try_from(l.line() - 1).ok()?))
        .map(|line| line.trim())
        .filter(|line| !line.is_empty());
    if let Some(line) = quoted {
        let short: String = line.chars().take(80).collect();
        let ellipsis = if short.len() < line.len() { "..." } else { "" };
        message = format!("{message} in `{short}{ellipsis}`");
    }
    PolicyError::Yaml {
        source_name: source.to_owned(),
        line: location.map(|l| l.line() + line_offset),
        column: location.map(|l| l.column()),
        message,
    }
}

/// Splits a YAML stream at document markers (`---`, `...` at the start of a line, which
/// YAML forbids inside content), returning each document with the number of lines
/// before it. Directives (`%YAML`) and leading comments stay with the document they
/// introduce; empty documents are kept so that documents are numbered as written.
fn split_documents(text: &str) -> Vec<(u64, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 0u64;
    let mut has_content = false;
    let mut pos = 0usize;
    for (line_no, line) in (0u64..).zip(text.split_inclusive('\n')) {
        let is_marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
        };
        if is_marker("---") {
            if has_content {
                docs.push((start_line, &text[start..pos]));
                start = pos;
                start_line = line_no;
            }
            has_content = true;
        } else if is_marker("...") {
            let end = pos + line.len();
            if has_content {
                docs.push((start_line, &text[start..end]));
            }
            start = end;
            start_line = line_no + 1;
            has_content = false;
        } else {
            let t = line.trim();
            if !(t.is_empty() || t.starts_with('#') || line.starts_with('%')) {
                has_content = true;
            }
        }
        pos += line.len();
    }
    if has_content {
        docs.push((start_line, &text[start..]));
    }
    docs
}

/// Whether a document holds nothing but markers, directives, comments and blank lines.
fn is_blank_document(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || l.starts_with('%') || t == "---" || t == "..."
    })
}

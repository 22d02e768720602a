//! Change detection for the files the server reloads (policies, certificate, key).
//!
//! Polling file contents every few seconds instead of inotify: Kubernetes updates
//! ConfigMap and Secret volumes by swapping a `..data` symlink, which file watchers
//! see inconsistently (the watched file itself never changes), and an editor's
//! write-rename does the same. Hashing a few kilobytes every two seconds costs nothing
//! and sees every change, whatever the mechanism or the timestamps.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};

/// A digest of the names and contents of a set of files; equal fingerprints mean
/// nothing changed. Unreadable files count as their error, so a file appearing or
/// vanishing is a change too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// The files `paths` name (files as given; directories' `*.yaml`, `*.yml`, `*.json`
    /// as the policy loader reads them).
    pub fn of_policy_paths(paths: &[PathBuf]) -> Fingerprint {
        let mut hasher = DefaultHasher::new();
        for path in paths {
            if path.is_dir() {
                let mut files: Vec<PathBuf> = match fs::read_dir(path) {
                    Ok(entries) => entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| is_policy_file(p))
                        .collect(),
                    Err(e) => {
                        e.kind().hash(&mut hasher);
                        Vec::new()
                    }
                };
                files.sort();
                for file in files {
                    hash_file(&file, &mut hasher);
                }
            } else {
                hash_file(path, &mut hasher);
            }
        }
        Fingerprint(hasher.finish())
    }

    /// The files `paths`, each read as it is.
    pub fn of_files(paths: &[&Path]) -> Fingerprint {
        let mut hasher = DefaultHasher::new();
        for path in paths {
            hash_file(path, &mut hasher);
        }
        Fingerprint(hasher.finish())
    }
}

fn is_policy_file(path: &Path) -> bool {
    path.is_file()
        && path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["yaml", "yml", "json"]
                .iter()
                .any(|x| e.eq_ignore_ascii_case(x))
        })
}

fn hash_file(path: &Path, hasher: &mut DefaultHasher) {
    path.hash(hasher);
    match fs::read(path) {
        Ok(bytes) => bytes.hash(hasher),
        Err(e) => e.kind().hash(hasher),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_of_content_names_and_presence_are_seen() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let paths = vec![dir.path().to_path_buf()];
        let empty = Fingerprint::of_policy_paths(&paths);
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "a: 1").unwrap_or_else(|e| panic!("{e}"));
        let one = Fingerprint::of_policy_paths(&paths);
        assert_ne!(empty, one);
        assert_eq!(one, Fingerprint::of_policy_paths(&paths));
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one, Fingerprint::of_policy_paths(&paths));
        std::fs::write(&file, "a: 2").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(one, Fingerprint::of_policy_paths(&paths));
        std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(empty, Fingerprint::of_policy_paths(&paths));
        assert_ne!(Fingerprint::of_files(&[&file]), Fingerprint::of_files(&[]));
    }
}

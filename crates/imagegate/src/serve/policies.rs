//! Where the webhook's policies come from and the current set, swapped atomically on
//! reload: a request takes a snapshot (`Arc<PolicySet>`) when it starts and keeps it to
//! its end, so a reload never changes the rules under a request nor drops one.
//!
//! In cluster mode the set is the policy files' (if any) plus the cluster's
//! ClusterPolicies, Policies, (Namespaced)ImageValidatingPolicies and PolicyExceptions; a
//! change of either side swaps in the new combination.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use imagegate_engine::PolicySet;
use imagegate_policy::load::load_documents;
use tokio::sync::watch;

use super::State;
use super::reload::Fingerprint;

/// The example policies compiled into the binary, used when neither `--policies` nor
/// `./policies` exists (`policies/` at the repository root).
const BUNDLED: &[(&str, &str)] = &[
    (
        "verify-signature.yaml",
        include_str!("../../../../policies/verify-signature.yaml"),
    ),
    (
        "verify-provenance.yaml",
        include_str!("../../../../policies/verify-provenance.yaml"),
    ),
    (
        "audit-signature.yaml",
        include_str!("../../../../policies/audit-signature.yaml"),
    ),
];

/// The directory used when `--policies` is not given and it exists.
const DEFAULT_DIR: &str = "policies";

/// Where policies are read from: policy files (or the bundled examples) and
/// `--exceptions` files, reloaded together.
#[derive(Debug, Clone)]
pub struct PolicySource {
    policies: PolicyFiles,
    /// PolicyException files and directories.
    exceptions: Vec<PathBuf>,
}

/// Where the policies themselves are read from.
#[derive(Debug, Clone)]
enum PolicyFiles {
    /// Files and directories (their `*.yaml`, `*.yml`, `*.json`), watched for changes.
    Files(Vec<PathBuf>),
    /// The example policies compiled into the binary (never change).
    Bundled,
    /// No files: cluster mode without `--policies` (the cluster's policies only).
    None,
}

impl PolicySource {
    /// `--policies` paths (else none in cluster mode, else `./policies` if it is a
    /// directory, else the bundled set), with the `--exceptions` paths.
    pub fn new(
        paths: &[PathBuf],
        exceptions: &[PathBuf],
        in_cluster: bool,
    ) -> anyhow::Result<PolicySource> {
        for (flag, paths) in [("--policies", paths), ("--exceptions", exceptions)] {
            for path in paths {
                if !path.exists() {
                    bail!("{flag} {}: no such file or directory", path.display());
                }
            }
        }
        let policies = if !paths.is_empty() {
            PolicyFiles::Files(paths.to_vec())
        } else if in_cluster {
            PolicyFiles::None
        } else if Path::new(DEFAULT_DIR).is_dir() {
            PolicyFiles::Files(vec![PathBuf::from(DEFAULT_DIR)])
        } else {
            PolicyFiles::Bundled
        };
        Ok(PolicySource {
            policies,
            exceptions: exceptions.to_vec(),
        })
    }

    /// Loads and validates every policy and exception of the source.
    pub fn load(&self) -> anyhow::Result<PolicySet> {
        let exceptions = crate::resources::load_exceptions(&self.exceptions)?;
        let policies = match &self.policies {
            PolicyFiles::Files(paths) => crate::resources::load_policies(paths)?,
            PolicyFiles::Bundled => {
                let mut policies = Vec::new();
                for (name, text) in BUNDLED {
                    let source = format!("bundled:{name}");
                    policies.extend(
                        load_documents(text, &source)
                            .with_context(|| source.clone())?
                            .policies,
                    );
                }
                PolicySet::new(policies)
            }
            PolicyFiles::None => PolicySet::default(),
        };
        Ok(exceptions.add_to(policies))
    }

    /// What the source currently holds on disk (`None` when nothing can change).
    fn fingerprint(&self) -> Option<Fingerprint> {
        let mut paths = self.exceptions.clone();
        if let PolicyFiles::Files(files) = &self.policies {
            paths.extend(files.iter().cloned());
        }
        (!paths.is_empty()).then(|| Fingerprint::of_policy_paths(&paths))
    }
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.policies {
            PolicyFiles::Files(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "{}", names.join(", "))?;
            }
            PolicyFiles::Bundled => write!(f, "the bundled example policies")?,
            PolicyFiles::None => write!(f, "no policy files")?,
        }
        if !self.exceptions.is_empty() {
            let names: Vec<String> = self
                .exceptions
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            write!(f, " with the exceptions of {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// The current policy set.
pub struct PolicyStore {
    current: ArcSwap<PolicySet>,
    /// What `current` combines; replaced and combined under this lock, so concurrent
    /// changes of both sides are never lost.
    sources: Mutex<Sources>,
    /// Each new set, for what acts on a change (background scans).
    changes: watch::Sender<Arc<PolicySet>>,
}

struct Sources {
    files: Arc<PolicySet>,
    /// The cluster's policies and exceptions (`None` outside cluster mode).
    cluster: Option<Arc<PolicySet>>,
}

impl PolicyStore {
    /// A store holding `initial` (the files' policies).
    pub fn new(initial: PolicySet) -> PolicyStore {
        let files = Arc::new(initial);
        PolicyStore {
            current: ArcSwap::new(Arc::clone(&files)),
            changes: watch::Sender::new(Arc::clone(&files)),
            sources: Mutex::new(Sources {
                files,
                cluster: None,
            }),
        }
    }

    /// The set a request evaluates against (kept by the request to its end).
    pub fn snapshot(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// The current set now and each time it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<PolicySet>> {
        self.changes.subscribe()
    }

    /// Replaces the files' policies; requests already running keep their snapshot.
    /// Returns how many policies are now loaded.
    fn replace(&self, policies: PolicySet) -> usize {
        self.update(|sources| sources.files = Arc::new(policies))
    }

    /// Replaces the cluster's policies and exceptions. Returns how many policies are
    /// now loaded.
    pub fn replace_cluster(&self, policies: PolicySet) -> usize {
        self.update(|sources| sources.cluster = Some(Arc::new(policies)))
    }

    fn update(&self, change: impl FnOnce(&mut Sources)) -> usize {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut sources);
        let combined = match &sources.cluster {
            None => Arc::clone(&sources.files),
            Some(cluster) => Arc::new(sources.files.merged(cluster)),
        };
        let count = combined.len();
        self.current.store(Arc::clone(&combined));
        self.changes.send_replace(combined);
        count
    }
}

/// Polls the source every `interval` and swaps in the new set when its files changed
/// and load; a set that does not load is logged (once per change) and the previous one
/// stays.
pub async fn watch(source: PolicySource, state: Arc<State>, interval: Duration) {
    let fingerprint_of = |source: &PolicySource| {
        let source = source.clone();
        tokio::task::spawn_blocking(move || source.fingerprint())
    };
    let Ok(Some(mut seen)) = fingerprint_of(&source).await else {
        return;
    };
    loop {
        tokio::time::sleep(interval).await;
        let Ok(Some(now)) = fingerprint_of(&source).await else {
            continue;
        };
        if now == seen {
            continue;
        }
        seen = now;
        let loading = source.clone();
        match tokio::task::spawn_blocking(move || loading.load()).await {
            Ok(Ok(policies)) => {
                tracing::info!(policies = policies.len(), source = %source, "policies reloaded");
                let loaded = state.policies.replace(policies);
                state.metrics.policies_loaded(loaded);
                state.metrics.policy_reload(true);
            }
            Ok(Err(e)) => {
                tracing::error!(
                    source = %source,
                    error = format!("{e:#}"),
                    "changed policies do not load; keeping the previous policies"
                );
                state.metrics.policy_reload(false);
            }
            Err(e) => tracing::error!(error = %e, "policy reload task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_policies_load() {
        let source = PolicySource {
            policies: PolicyFiles::Bundled,
            exceptions: Vec::new(),
        };
        let set = source.load().unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(set.len(), BUNDLED.len());
    }
}

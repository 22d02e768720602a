//! Registry credentials from a docker `config.json`.
//!
//! Supports what `docker login` writes: `auths` entries (`auth` = base64 of
//! `user:password`, or `username`/`password`, or `identitytoken`), per-registry
//! `credHelpers` and a default `credsStore` (both run `docker-credential-<name> get`).
//! Secrets are held in [`Credential`], whose `Debug` output never shows them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

/// The key docker uses for Docker Hub in `config.json`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// A credential helper that has not answered by then is treated as failed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);
/// `config.json` larger than this is refused.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Largest answer read from a credential helper.
const MAX_HELPER_OUTPUT: usize = 1024 * 1024;
/// How long a `credsStore`'s list of servers is reused before it is asked again.
const STORE_LIST_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// The end of a helper failure's reason when the helper said it has no credentials.
const NOT_FOUND: &str = " (credentials not found)";

/// A secret used to authenticate to one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// User name and password (sent as Basic, or exchanged for a bearer token).
    UserPassword {
        /// The user name.
        username: String,
        /// The password or personal access token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in `config.json`).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::UserPassword { username, .. } => f
                .debug_struct("UserPassword")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Why credentials could not be read. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The config file could not be read.
    #[error("cannot read docker config {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("malformed docker config {path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An `auths` entry has an `auth` field that is not base64 of `user:password`.
    #[error(
        "malformed docker config {path}: the auth entry for {registry} is not base64 of user:password"
    )]
    MalformedAuth {
        /// The file.
        path: PathBuf,
        /// The registry whose entry is wrong.
        registry: String,
    },
    /// A credential helper failed or answered something unreadable.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    Helper {
        /// Helper name (`docker-credential-<name>`).
        helper: String,
        /// The registry asked for.
        registry: String,
        /// Why (exit status or parse error, never the output).
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Where credentials come from: a parsed docker `config.json`, or nothing.
#[derive(Debug, Default)]
pub struct DockerConfig {
    path: PathBuf,
    file: ConfigFile,
    /// The hosts the `credsStore` helper last listed, and when.
    store_servers: tokio::sync::Mutex<Option<(Instant, BTreeSet<String>)>>,
}

impl DockerConfig {
    /// No credentials at all: every registry is accessed anonymously.
    pub fn anonymous() -> DockerConfig {
        DockerConfig::default()
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<DockerConfig, CredentialsError> {
        let unreadable = |reason: String| CredentialsError::Unreadable {
            path: path.to_owned(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| unreadable(e.to_string()))?
            .len();
        if size > MAX_CONFIG_BYTES {
            return Err(unreadable(format!("larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let text = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        DockerConfig::parse(path, &text)
    }

    /// Parses the contents of a `config.json` (`path` is only used in messages).
    pub fn parse(path: &Path, text: &[u8]) -> Result<DockerConfig, CredentialsError> {
        let file = serde_json::from_slice(text).map_err(|e| CredentialsError::Malformed {
            path: path.to_owned(),
            reason: shape_error(&e),
        })?;
        Ok(DockerConfig {
            path: path.to_owned(),
            file,
            store_servers: tokio::sync::Mutex::new(None),
        })
    }

    /// The config docker itself would use: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`; anonymous when neither exists.
    pub fn from_environment() -> Result<DockerConfig, CredentialsError> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        match dir.map(|d| d.join("config.json")) {
            Some(path) if path.exists() => DockerConfig::load(&path),
            _ => Ok(DockerConfig::anonymous()),
        }
    }

    /// The credential for `registry` (as written in image references, e.g. `docker.io`,
    /// `ghcr.io`, `127.0.0.1:5000`), or `None` for anonymous access.
    pub async fn credential_for(
        &self,
        registry: &str,
    ) -> Result<Option<Credential>, CredentialsError> {
        if let Some(helper) = self.file.cred_helpers.get(registry) {
            return run_helper(helper, &helper_server_name(registry)).await;
        }
        if let Some(entry) = self.auth_entry(registry)
            && let Some(credential) = entry_credential(&self.path, registry, entry)?
        {
            return Ok(Some(credential));
        }
        match &self.file.creds_store {
            Some(store) if !store.is_empty() => {
                // Images name any host they like: a `get` process per such host would be
                // work without bound, so only hosts the store lists are asked about.
                if !self.store_lists(store, registry).await? {
                    return Ok(None);
                }
                run_helper(store, &helper_server_name(registry)).await
            }
            _ => Ok(None),
        }
    }

    /// The `auths` entry for a registry, accepting the spellings docker writes
    /// (`host`, `https://host`, `https://host/v1/`, Docker Hub's legacy key).
    fn auth_entry(&self, registry: &str) -> Option<&AuthEntry> {
        let wanted = config_key_host(registry);
        self.file
            .auths
            .iter()
            .find_map(|(key, entry)| (config_key_host(key) == wanted).then_some(entry))
    }

    /// Whether the `credsStore` helper lists `registry` among its servers
    /// (`docker-credential-<store> list`, run at most once per [`STORE_LIST_LIFETIME`]).
    async fn store_lists(&self, store: &str, registry: &str) -> Result<bool, CredentialsError> {
        let mut listed = self.store_servers.lock().await;
        let fresh = matches!(&*listed, Some((at, _)) if at.elapsed() < STORE_LIST_LIFETIME);
        if !fresh {
            let output = helper_output(store, "list", "", registry).await?;
            let servers: BTreeMap<String, String> =
                serde_json::from_slice(&output).map_err(|_| CredentialsError::Helper {
                    helper: store.to_owned(),
                    registry: registry.to_owned(),
                    reason: "`list` answer is not a JSON object of servers".to_owned(),
                })?;
            let hosts = servers
                .keys()
                .map(|key| config_key_host(key).to_owned())
                .collect();
            *listed = Some((Instant::now(), hosts));
        }
        Ok(listed
            .as_ref()
            .is_some_and(|(_, hosts)| hosts.contains(config_key_host(registry))))
    }
}

/// The credential of one `auths` entry (`path` names its file or Secret in errors).
fn entry_credential(
    path: &Path,
    registry: &str,
    entry: &AuthEntry,
) -> Result<Option<Credential>, CredentialsError> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(token.to_owned())));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let malformed = || CredentialsError::MalformedAuth {
            path: path.to_owned(),
            registry: registry.to_owned(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
        return Ok(Some(Credential::UserPassword {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) if !username.is_empty() => {
            Ok(Some(Credential::UserPassword {
                username: username.clone(),
                password: password.clone(),
            }))
        }
        _ => Ok(None),
    }
}

/// Registry credentials from Kubernetes pull secrets (`kubernetes.io/dockerconfigjson`
/// or `kubernetes.io/dockercfg`), in the order they are tried: for a registry, the
/// first Secret with an entry for it wins, as in the kubelet's and Kyverno's keychains.
/// Only `auths` entries are read: a Secret never names a credential helper to run.
/// `Debug` never shows a secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PullSecrets {
    /// (registry host as [`config_key_host`] folds it, its credential), in order.
    entries: Vec<(String, Credential)>,
}

impl fmt::Debug for PullSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(host, _)| host))
            .finish()
    }
}

impl PullSecrets {
    /// Adds the `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` Secret
    /// (`source` names it in errors, e.g. `secret ns/name`).
    pub fn add_docker_config_json(
        &mut self,
        source: &str,
        bytes: &[u8],
    ) -> Result<(), CredentialsError> {
        let file: ConfigFile = parse_limited(source, bytes)?;
        self.add_auths(source, &file.auths)
    }

    /// Adds the `.dockercfg` of a `kubernetes.io/dockercfg` Secret (the legacy format:
    /// the `auths` map itself).
    pub fn add_dockercfg(&mut self, source: &str, bytes: &[u8]) -> Result<(), CredentialsError> {
        let auths: BTreeMap<String, AuthEntry> = parse_limited(source, bytes)?;
        self.add_auths(source, &auths)
    }

    fn add_auths(
        &mut self,
        source: &str,
        auths: &BTreeMap<String, AuthEntry>,
    ) -> Result<(), CredentialsError> {
        for (key, entry) in auths {
            let host = config_key_host(key);
            if let Some(credential) = entry_credential(Path::new(source), host, entry)? {
                self.entries.push((host.to_owned(), credential));
            }
        }
        Ok(())
    }

    /// The credential for `registry` (as written in image references), if a Secret
    /// has one.
    pub fn credential_for(&self, registry: &str) -> Option<&Credential> {
        let wanted = config_key_host(registry);
        self.entries
            .iter()
            .find_map(|(host, credential)| (host == wanted).then_some(credential))
    }

    /// Who asks `registry` with these secrets: 0 when no Secret has a credential for it
    /// (the registry client's own docker config applies), else a digest of the credential
    /// used. Answers obtained with one identity (tokens, tag resolutions) are never
    /// reused for another.
    pub fn identity_for(&self, registry: &str) -> u64 {
        use std::hash::{Hash as _, Hasher as _};
        let Some(credential) = self.credential_for(registry) else {
            return 0;
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        match credential {
            Credential::UserPassword { username, password } => {
                ("basic", username, password).hash(&mut hasher);
            }
            Credential::IdentityToken(token) => ("token", token).hash(&mut hasher),
        }
        hasher.finish().max(1)
    }

    /// Appends `other`'s credentials (tried after these).
    pub fn extend(&mut self, other: &PullSecrets) {
        self.entries.extend(other.entries.iter().cloned());
    }

    /// Whether no Secret gave a credential.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `bytes` as JSON of `T`, refused beyond [`MAX_CONFIG_BYTES`].
fn parse_limited<T: serde::de::DeserializeOwned>(
    source: &str,
    bytes: &[u8],
) -> Result<T, CredentialsError> {
    let malformed = |reason: String| CredentialsError::Malformed {
        path: PathBuf::from(source),
        reason,
    };
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(malformed(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    serde_json::from_slice(bytes).map_err(|e| malformed(shape_error(&e)))
}

/// Why a docker config did not parse, by position only: serde_json's messages may
/// quote a value (`invalid type: string "hunter2"`), and values are secrets.
fn shape_error(error: &serde_json::Error) -> String {
    format!(
        "not a docker config of the expected shape (line {}, column {})",
        error.line(),
        error.column()
    )
}

/// Credential helpers know Docker Hub by its legacy URL.
fn helper_server_name(registry: &str) -> String {
    if registry == "docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// The registry host a config key or registry name stands for: scheme and path
/// dropped, Docker Hub's spellings folded into one.
fn config_key_host(key: &str) -> &str {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "registry-1.docker.io" | "docker.io" => "index.docker.io",
        host => host,
    }
}

/// What `docker-credential-<helper> <action>` prints given `input`, size-limited and
/// within [`HELPER_TIMEOUT`]. A failure exit is an error whose reason notes "credentials
/// not found" when the helper said so.
async fn helper_output(
    helper: &str,
    action: &str,
    input: &str,
    server: &str,
) -> Result<Vec<u8>, CredentialsError> {
    let failed = |reason: String| CredentialsError::Helper {
        helper: helper.to_owned(),
        registry: server.to_owned(),
        reason,
    };
    if helper.is_empty()
        || !helper
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(failed("invalid helper name".to_owned()));
    }
    let mut child = tokio::process::Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("no answer within {HELPER_TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    if output.stdout.len() > MAX_HELPER_OUTPUT {
        return Err(failed(format!(
            "answer larger than {MAX_HELPER_OUTPUT} bytes"
        )));
    }
    if !output.status.success() {
        // Helpers exit non-zero with "credentials not found" when they know nothing.
        let stdout = String::from_utf8_lossy(&output.stdout);
        let not_found = if stdout.contains("credentials not found") {
            NOT_FOUND
        } else {
            ""
        };
        return Err(failed(format!("exited with {}{not_found}", output.status)));
    }
    Ok(output.stdout)
}

async fn run_helper(helper: &str, server: &str) -> Result<Option<Credential>, CredentialsError> {
    let stdout = match helper_output(helper, "get", server, server).await {
        Ok(stdout) => stdout,
        Err(CredentialsError::Helper { reason, .. }) if reason.ends_with(NOT_FOUND) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let failed = |reason: String| CredentialsError::Helper {
        helper: helper.to_owned(),
        registry: server.to_owned(),
        reason,
    };
    let answer: HelperAnswer = serde_json::from_slice(&stdout)
        .map_err(|_| failed("answer is not {\"Username\",\"Secret\"} JSON".to_owned()))?;
    if answer.username == "<token>" {
        Ok(Some(Credential::IdentityToken(answer.secret)))
    } else {
        Ok(Some(Credential::UserPassword {
            username: answer.username,
            password: answer.secret,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> DockerConfig {
        DockerConfig::parse(Path::new("config.json"), text.as_bytes()).unwrap()
    }

    fn user_password(username: &str, password: &str) -> Option<Credential> {
        Some(Credential::UserPassword {
            username: username.into(),
            password: password.into(),
        })
    }

    #[tokio::test]
    async fn auth_field_is_base64_user_colon_password() {
        // "alice:s3cr:et" — the password may itself contain a colon.
        let c = config(r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcjpldA=="}}}"#);
        assert_eq!(
            c.credential_for("127.0.0.1:5000").await.unwrap(),
            user_password("alice", "s3cr:et")
        );
        assert_eq!(c.credential_for("other:5000").await.unwrap(), None);
    }

    #[tokio::test]
    async fn docker_hub_legacy_key_and_url_spellings() {
        let c = config(
            r#"{"auths":{"https://index.docker.io/v1/":{"username":"bob","password":"pw"},
                        "https://ghcr.io":{"identitytoken":"refresh"}}}"#,
        );
        assert_eq!(
            c.credential_for("docker.io").await.unwrap(),
            user_password("bob", "pw")
        );
        assert_eq!(
            c.credential_for("ghcr.io").await.unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
    }

    #[tokio::test]
    async fn malformed_auth_is_an_error_without_the_secret() {
        let c = config(r#"{"auths":{"reg.example":{"auth":"hunter2-secret!!"}}}"#);
        let err = c.credential_for("reg.example").await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("reg.example"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn missing_helper_binary_is_a_clear_error() {
        let c = config(r#"{"credHelpers":{"reg.example":"imagegate-no-such-helper"}}"#);
        let err = c.credential_for("reg.example").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("docker-credential-imagegate-no-such-helper"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(matches!(
            DockerConfig::parse(Path::new("c.json"), b"{\"auths\": [}"),
            Err(CredentialsError::Malformed { .. })
        ));
    }

    #[test]
    fn a_malformed_config_never_quotes_its_secrets() {
        let mut serde_quoted = 0;
        for text in [
            r#"{"auths":{"reg.example":{"password":["hunter2-secret"]}}}"#,
            r#"{"auths":{"reg.example":{"auth":7,"password":"hunter2-secret"}}}"#,
            r#"{"auths":{"reg.example":"hunter2-secret"}}"#,
            r#"{"auths":"hunter2-secret"}"#,
            r#"{"credHelpers":{"reg.example":{"hunter2-secret":1}}}"#,
        ] {
            let serde_says = serde_json::from_str::<ConfigFile>(text)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            let err = DockerConfig::parse(Path::new("c.json"), text.as_bytes()).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(matches!(err, CredentialsError::Malformed { .. }), "{shown}");
            assert!(shown.contains("c.json"), "{shown}");
            assert!(shown.contains("line 1, column"), "{shown}");
            assert!(
                !shown.contains("hunter2"),
                "{text}: {shown} (serde: {serde_says})"
            );
            serde_quoted += usize::from(serde_says.contains("hunter2"));
        }
        // The cases are the dangerous ones: serde_json's own text would have leaked.
        assert!(serde_quoted >= 2, "{serde_quoted}");
    }

    #[test]
    fn pull_secrets_first_match_wins_and_never_leak() {
        let mut secrets = PullSecrets::default();
        // "alice:one" and "bob:two"
        secrets
            .add_docker_config_json(
                "secret ns/a",
                br#"{"auths":{"https://reg.example":{"auth":"YWxpY2U6b25l"}}}"#,
            )
            .unwrap();
        secrets
            .add_dockercfg(
                "secret ns/b",
                br#"{"reg.example":{"auth":"Ym9iOnR3bw=="},"other.example":{"username":"bob","password":"two"}}"#,
            )
            .unwrap();
        assert_eq!(
            secrets.credential_for("reg.example"),
            user_password("alice", "one").as_ref()
        );
        assert_eq!(
            secrets.credential_for("other.example"),
            user_password("bob", "two").as_ref()
        );
        assert_eq!(secrets.credential_for("third.example"), None);
        assert_eq!(secrets.identity_for("third.example"), 0);
        assert_ne!(secrets.identity_for("reg.example"), 0);
        assert_ne!(
            secrets.identity_for("reg.example"),
            secrets.identity_for("other.example")
        );
        assert!(!format!("{secrets:?}").contains("one"));

        // A malformed Secret names itself, never its contents.
        let err = PullSecrets::default()
            .add_docker_config_json("secret ns/c", br#"{"auths":{"r":"hunter2"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret ns/c"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::UserPassword {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::IdentityToken("tok".into())).contains("tok\""));
    }
}

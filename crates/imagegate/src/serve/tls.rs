//! The webhook's TLS: rustls (aws-lc-rs, TLS 1.2 and 1.3, ALPN h2 and http/1.1) with
//! either the `--tls-cert`/`--tls-key` files (reloaded when they change) or a
//! certificate generated at start-up, signed by a fresh CA whose bundle is written to
//! `--ca-bundle-out` (what a webhook configuration's `caBundle` or a client trusts).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsConfig;
use super::reload::Fingerprint;

/// Where the server certificate comes from.
#[derive(Debug)]
pub enum TlsSource {
    /// PEM files, watched for changes.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Generated at start-up; lives as long as the process.
    SelfSigned {
        /// Leaf certificate then CA certificate (PEM).
        chain_pem: String,
        /// Leaf private key (PEM).
        key_pem: String,
    },
}

impl TlsSource {
    /// The files of `config`, or a self-signed certificate whose CA bundle is written
    /// where `config` says.
    pub fn from_config(config: &TlsConfig) -> anyhow::Result<TlsSource> {
        let (service_name, service_namespace, extra_names, ca_bundle_out) = match config {
            TlsConfig::Files { cert, key } => {
                return Ok(TlsSource::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                });
            }
            TlsConfig::SelfSigned {
                service_name,
                service_namespace,
                extra_names,
                ca_bundle_out,
            } => (service_name, service_namespace, extra_names, ca_bundle_out),
        };
        let names = self_signed_names(service_name, service_namespace, extra_names);
        let generated = generate(&names)?;
        std::fs::write(ca_bundle_out, &generated.ca_pem).with_context(|| {
            format!(
                "cannot write the CA bundle of the self-signed certificate to {} (choose another file with --ca-bundle-out, or give --tls-cert/--tls-key)",
                ca_bundle_out.display()
            )
        })?;
        let ca_path = std::path::absolute(ca_bundle_out).unwrap_or_else(|_| ca_bundle_out.clone());
        tracing::info!(
            ca_bundle = %ca_path.display(),
            names = names.join(","),
            "self-signed certificate generated; clients trust it through the CA bundle {}",
            ca_path.display()
        );
        Ok(TlsSource::SelfSigned {
            chain_pem: format!("{}{}", generated.leaf_pem, generated.ca_pem),
            key_pem: generated.key_pem,
        })
    }

    /// The rustls configuration for the current certificate.
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        match self {
            TlsSource::Files { cert, key } => {
                let chain = std::fs::read(cert)
                    .with_context(|| format!("cannot read --tls-cert {}", cert.display()))?;
                let key_pem = std::fs::read(key)
                    .with_context(|| format!("cannot read --tls-key {}", key.display()))?;
                server_config(&chain, &key_pem).with_context(|| {
                    format!(
                        "--tls-cert {} / --tls-key {}",
                        cert.display(),
                        key.display()
                    )
                })
            }
            TlsSource::SelfSigned { chain_pem, key_pem } => {
                server_config(chain_pem.as_bytes(), key_pem.as_bytes())
            }
        }
    }

    fn fingerprint(&self) -> Option<Fingerprint> {
        match self {
            TlsSource::Files { cert, key } => Some(Fingerprint::of_files(&[cert, key])),
            TlsSource::SelfSigned { .. } => None,
        }
    }
}

/// A rustls server configuration from PEM bytes (certificate chain, private key).
pub fn server_config(chain_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Arc<ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .context("invalid PEM certificate")?;
    if chain.is_empty() {
        bail!("no PEM certificate found");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("no valid PEM private key found")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the private key do not form a valid pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The names of the self-signed certificate: loopback, the Service's DNS names, extras.
fn self_signed_names(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        service.into(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// A generated CA and the leaf it signed.
struct Generated {
    ca_pem: String,
    leaf_pem: String,
    key_pem: String,
}

fn generate(names: &[String]) -> anyhow::Result<Generated> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "imagegate self-signed CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)
        .context("generating the CA")?;

    let mut leaf_params = CertificateParams::new(names.to_vec()).context("certificate names")?;
    leaf_params.distinguished_name.push(
        DnType::CommonName,
        names.get(3).map_or("imagegate", String::as_str),
    );
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca)
        .context("signing the certificate")?;
    Ok(Generated {
        ca_pem: ca.pem(),
        leaf_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

/// Polls the certificate files every `interval`; when they changed and form a valid
/// pair, new connections use them (open connections keep theirs). An invalid pair is
/// logged and the previous certificate stays.
pub async fn watch(source: TlsSource, config: RustlsConfig, interval: Duration) {
    let Some(mut seen) = source.fingerprint() else {
        return;
    };
    let source = Arc::new(source);
    loop {
        tokio::time::sleep(interval).await;
        let current = Arc::clone(&source);
        let Ok(Some(now)) = tokio::task::spawn_blocking(move || current.fingerprint()).await else {
            continue;
        };
        if now == seen {
            continue;
        }
        seen = now;
        let current = Arc::clone(&source);
        match tokio::task::spawn_blocking(move || current.server_config()).await {
            Ok(Ok(server_config)) => {
                config.reload_from_config(server_config);
                tracing::info!("TLS certificate reloaded");
            }
            Ok(Err(e)) => tracing::error!(
                error = format!("{e:#}"),
                "changed TLS certificate does not load; keeping the previous certificate"
            ),
            Err(e) => tracing::error!(error = %e, "certificate reload task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads_and_names_the_service() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let names = self_signed_names("imagegate", "security", &["webhook.example".into()]);
        assert!(names.contains(&"imagegate.security.svc".to_owned()));
        assert!(names.contains(&"webhook.example".to_owned()));
        let generated = generate(&names).unwrap_or_else(|e| panic!("{e:#}"));
        let chain = format!("{}{}", generated.leaf_pem, generated.ca_pem);
        server_config(chain.as_bytes(), generated.key_pem.as_bytes())
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(server_config(chain.as_bytes(), b"not a key").is_err());
        assert!(server_config(b"", generated.key_pem.as_bytes()).is_err());
    }
}

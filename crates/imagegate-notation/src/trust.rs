//! What a verifier trusts: Kyverno's Notary trust policy, as plain data.

use imagegate_sigstore::pem;

use crate::certificate::Cert;
use crate::error::{NotationError, Result};
use crate::limits;

/// The trust stores of one verification, in Notary terms (trust policy level `strict`,
/// `trustedIdentities ["*"]`, every registry scope).
///
/// Kyverno's mapping: `ca` = the policy's `cert` + `certChain` (ClusterPolicy) or
/// `notary.certs` (ImageValidatingPolicy), `tsa` = `notary.tsaCerts`, and no
/// signing-authority store, so `notary.x509.signingAuthority` signatures never verify
/// there.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// `ca` store: a signature is authentic when its chain contains one of these.
    pub ca: Vec<Vec<u8>>,
    /// `signingAuthority` store, for `notary.x509.signingAuthority` signatures.
    pub signing_authority: Vec<Vec<u8>>,
    /// `tsa` store. When non-empty, a valid RFC 3161 countersignature is required and the
    /// chain must be valid at its time; when empty the chain must be valid now.
    pub tsa: Vec<Vec<u8>>,
}

impl TrustPolicy {
    /// Kyverno's policy: `certs` as the `ca` store, `tsa_certs` as the `tsa` store (DER).
    pub fn kyverno(certs: Vec<Vec<u8>>, tsa_certs: Vec<Vec<u8>>) -> Self {
        TrustPolicy {
            ca: certs,
            signing_authority: Vec::new(),
            tsa: tsa_certs,
        }
    }
}

/// Reads certificates given to the verifier: one or more PEM `CERTIFICATE` blocks, or a
/// single DER certificate. Each is parsed so that errors show at load time.
pub fn read_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let bad = |index: usize, reason: String| NotationError::BadTrustedCertificate { index, reason };
    // DER when it parses as a certificate; otherwise PEM text.
    let der = (bytes.first() == Some(&0x30))
        .then(|| Cert::from_der(bytes, "trusted certificates", 0).ok())
        .flatten();
    let ders = if der.is_some() {
        vec![bytes.to_vec()]
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| bad(0, "neither PEM nor a DER certificate".into()))?;
        let blocks = pem::parse_blocks(text).map_err(|e| bad(0, e.to_string()))?;
        let mut ders = Vec::with_capacity(blocks.len());
        for (index, block) in blocks.into_iter().enumerate() {
            if block.label != "CERTIFICATE" {
                return Err(bad(
                    index,
                    format!("PEM block is a {:?}, not a CERTIFICATE", block.label),
                ));
            }
            ders.push(block.der);
        }
        ders
    };
    if ders.is_empty() {
        return Err(bad(0, "no certificate".into()));
    }
    parse_trusted(&ders)?;
    Ok(ders)
}

/// Parses a trust store, within the count limit.
pub(crate) fn parse_trusted(ders: &[Vec<u8>]) -> Result<Vec<Cert>> {
    if ders.len() > limits::MAX_TRUSTED_CERTIFICATES {
        return Err(NotationError::BadTrustedCertificate {
            index: limits::MAX_TRUSTED_CERTIFICATES,
            reason: format!(
                "more than {} trusted certificates",
                limits::MAX_TRUSTED_CERTIFICATES
            ),
        });
    }
    ders.iter()
        .enumerate()
        .map(|(index, der)| {
            Cert::from_der(der, "trusted certificates", index).map_err(|e| {
                NotationError::BadTrustedCertificate {
                    index,
                    reason: e.to_string(),
                }
            })
        })
        .collect()
}

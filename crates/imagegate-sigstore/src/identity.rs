//! Keyless signer identities: what a Fulcio certificate says about its holder (SANs,
//! OIDC issuer, GitHub Actions workflow claims) and the requirements a policy places on
//! them (cosign `--certificate-identity[-regexp]`/`--certificate-oidc-issuer[-regexp]`,
//! Kyverno `keyless{subject, subjectRegExp, issuer, issuerRegExp,
//! additionalExtensions}`).
//!
//! Semantics follow cosign (`CheckCertificatePolicy`), which Kyverno calls:
//! - the subject requirement is met when *any* subject alternative name of the
//!   certificate (email, URI, DNS name, Fulcio username) matches;
//! - a regular expression is unanchored, like Go's `regexp.MatchString` (`wrong` matches
//!   `a-wrong-b`; write `^...$` to anchor);
//! - the issuer is the Fulcio OIDC issuer extension (`1.3.6.1.4.1.57264.1.8`, else the
//!   deprecated `.1.1`);
//! - GitHub workflow requirements compare exactly with the GitHub extensions
//!   `.1.2`–`.1.6` (cosign's `--certificate-github-workflow-*`).

use std::fmt;

use regex::Regex;
use spki::ObjectIdentifier;
use spki::der::Decode as _;
use spki::der::asn1::{Ia5String, Utf8StringRef};
use thiserror::Error;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// Fulcio SAN otherName type of a username identity.
const OID_FULCIO_USERNAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");

/// Why an identity requirement could not be built or was not met.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// A regular expression does not compile.
    #[error("invalid {field} regular expression {pattern:?}: {reason}")]
    InvalidRegex {
        /// Which requirement (`subject` or `issuer`).
        field: &'static str,
        /// The expression.
        pattern: String,
        /// What the regex engine reported.
        reason: String,
    },
    /// No subject alternative name matches.
    #[error(
        "certificate identity mismatch: expected {expected}, got {}",
        list(found)
    )]
    SubjectMismatch {
        /// The requirement, as text.
        expected: String,
        /// The certificate's subject alternative names.
        found: Vec<String>,
    },
    /// The OIDC issuer does not match.
    #[error("certificate OIDC issuer mismatch: expected {expected}, got {}", found.as_deref().unwrap_or("no issuer extension"))]
    IssuerMismatch {
        /// The requirement, as text.
        expected: String,
        /// The certificate's issuer, if it has one.
        found: Option<String>,
    },
    /// A GitHub workflow extension does not have the required value.
    #[error("certificate {extension} mismatch: expected {expected:?}, got {}", found.as_deref().map_or_else(|| "no such extension".to_owned(), |f| format!("{f:?}")))]
    ExtensionMismatch {
        /// Which extension (`githubWorkflowTrigger`, ...).
        extension: &'static str,
        /// The required value.
        expected: String,
        /// The certificate's value, if present.
        found: Option<String>,
    },
    /// The signing certificate's identity could not be read.
    #[error("malformed signing certificate: {0}")]
    MalformedCertificate(String),
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "no subject alternative names".to_owned()
    } else {
        names.join(", ")
    }
}

/// How one certificate value is matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Any value, and also the absence of a value (cosign: no issuer/subject given).
    Any,
    /// Exactly this string.
    Exact(String),
    /// An unanchored regular expression (Go `regexp.MatchString` semantics).
    Regex(Regex),
}

impl Matcher {
    /// A regular expression matcher; `field` names the requirement in the error.
    pub fn regex(field: &'static str, pattern: &str) -> Result<Matcher, IdentityError> {
        Regex::new(pattern)
            .map(Matcher::Regex)
            .map_err(|e| IdentityError::InvalidRegex {
                field,
                pattern: pattern.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Whether `value` satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Exact(expected) => expected == value,
            Matcher::Regex(regex) => regex.is_match(value),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        match (self, other) {
            (Matcher::Any, Matcher::Any) => true,
            (Matcher::Exact(a), Matcher::Exact(b)) => a == b,
            (Matcher::Regex(a), Matcher::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Any => f.write_str("any"),
            Matcher::Exact(value) => write!(f, "{value:?}"),
            Matcher::Regex(regex) => write!(f, "regular expression {:?}", regex.as_str()),
        }
    }
}

/// The GitHub Actions workflow extensions of a Fulcio certificate (`1.3.6.1.4.1.57264.1.2`
/// to `.1.6`), or the values a policy requires of them (Kyverno
/// `additionalExtensions`). `None` is "absent" in a certificate and "any" in a
/// requirement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubWorkflow {
    /// `.1.2` githubWorkflowTrigger, e.g. `push`.
    pub trigger: Option<String>,
    /// `.1.3` githubWorkflowSha: the commit.
    pub sha: Option<String>,
    /// `.1.4` githubWorkflowName.
    pub name: Option<String>,
    /// `.1.5` githubWorkflowRepository, `owner/repository`.
    pub repository: Option<String>,
    /// `.1.6` githubWorkflowRef, e.g. `refs/tags/v1.0.0`.
    pub git_ref: Option<String>,
}

impl GitHubWorkflow {
    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        *self == GitHubWorkflow::default()
    }

    fn fields(&self) -> [(&'static str, Option<&String>); 5] {
        [
            ("githubWorkflowTrigger", self.trigger.as_ref()),
            ("githubWorkflowSha", self.sha.as_ref()),
            ("githubWorkflowName", self.name.as_ref()),
            ("githubWorkflowRepository", self.repository.as_ref()),
            ("githubWorkflowRef", self.git_ref.as_ref()),
        ]
    }
}

/// Provider-neutral CI claims of a Fulcio certificate (`1.3.6.1.4.1.57264.1.9` and
/// later), when present. Informative: requirements match [`GitHubWorkflow`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiClaims {
    /// `.1.9` the build configuration that signed, with its ref.
    pub build_signer_uri: Option<String>,
    /// `.1.12` the source repository URL.
    pub source_repository_uri: Option<String>,
    /// `.1.13` the source commit.
    pub source_repository_digest: Option<String>,
    /// `.1.14` the source ref.
    pub source_repository_ref: Option<String>,
    /// `.1.20` the event that triggered the build.
    pub build_trigger: Option<String>,
    /// `.1.21` the CI run that signed.
    pub run_invocation_uri: Option<String>,
    /// `.1.11` `github-hosted`, `self-hosted`, ...
    pub runner_environment: Option<String>,
}

/// Who signed, according to a verified Fulcio certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerIdentity {
    /// Every subject alternative name (emails, URIs, DNS names, Fulcio usernames), in
    /// certificate order.
    pub san: Vec<String>,
    /// The OIDC issuer extension, if present.
    pub issuer: Option<String>,
    /// GitHub workflow extensions (all `None` outside GitHub Actions).
    pub github: GitHubWorkflow,
    /// Provider-neutral CI claims.
    pub ci: CiClaims,
}

/// What a keyless signer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRequirement {
    /// Some subject alternative name must match.
    pub subject: Matcher,
    /// The OIDC issuer must match.
    pub issuer: Matcher,
    /// Each set GitHub workflow value must equal the certificate's.
    pub github: GitHubWorkflow,
}

impl IdentityRequirement {
    /// Exact subject and issuer (`--certificate-identity`, `--certificate-oidc-issuer`).
    pub fn exact(subject: impl Into<String>, issuer: impl Into<String>) -> IdentityRequirement {
        IdentityRequirement {
            subject: Matcher::Exact(subject.into()),
            issuer: Matcher::Exact(issuer.into()),
            github: GitHubWorkflow::default(),
        }
    }

    /// Checks `identity` against this requirement.
    pub fn check(&self, identity: &SignerIdentity) -> Result<(), IdentityError> {
        let subject_ok = match &self.subject {
            Matcher::Any => true,
            matcher => identity.san.iter().any(|san| matcher.matches(san)),
        };
        if !subject_ok {
            return Err(IdentityError::SubjectMismatch {
                expected: self.subject.to_string(),
                found: identity.san.clone(),
            });
        }
        // As cosign: a certificate without the issuer extension has the issuer "".
        let issuer_ok = self
            .issuer
            .matches(identity.issuer.as_deref().unwrap_or_default());
        if !issuer_ok {
            return Err(IdentityError::IssuerMismatch {
                expected: self.issuer.to_string(),
                found: identity.issuer.clone(),
            });
        }
        for ((extension, expected), (_, found)) in self
            .github
            .fields()
            .into_iter()
            .zip(identity.github.fields())
        {
            if let Some(expected) = expected
                && found != Some(expected)
            {
                return Err(IdentityError::ExtensionMismatch {
                    extension,
                    expected: expected.clone(),
                    found: found.cloned(),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for IdentityRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subject {} and issuer {}", self.subject, self.issuer)?;
        for (extension, value) in self.github.fields() {
            if let Some(value) = value {
                write!(f, " and {extension} {value:?}")?;
            }
        }
        Ok(())
    }
}

impl SignerIdentity {
    /// The identity a certificate (DER) states, without verifying anything: SANs, OIDC
    /// issuer (v2 extension, else v1), GitHub workflow extensions and CI claims. For
    /// legacy cosign `.sig` layers, whose certificate is verified separately
    /// ([`crate::certificate::verify_certificate_chain`]).
    pub fn from_certificate_der(cert_der: &[u8]) -> Result<SignerIdentity, IdentityError> {
        let der = sigstore_verify::types::DerCertificate::new(cert_der.to_vec());
        let info = sigstore_verify::crypto::x509::parse_certificate_info(&der)
            .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
        SignerIdentity::from_parts(cert_der, &info)
    }

    /// The identity of a certificate (DER) whose fields sigstore-verify has parsed.
    pub(crate) fn from_parts(
        cert_der: &[u8],
        info: &sigstore_verify::crypto::CertificateInfo,
    ) -> Result<SignerIdentity, IdentityError> {
        let claims = &info.ci_claims;
        let github = &claims.deprecated_github;
        Ok(SignerIdentity {
            san: subject_alt_names(cert_der)?,
            issuer: info.issuer.clone(),
            github: GitHubWorkflow {
                trigger: github.workflow_trigger.clone(),
                sha: github.workflow_sha.clone(),
                name: github.workflow_name.clone(),
                repository: github.workflow_repository.clone(),
                git_ref: github.workflow_ref.clone(),
            },
            ci: CiClaims {
                build_signer_uri: claims.build_signer_uri.clone(),
                source_repository_uri: claims.source_repository_uri.clone(),
                source_repository_digest: claims.source_repository_digest.clone(),
                source_repository_ref: claims.source_repository_ref.clone(),
                build_trigger: claims.build_trigger.clone(),
                run_invocation_uri: claims.run_invocation_uri.clone(),
                runner_environment: claims.runner_environment.clone(),
            },
        })
    }
}

/// Every subject alternative name of a certificate (DER), in order.
pub(crate) fn subject_alt_names(cert_der: &[u8]) -> Result<Vec<String>, IdentityError> {
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
    let Some((_, SubjectAltName(names))) = cert
        .tbs_certificate
        .get::<SubjectAltName>()
        .map_err(|e| IdentityError::MalformedCertificate(format!("subject alt name: {e}")))?
    else {
        return Ok(Vec::new());
    };
    Ok(names_as_strings(&names))
}

/// The names an identity can be matched against: emails, URIs, DNS names and Fulcio
/// usernames, in order.
pub(crate) fn names_as_strings(names: &[GeneralName]) -> Vec<String> {
    let ia5 = |s: &Ia5String| s.as_str().to_owned();
    names
        .iter()
        .filter_map(|name| match name {
            GeneralName::Rfc822Name(s)
            | GeneralName::UniformResourceIdentifier(s)
            | GeneralName::DnsName(s) => Some(ia5(s)),
            GeneralName::OtherName(other) if other.type_id == OID_FULCIO_USERNAME => other
                .value
                .decode_as::<Utf8StringRef<'_>>()
                .ok()
                .map(|s| s.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> SignerIdentity {
        SignerIdentity {
            san: vec![
                "https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1".into(),
                "dev@example.com".into(),
            ],
            issuer: Some("https://token.actions.githubusercontent.com".into()),
            github: GitHubWorkflow {
                trigger: Some("push".into()),
                repository: Some("o/r".into()),
                ..GitHubWorkflow::default()
            },
            ci: CiClaims::default(),
        }
    }

    #[test]
    fn exact_subject_matches_any_san() {
        let id = identity();
        IdentityRequirement::exact(
            "dev@example.com",
            "https://token.actions.githubusercontent.com",
        )
        .check(&id)
        .unwrap();
        let err = IdentityRequirement::exact(
            "dev@example",
            "https://token.actions.githubusercontent.com",
        )
        .check(&id)
        .unwrap_err();
        assert!(
            matches!(err, IdentityError::SubjectMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("dev@example.com"), "{err}");
        let err = IdentityRequirement::exact("dev@example.com", "https://accounts.google.com")
            .check(&id)
            .unwrap_err();
        assert!(matches!(err, IdentityError::IssuerMismatch { .. }), "{err}");
    }

    #[test]
    fn regexes_are_unanchored_like_go() {
        let id = identity();
        let requirement = |subject: &str, issuer: &str| IdentityRequirement {
            subject: Matcher::regex("subject", subject).unwrap(),
            issuer: Matcher::regex("issuer", issuer).unwrap(),
            github: GitHubWorkflow::default(),
        };
        requirement(".*", ".*").check(&id).unwrap();
        requirement("github.com/o/r/", "actions")
            .check(&id)
            .unwrap();
        requirement(
            "^https://github\\.com/o/r/.*@refs/tags/",
            "^https://token\\.",
        )
        .check(&id)
        .unwrap();
        assert!(requirement("wrong", ".*").check(&id).is_err());
        assert!(requirement("^example.com", ".*").check(&id).is_err());
        assert!(requirement(".*", "google").check(&id).is_err());
        assert!(matches!(
            Matcher::regex("subject", "("),
            Err(IdentityError::InvalidRegex {
                field: "subject",
                ..
            })
        ));
    }

    #[test]
    fn any_matches_absence_and_github_extensions_compare_exactly() {
        let mut id = identity();
        let mut requirement = IdentityRequirement {
            subject: Matcher::Any,
            issuer: Matcher::Any,
            github: GitHubWorkflow {
                trigger: Some("push".into()),
                ..GitHubWorkflow::default()
            },
        };
        requirement.check(&id).unwrap();
        id.issuer = None;
        id.san.clear();
        requirement.check(&id).unwrap();
        requirement.github.repository = Some("o/other".into());
        let err = requirement.check(&id).unwrap_err();
        assert!(
            matches!(
                err,
                IdentityError::ExtensionMismatch {
                    extension: "githubWorkflowRepository",
                    ..
                }
            ),
            "{err}"
        );
        requirement.github = GitHubWorkflow {
            sha: Some("abc".into()),
            ..GitHubWorkflow::default()
        };
        let err = requirement.check(&id).unwrap_err();
        assert!(err.to_string().contains("no such extension"), "{err}");
        // Without the extension the issuer is "", as in cosign.
        requirement.github = GitHubWorkflow::default();
        requirement.issuer = Matcher::regex("issuer", ".*").unwrap();
        requirement.check(&id).unwrap();
        requirement.issuer = Matcher::Exact("https://accounts.google.com".into());
        assert!(matches!(
            requirement.check(&id),
            Err(IdentityError::IssuerMismatch { found: None, .. })
        ));
    }
}

//! An in-process token issuer for the registry's `auth.token` mode (the Docker registry
//! token protocol): `GET /token?service=S&scope=repository:NAME:ACTIONS` with Basic
//! credentials answers `{"token","access_token","expires_in","issued_at"}`.
//!
//! Tokens are ES256 JWTs whose header carries `x5c` = the issuer's self-signed
//! certificate; the registry trusts it through `rootcertbundle` (distribution 2.8 verifies
//! the `x5c` chain against that bundle, then the signature with the leaf's key, then
//! `iss`, `aud`, `exp` and `nbf` with 60 s leeway, then that `access` grants the request).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use crate::http1::{self, RequestHead};

/// The registry's `auth.token.service`, and the tokens' `aud`.
pub(crate) const SERVICE: &str = "imagegate-testkit-registry";
/// The registry's `auth.token.issuer`, and the tokens' `iss`.
pub(crate) const ISSUER: &str = "imagegate-testkit-token-issuer";
/// Lifetime of an issued token.
const EXPIRES_IN_SECS: u64 = 300;

/// What the connection handlers share.
struct Signer {
    key: EcdsaKeyPair,
    /// Standard base64 of the certificate's DER (JWS `x5c` uses standard base64).
    x5c: String,
    user: String,
    password: String,
    answered: AtomicUsize,
}

/// A running token issuer on `127.0.0.1:<random port>`; stopped on drop.
pub(crate) struct TokenIssuer {
    addr: SocketAddr,
    cert_pem: String,
    signer: Arc<Signer>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenIssuer {
    /// Generates a P-256 key and a self-signed CA certificate, and starts serving.
    pub(crate) fn start(user: &str, password: &str) -> TokenIssuer {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("imagegate-testkit: generating the token issuer key");
        let mut params = rcgen::CertificateParams::new(vec![ISSUER.to_owned()])
            .expect("imagegate-testkit: token issuer certificate parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ISSUER);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        let cert = params
            .self_signed(&key_pair)
            .expect("imagegate-testkit: self-signing the token issuer certificate");
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key_pair.serialize_der())
                .expect("imagegate-testkit: loading the token issuer key into aws-lc-rs");
        let signer = Arc::new(Signer {
            key,
            x5c: STANDARD.encode(cert.der()),
            user: user.to_owned(),
            password: password.to_owned(),
            answered: AtomicUsize::new(0),
        });

        let listener = TcpListener::bind("127.0.0.1:0")
            .expect("imagegate-testkit: cannot bind the token issuer on 127.0.0.1");
        let addr = listener.local_addr().expect("token issuer local address");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (signer, stop) = (Arc::clone(&signer), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("testkit-token-issuer".into())
                .spawn(move || accept_loop(&listener, &signer, &stop))
                .expect("imagegate-testkit: spawning the token issuer thread")
        };
        TokenIssuer {
            addr,
            cert_pem: cert.pem(),
            signer,
            stop,
            thread: Some(thread),
        }
    }

    /// The `realm` URL (`http://127.0.0.1:PORT/token`).
    pub(crate) fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The PEM certificate the registry must trust (`rootcertbundle`).
    pub(crate) fn root_cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// How many `/token` requests were answered (any status).
    pub(crate) fn answered(&self) -> usize {
        self.signer.answered.load(Ordering::SeqCst)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; if that fails the thread is detached, never waited on.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, signer: &Arc<Signer>, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let signer = Arc::clone(signer);
        let _ = std::thread::Builder::new()
            .name("testkit-token-conn".into())
            .spawn(move || handle(stream, &signer));
    }
}

fn handle(mut stream: TcpStream, signer: &Signer) {
    let timeout = Some(Duration::from_secs(10));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return;
    }
    let Some(head) = http1::read_request_head(&mut stream) else {
        return;
    };
    let path = head.target.split('?').next().unwrap_or_default();
    if path != "/token" {
        http1::write_response(
            &mut stream,
            404,
            "Not Found",
            &[],
            "text/plain",
            b"not found\n",
        );
        return;
    }
    if head.method != "GET" {
        http1::write_response(
            &mut stream,
            405,
            "Method Not Allowed",
            &[("Allow", "GET")],
            "text/plain",
            b"GET only\n",
        );
        return;
    }
    signer.answered.fetch_add(1, Ordering::SeqCst);
    if !authorized(&head, signer) {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        http1::write_response(
            &mut stream,
            401,
            "Unauthorized",
            &[(
                "WWW-Authenticate",
                "Basic realm=\"imagegate-testkit-token\"",
            )],
            "application/json",
            body,
        );
        return;
    }
    let query = http1::query_pairs(&head.target);
    let service = query
        .iter()
        .find(|(n, _)| n == "service")
        .map_or(SERVICE, |(_, v)| v.as_str());
    let scopes: Vec<&str> = query
        .iter()
        .filter(|(n, _)| n == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter(|s| !s.is_empty())
        .collect();
    let token = signer.token(service, &scopes);
    let now = unix_now();
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": EXPIRES_IN_SECS,
        "issued_at": rfc3339(now),
    });
    let body = serde_json::to_vec(&body).expect("serialising the token response");
    http1::write_response(&mut stream, 200, "OK", &[], "application/json", &body);
}

fn authorized(head: &RequestHead, signer: &Signer) -> bool {
    let Some(value) = head.header("authorization") else {
        return false;
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", signer.user, signer.password);
    decoded == expected.as_bytes()
}

impl Signer {
    /// An ES256 JWT granting exactly `scopes` (`type:name:action,action`).
    fn token(&self, service: &str, scopes: &[&str]) -> String {
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|scope| {
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
                Some(json!({ "type": kind, "name": name, "actions": actions }))
            })
            .collect();
        let now = unix_now();
        let header = json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.x5c] });
        let claims = json!({
            "iss": ISSUER,
            "sub": self.user,
            "aud": service,
            "exp": now + EXPIRES_IN_SECS,
            "nbf": now.saturating_sub(5),
            "iat": now,
            "jti": hex::encode(random_bytes::<16>()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("JWT header")),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("JWT claims")),
        );
        // ES256 in JWS is the fixed-width R||S form (64 bytes), not DER.
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("imagegate-testkit: signing a token");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("imagegate-testkit: random bytes");
    bytes
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("system clock before 1970")
        .as_secs()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (UTC).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_000_000), "2026-12-23T04:26:40Z");
    }
}

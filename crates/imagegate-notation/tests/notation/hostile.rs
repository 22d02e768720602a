//! Hostile input: sizes, counts, nesting, truncation and garbage give clear errors, never
//! a panic or a pass.

use imagegate_notation::limits::{MAX_CHAIN_LENGTH, MAX_ENVELOPE_SIZE, MAX_HEADERS};
use imagegate_notation::{NotationError, TrustPolicy, read_certificates, verify_signature};
use imagegate_testkit::notation::{COSE, JWS, KeySpec, NotationCa, SignOptions, Validity};

use super::{now, target, trust};

#[test]
fn oversized_envelope_is_refused_before_parsing() {
    let (_, expected) = target();
    let envelope = vec![b' '; MAX_ENVELOPE_SIZE + 1];
    for media_type in [JWS, COSE] {
        let err = verify_signature(
            &envelope,
            media_type,
            &expected,
            &TrustPolicy::default(),
            now(),
        )
        .unwrap_err();
        assert!(
            matches!(err, NotationError::EnvelopeTooLarge { .. }),
            "{err}"
        );
    }
}

#[test]
fn long_chain_and_many_headers_are_refused() {
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let (kit, expected) = target();
    let mut jws: serde_json::Value =
        serde_json::from_slice(&signer.sign_jws(&kit, &SignOptions::default())).unwrap();
    let leaf = jws["header"]["x5c"][0].clone();
    jws["header"]["x5c"] = serde_json::Value::Array(vec![leaf.clone(); MAX_CHAIN_LENGTH + 1]);
    let err = verify_signature(
        &serde_json::to_vec(&jws).unwrap(),
        JWS,
        &expected,
        &trust(&ca),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            NotationError::TooMany {
                what: "certificates",
                ..
            }
        ),
        "{err}"
    );

    jws["header"]["x5c"] = serde_json::Value::Array(vec![leaf]);
    use base64::Engine as _;
    let mut headers = serde_json::Map::new();
    for i in 0..=MAX_HEADERS {
        headers.insert(format!("h{i}"), "x".into());
    }
    jws["protected"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&headers).unwrap())
        .into();
    let err = verify_signature(
        &serde_json::to_vec(&jws).unwrap(),
        JWS,
        &expected,
        &trust(&ca),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            NotationError::TooMany {
                what: "protected headers",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn every_truncation_of_valid_envelopes_is_an_error() {
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let (kit, expected) = target();
    for (media_type, envelope) in [
        (JWS, signer.sign_jws(&kit, &SignOptions::default())),
        (COSE, signer.sign_cose(&kit, &SignOptions::default())),
    ] {
        verify_signature(&envelope, media_type, &expected, &trust(&ca), now()).unwrap();
        for len in 0..envelope.len() {
            let result =
                verify_signature(&envelope[..len], media_type, &expected, &trust(&ca), now());
            assert!(
                result.is_err(),
                "{media_type} truncated to {len} bytes passed"
            );
        }
    }
}

#[test]
fn deep_nesting_and_garbage_are_errors() {
    let (_, expected) = target();
    let policy = TrustPolicy::default();
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = verify_signature(deep_json.as_bytes(), JWS, &expected, &policy, now()).unwrap_err();
    assert!(
        matches!(err, NotationError::MalformedEnvelope { format: "JWS", .. }),
        "{err}"
    );
    let deep_cbor = [vec![0xd2], vec![0x81; 100_000], vec![0x00]].concat();
    let err = verify_signature(&deep_cbor, COSE, &expected, &policy, now()).unwrap_err();
    assert!(
        matches!(err, NotationError::MalformedEnvelope { format: "COSE", .. }),
        "{err}"
    );
    // A CBOR byte string claiming 2^63 bytes.
    let huge = [
        0xd2, 0x84, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(verify_signature(&huge, COSE, &expected, &policy, now()).is_err());
    let err =
        verify_signature(b"{}", "application/octet-stream", &expected, &policy, now()).unwrap_err();
    assert!(
        matches!(err, NotationError::UnsupportedEnvelopeType(_)),
        "{err}"
    );
}

#[test]
fn unusable_trusted_certificates_are_input_errors() {
    assert!(matches!(
        read_certificates(b"not a certificate"),
        Err(NotationError::BadTrustedCertificate { .. })
    ));
    assert!(matches!(
        read_certificates(&[0x30, 0x03, 0x02, 0x01, 0x01]),
        Err(NotationError::BadTrustedCertificate { .. })
    ));
    let key = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert!(matches!(
        read_certificates(key),
        Err(NotationError::BadTrustedCertificate { .. })
    ));
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    assert_eq!(
        read_certificates(ca.pem().as_bytes()).unwrap(),
        vec![ca.der()]
    );
    assert_eq!(read_certificates(&ca.der()).unwrap(), vec![ca.der()]);
}

#[test]
fn untagged_cose_is_refused() {
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let (kit, expected) = target();
    let tagged = signer.sign_cose(&kit, &SignOptions::default());
    assert_eq!(tagged[0], 0xd2, "tag 18");
    let err = verify_signature(&tagged[1..], COSE, &expected, &trust(&ca), now()).unwrap_err();
    assert!(
        matches!(err, NotationError::MalformedEnvelope { format: "COSE", .. }),
        "{err}"
    );
}

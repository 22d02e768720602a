//! Envelopes made by the test kit's independent signer, verified by the crate.

use imagegate_notation::{
    Check, EnvelopeFormat, NotationError, SignatureAlgorithm, TrustPolicy, verify_signature,
};
use imagegate_testkit::notation::{
    COSE, JWS, KeySpec, NotationCa, NotationSigner, SignOptions, Validity,
};

use super::{now, target, trust, tsa};

fn sign(signer: &NotationSigner, media_type: &str, options: &SignOptions) -> Vec<u8> {
    let (kit, _) = target();
    if media_type == JWS {
        signer.sign_jws(&kit, options)
    } else {
        signer.sign_cose(&kit, options)
    }
}

#[test]
fn rsa_p256_p384_jws_and_cose_round_trip() {
    let cases = [
        (KeySpec::Rsa2048, SignatureAlgorithm::Ps256),
        (KeySpec::Rsa3072, SignatureAlgorithm::Ps384),
        (KeySpec::EcP256, SignatureAlgorithm::Es256),
        (KeySpec::EcP384, SignatureAlgorithm::Es384),
    ];
    let (_, expected) = target();
    for (spec, algorithm) in cases {
        let ca = NotationCa::new("Test Root", spec);
        let signer = ca.signer("signer.example", spec, Validity::current());
        for (media_type, format) in [(JWS, EnvelopeFormat::Jws), (COSE, EnvelopeFormat::Cose)] {
            let envelope = sign(&signer, media_type, &SignOptions::default());
            let verified = verify_signature(&envelope, media_type, &expected, &trust(&ca), now())
                .unwrap_or_else(|e| panic!("{spec:?} {media_type}: {e}"));
            assert_eq!(verified.format, format);
            assert_eq!(verified.algorithm, algorithm);
            assert!(verified.target.same_content(&expected));
            assert!(
                verified.signer.contains("CN=signer.example"),
                "{}",
                verified.signer
            );
            assert_eq!(verified.chain_sha256.len(), 2);
            assert_eq!(verified.timestamp, None);
            assert_eq!(verified.signing_agent.as_deref(), Some("imagegate-testkit"));
        }
    }
}

#[test]
fn other_ca_fails_authenticity() {
    let ca = NotationCa::new("Signing Root", KeySpec::EcP256);
    let other = NotationCa::new("Other Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let (_, expected) = target();
    for media_type in [JWS, COSE] {
        let envelope = sign(&signer, media_type, &SignOptions::default());
        let err =
            verify_signature(&envelope, media_type, &expected, &trust(&other), now()).unwrap_err();
        assert_eq!(err, NotationError::UntrustedChain, "{media_type}");
        assert_eq!(err.check(), Check::Authenticity);
    }
}

#[test]
fn expired_leaf_fails_without_a_timestamp() {
    let ca = NotationCa::new("Root", KeySpec::Rsa2048);
    let signer = ca.signer("expired", KeySpec::Rsa2048, Validity::expired());
    let options = SignOptions {
        signing_time: Some(Validity::EXPIRED_INSIDE),
        ..Default::default()
    };
    let (_, expected) = target();
    for media_type in [JWS, COSE] {
        let envelope = sign(&signer, media_type, &options);
        let err =
            verify_signature(&envelope, media_type, &expected, &trust(&ca), now()).unwrap_err();
        assert!(
            matches!(err, NotationError::CertificateNotValid { .. }),
            "{media_type}: {err}"
        );
        assert_eq!(err.check(), Check::AuthenticTimestamp);
        // Verified at a time inside the leaf's validity, the same envelope passes.
        verify_signature(
            &envelope,
            media_type,
            &expected,
            &trust(&ca),
            Validity::EXPIRED_INSIDE + 60,
        )
        .unwrap_or_else(|e| panic!("{media_type}: {e}"));
    }
}

#[test]
fn tampered_descriptor_and_signature_fail_integrity() {
    let ca = NotationCa::new("Root", KeySpec::EcP384);
    let signer = ca.signer("signer", KeySpec::EcP384, Validity::current());
    let (_, expected) = target();
    for media_type in [JWS, COSE] {
        let envelope = sign(&signer, media_type, &SignOptions::default());
        for other in [
            imagegate_notation::Descriptor {
                size: expected.size + 1,
                ..expected.clone()
            },
            imagegate_notation::Descriptor {
                digest: format!("sha256:{}", "0".repeat(64)),
                ..expected.clone()
            },
            imagegate_notation::Descriptor {
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                ..expected.clone()
            },
        ] {
            let err =
                verify_signature(&envelope, media_type, &other, &trust(&ca), now()).unwrap_err();
            assert!(
                matches!(err, NotationError::TargetMismatch { .. }),
                "{media_type}: {err}"
            );
            assert_eq!(err.check(), Check::Integrity);
        }
    }
    // A changed signature byte (COSE: the last byte of the envelope is the signature's).
    let mut cose = sign(&signer, COSE, &SignOptions::default());
    let last = cose.len() - 1;
    cose[last] ^= 1;
    let err = verify_signature(&cose, COSE, &expected, &trust(&ca), now()).unwrap_err();
    assert!(
        matches!(err, NotationError::InvalidSignature { .. }),
        "{err}"
    );
    // A JWS whose payload names another artifact under the original signature.
    let jws: serde_json::Value =
        serde_json::from_slice(&sign(&signer, JWS, &SignOptions::default())).unwrap();
    let mut forged = jws.clone();
    let other_payload = base64_url(br#"{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1}}"#);
    forged["payload"] = other_payload.into();
    let err = verify_signature(
        &serde_json::to_vec(&forged).unwrap(),
        JWS,
        &expected,
        &trust(&ca),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(err, NotationError::InvalidSignature { .. }),
        "{err}"
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn timestamped_expired_leaf_passes_with_a_valid_timestamp_only() {
    let ca = NotationCa::new("Root", KeySpec::Rsa2048);
    let signer = ca.signer("expired", KeySpec::Rsa2048, Validity::expired());
    let (tsa, tsa_root) = tsa();
    let (_, other_tsa_root) = super::tsa();
    let (_, expected) = target();
    let at = Validity::EXPIRED_INSIDE;
    let stamped = SignOptions {
        signing_time: Some(at),
        timestamp: Some((tsa.clone(), at)),
        ..Default::default()
    };
    let with_tsa = TrustPolicy::kyverno(vec![ca.der()], vec![tsa_root.der()]);
    for media_type in [JWS, COSE] {
        let envelope = sign(&signer, media_type, &stamped);
        let verified = verify_signature(&envelope, media_type, &expected, &with_tsa, now())
            .unwrap_or_else(|e| panic!("{media_type}: {e}"));
        let range = verified.timestamp.expect("timestamp range");
        assert!(range.earliest <= at && at <= range.latest, "{range:?}");

        // Without a TSA store the timestamp is not used: the expired leaf fails.
        let err =
            verify_signature(&envelope, media_type, &expected, &trust(&ca), now()).unwrap_err();
        assert!(
            matches!(err, NotationError::CertificateNotValid { .. }),
            "{media_type}: {err}"
        );

        // A TSA store that did not issue the token.
        let wrong = TrustPolicy::kyverno(vec![ca.der()], vec![other_tsa_root.der()]);
        let err = verify_signature(&envelope, media_type, &expected, &wrong, now()).unwrap_err();
        assert!(
            matches!(err, NotationError::UntrustedTimestamp(_)),
            "{media_type}: {err}"
        );
        assert_eq!(err.check(), Check::AuthenticTimestamp);

        // Without a timestamp, a TSA store requires one.
        let unstamped = sign(
            &signer,
            media_type,
            &SignOptions {
                signing_time: Some(at),
                ..Default::default()
            },
        );
        let err =
            verify_signature(&unstamped, media_type, &expected, &with_tsa, now()).unwrap_err();
        assert_eq!(err, NotationError::MissingTimestamp, "{media_type}");

        // A timestamp taken after the leaf expired.
        let late = SignOptions {
            signing_time: Some(at),
            timestamp: Some((tsa.clone(), now())),
            ..Default::default()
        };
        let envelope = sign(&signer, media_type, &late);
        let err = verify_signature(&envelope, media_type, &expected, &with_tsa, now()).unwrap_err();
        assert!(
            matches!(err, NotationError::TimestampOutsideValidity { .. }),
            "{media_type}: {err}"
        );
    }
}

#[test]
fn timestamp_of_another_signature_is_refused() {
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let (tsa, tsa_root) = tsa();
    let (_, expected) = target();
    // Graft a token made for other bytes into a valid JWS.
    let envelope = sign(&signer, JWS, &SignOptions::default());
    let mut jws: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    use base64::Engine as _;
    jws["header"]["io.cncf.notary.timestampSignature"] = base64::engine::general_purpose::STANDARD
        .encode(tsa.timestamp(b"other bytes", now()))
        .into();
    let policy = TrustPolicy::kyverno(vec![ca.der()], vec![tsa_root.der()]);
    let err = verify_signature(
        &serde_json::to_vec(&jws).unwrap(),
        JWS,
        &expected,
        &policy,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, NotationError::InvalidTimestamp(_)), "{err}");

    // A token for the right signature whose own CMS signature is broken (it is the last
    // field of the token).
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jws["signature"].as_str().unwrap())
        .unwrap();
    let mut token = tsa.timestamp(&signature, now());
    let good = jws.clone();
    let graft = |token: &[u8]| {
        let mut jws = good.clone();
        jws["header"]["io.cncf.notary.timestampSignature"] =
            base64::engine::general_purpose::STANDARD
                .encode(token)
                .into();
        verify_signature(
            &serde_json::to_vec(&jws).unwrap(),
            JWS,
            &expected,
            &policy,
            now(),
        )
    };
    graft(&token).expect("the untouched token verifies");
    let last = token.len() - 1;
    token[last] ^= 1;
    let err = graft(&token).unwrap_err();
    assert!(matches!(err, NotationError::InvalidTimestamp(_)), "{err}");
}

#[test]
fn unknown_critical_header_is_refused() {
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let options = SignOptions {
        extra_critical: vec!["io.example.mustUnderstand".into()],
        ..Default::default()
    };
    let (_, expected) = target();
    for media_type in [JWS, COSE] {
        let envelope = sign(&signer, media_type, &options);
        let err =
            verify_signature(&envelope, media_type, &expected, &trust(&ca), now()).unwrap_err();
        assert_eq!(
            err,
            NotationError::UnknownCriticalHeader("io.example.mustUnderstand".into()),
            "{media_type}"
        );
    }
}

#[test]
fn verification_plugin_header_is_refused() {
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let options = SignOptions {
        extra_critical: vec!["io.cncf.notary.verificationPlugin".into()],
        ..Default::default()
    };
    let (_, expected) = target();
    for media_type in [JWS, COSE] {
        let envelope = sign(&signer, media_type, &options);
        let err =
            verify_signature(&envelope, media_type, &expected, &trust(&ca), now()).unwrap_err();
        assert_eq!(
            err,
            NotationError::VerificationPluginRequired,
            "{media_type}"
        );
    }
}

#[test]
fn passed_expiry_fails_and_future_expiry_passes() {
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let (_, expected) = target();
    for media_type in [JWS, COSE] {
        let past = sign(
            &signer,
            media_type,
            &SignOptions {
                expiry: Some(now() - 60),
                ..Default::default()
            },
        );
        let err = verify_signature(&past, media_type, &expected, &trust(&ca), now()).unwrap_err();
        assert!(
            matches!(err, NotationError::Expired(_)),
            "{media_type}: {err}"
        );
        assert_eq!(err.check(), Check::Expiry);
        let future = sign(
            &signer,
            media_type,
            &SignOptions {
                expiry: Some(now() + 3600),
                ..Default::default()
            },
        );
        let verified =
            verify_signature(&future, media_type, &expected, &trust(&ca), now()).unwrap();
        assert!(verified.expiry.is_some());
    }
}

#[test]
fn trusting_the_leaf_itself_is_authentic() {
    // Kyverno users often put the signing certificate itself in `cert`.
    let ca = NotationCa::new("Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let envelope = sign(&signer, JWS, &SignOptions::default());
    let (_, expected) = target();
    let policy = TrustPolicy::kyverno(vec![signer.chain()[0].clone()], vec![]);
    verify_signature(&envelope, JWS, &expected, &policy, now()).unwrap();
}

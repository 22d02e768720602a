//! Scenario 5: the same cold verification by the peer, the `sigstore` crate
//! (sigstore-rs, what Kubewarden uses), as its `examples/cosign/verify` does it:
//! `ClientBuilder` → `triangulate` → `trusted_signature_layers` → `verify_constraints`
//! with a `PublicKeyVerifier`, plain HTTP to the loopback registry.

use std::time::Instant;

use anyhow::{Context as _, anyhow, ensure};
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{Client, ClientBuilder, CosignCapabilities as _, verify_constraints};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

use crate::cold::ColdSingle;
use crate::fixture::Fixture;
use crate::report::{Met, Row, Samples};

fn client() -> anyhow::Result<Client> {
    let config = ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    };
    ClientBuilder::default()
        .with_oci_client_config(config)
        .build()
        .map_err(|e| anyhow!("sigstore-rs client: {e}"))
}

/// One verification of `image` with `client`; fails unless a signature by `pem` verified.
async fn verify(client: &mut Client, image: &OciReference, pem: &[u8]) -> anyhow::Result<()> {
    let auth = Auth::Anonymous;
    let (signature_image, digest) = client
        .triangulate(image, &auth)
        .await
        .map_err(|e| anyhow!("sigstore-rs triangulate: {e}"))?;
    let layers = client
        .trusted_signature_layers(&auth, &digest, &signature_image)
        .await
        .map_err(|e| anyhow!("sigstore-rs trusted_signature_layers: {e}"))?;
    ensure!(!layers.is_empty(), "sigstore-rs found no signature layers");
    let verifier =
        PublicKeyVerifier::try_from(pem).map_err(|e| anyhow!("sigstore-rs public key: {e}"))?;
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter())
        .map_err(|e| anyhow!("sigstore-rs: constraints not satisfied: {e:?}"))?;
    Ok(())
}

/// `bench --peer-verify IMAGE KEY`: one cold verification in this process (scenario 12).
pub fn child(image: &str, key: &std::path::Path) -> anyhow::Result<()> {
    let reference: OciReference = image
        .parse()
        .with_context(|| format!("sigstore-rs cannot parse {image}"))?;
    let pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async { verify(&mut client()?, &reference, &pem).await })
}

/// Runs the peer on the image of scenario 2 and compares.
pub async fn run(
    fixture: &Fixture,
    image: &str,
    imagegate: &ColdSingle,
    iterations: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let reference: OciReference = image
        .parse()
        .with_context(|| format!("sigstore-rs cannot parse {image}"))?;
    let pem = fixture.key.public_pem().into_bytes();

    // Fresh client per verification (new connections), as imagegate's 2b.
    let mut reused = client()?;
    verify(&mut reused, &reference, &pem).await?;
    let before = fixture.requests();
    let mut one = client()?;
    verify(&mut one, &reference, &pem).await?;
    let requests = fixture.requests() - before;
    eprintln!(
        "bench: sigstore-rs's registry requests for one verification (new client):\n  {}",
        fixture.requests_since(before).join("\n  ")
    );
    let mut fresh = Samples::default();
    for _ in 0..iterations {
        let mut client = client()?;
        let started = Instant::now();
        verify(&mut client, &reference, &pem).await?;
        fresh.push(started.elapsed());
    }

    // One client reused (warm connections, cached tokens), as imagegate's 2.
    let before = fixture.requests();
    verify(&mut reused, &reference, &pem).await?;
    let reused_requests = fixture.requests() - before;
    let mut warm = Samples::default();
    for _ in 0..iterations {
        let started = Instant::now();
        verify(&mut reused, &reference, &pem).await?;
        warm.push(started.elapsed());
    }

    let ratio_warm =
        imagegate.warm_connections.median().as_secs_f64() / warm.median().as_secs_f64();
    let ratio_fresh = imagegate.fresh_client.median().as_secs_f64() / fresh.median().as_secs_f64();
    rows.push(Row::new(
        "5 sigstore-rs 0.13, same verification, client reused",
        format!(
            "{}; {reused_requests} registry requests; imagegate/sigstore-rs time ratio {ratio_warm:.2}, requests {}/{reused_requests}",
            warm.summary(),
            imagegate.requests
        ),
        "comparison (imagegate faster: ratio < 1)",
        Met::from(ratio_warm < 1.0),
    ));
    rows.push(Row::new(
        "5b sigstore-rs 0.13, same verification, new client each time",
        format!(
            "{}; {requests} registry requests; imagegate(2b)/sigstore-rs time ratio {ratio_fresh:.2}",
            fresh.summary()
        ),
        "comparison (imagegate faster: ratio < 1)",
        Met::from(ratio_fresh < 1.0),
    ));
    Ok(())
}

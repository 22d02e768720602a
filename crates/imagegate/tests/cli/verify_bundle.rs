//! `imagegate verify-bundle`: the sigstore-conformance CLI protocol, run through the real
//! binary on every case of `../shared/vectors/sigstore-conformance` (70 cases, artifact
//! as a file and as a `sha256:` digest: 140 runs), plus usage errors.

use std::path::Path;
use std::time::Instant;

use imagegate_testkit::vectors_dir;
use serde_json::Value;

use crate::util::imagegate;

macro_rules! vectors_or_skip {
    () => {
        match vectors_dir() {
            Some(dir) => dir,
            None => {
                println!("skipped: ../shared/vectors not found");
                return;
            }
        }
    };
}

fn cases(vectors: &Path) -> Vec<Value> {
    let path = vectors.join("sigstore-conformance/cases.json");
    let cases: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cases["cases"].as_array().unwrap().clone()
}

/// The arguments the conformance suite passes for `case` (`client.py build_verify_args`).
fn conformance_args(dir: &Path, case: &Value, digest: bool) -> Vec<String> {
    let path = |field: &str| {
        dir.join(case[field].as_str().unwrap())
            .display()
            .to_string()
    };
    let mut args = vec![
        "verify-bundle".to_owned(),
        "--bundle".to_owned(),
        path("bundle"),
    ];
    match case["verification_mode"].as_str().unwrap() {
        "key" => args.extend(["--key".to_owned(), path("key")]),
        _ => args.extend([
            "--certificate-identity".to_owned(),
            case["identity"].as_str().unwrap().to_owned(),
            "--certificate-oidc-issuer".to_owned(),
            case["issuer"].as_str().unwrap().to_owned(),
        ]),
    }
    if case["trusted_root"] != "public-good" {
        args.extend(["--trusted-root".to_owned(), path("trusted_root")]);
    }
    args.push(if digest {
        case["artifact_digest"].as_str().unwrap().to_owned()
    } else {
        path("artifact")
    });
    args
}

#[test]
fn sigstore_conformance_all_140_runs_through_the_binary() {
    let vectors = vectors_or_skip!();
    let dir = vectors.join("sigstore-conformance");
    let cases = cases(&vectors);
    assert_eq!(cases.len(), 70);
    let started = Instant::now();
    // Four workers: each run is one process.
    let runs: Vec<(String, bool, Vec<String>)> = cases
        .iter()
        .flat_map(|case| {
            [false, true].map(|digest| {
                let form = if digest { "digest" } else { "file" };
                (
                    format!("{} ({form})", case["name"].as_str().unwrap()),
                    case["expect"] == "pass",
                    conformance_args(&dir, case, digest),
                )
            })
        })
        .collect();
    let results: Vec<(String, bool, crate::util::Run)> = std::thread::scope(|scope| {
        let chunks: Vec<_> = runs
            .chunks(runs.len().div_ceil(4))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, pass, args)| {
                            let args: Vec<&str> = args.iter().map(String::as_str).collect();
                            (name.clone(), *pass, imagegate(&args, &[]))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    });

    let mut mismatches = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (name, pass, run) in &results {
        match (pass, run.code) {
            (true, 0) => accepted += 1,
            (false, 1 | 2) => {
                rejected += 1;
                // One clear line on stderr.
                let lines: Vec<&str> = run.stderr.lines().collect();
                assert_eq!(lines.len(), 1, "{name}: stderr {:?}", run.stderr);
                assert!(lines[0].starts_with("error: "), "{name}: {}", lines[0]);
            }
            _ => mismatches.push(format!(
                "{name}: exit {} (expected {}): {}",
                run.code,
                if *pass { "0" } else { "1" },
                run.stderr.trim()
            )),
        }
    }
    println!(
        "{} runs in {:.1?}: {accepted} accepted, {rejected} rejected as expected, {} mismatches",
        results.len(),
        started.elapsed(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "mismatches:\n{}",
        mismatches.join("\n")
    );
    assert_eq!((accepted, rejected), (42, 98));
}

#[test]
fn verified_bundle_prints_the_signer_and_failures_exit_1() {
    let vectors = vectors_or_skip!();
    let dir = vectors.join("sigstore-conformance");
    let cases = cases(&vectors);
    let case = |name: &str| cases.iter().find(|c| c["name"] == name).unwrap().clone();

    let run = imagegate(
        &conformance_args(&dir, &case("happy-path-v0.3"), false)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
    );
    run.assert_code(0).assert_stderr_contains("Verified OK");
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        summary["signer"]["issuer"],
        "https://token.actions.githubusercontent.com"
    );
    assert_eq!(
        summary["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );

    // Wrong identity: exit 1 with the cause.
    let mut args = conformance_args(&dir, &case("happy-path-v0.3"), true);
    args[4] = "https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main".into();
    let run = imagegate(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    run.assert_code(1)
        .assert_stderr_contains("certificate identity mismatch");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // Managed key.
    let run = imagegate(
        &conformance_args(&dir, &case("managed-key-happy-path"), true)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
    );
    run.assert_code(0);
    let summary: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(summary["signer"]["key"].is_string(), "{summary}");
}

#[test]
fn usage_and_input_errors_exit_2() {
    let vectors = vectors_or_skip!();
    let dir = vectors.join("sigstore-conformance/bundle-verify");
    let bundle = dir.join("happy-path-v0.3/bundle.sigstore.json");
    let bundle = bundle.to_str().unwrap();
    let key = dir.join("managed-key-happy-path/key.pub");
    let key = key.to_str().unwrap();
    let a_txt = dir.join("a.txt");
    let a_txt = a_txt.to_str().unwrap();
    let identity = [
        "--certificate-identity",
        "id",
        "--certificate-oidc-issuer",
        "https://i",
    ];

    // No signer given; identity without issuer; key and identity together; no artifact.
    for args in [
        vec!["verify-bundle", "--bundle", bundle, a_txt],
        vec![
            "verify-bundle",
            "--bundle",
            bundle,
            "--certificate-identity",
            "id",
            a_txt,
        ],
        vec![
            "verify-bundle",
            "--bundle",
            bundle,
            "--certificate-oidc-issuer",
            "https://i",
            a_txt,
        ],
        [
            &["verify-bundle", "--bundle", bundle, "--key", key][..],
            &identity,
            &[a_txt],
        ]
        .concat(),
        [&["verify-bundle", "--bundle", bundle][..], &identity].concat(),
        [&["verify-bundle"][..], &identity, &[a_txt]].concat(),
    ] {
        imagegate(&args, &[]).assert_code(2);
    }
    // Malformed digest, missing files, a broken key and a broken trusted root.
    let tmp = tempfile::tempdir().unwrap();
    let broken = crate::util::write(tmp.path(), "broken.json", "{");
    for (args, message) in [
        (
            [
                &["verify-bundle", "--bundle", bundle][..],
                &identity,
                &["sha256:abc"],
            ]
            .concat(),
            "malformed artifact digest",
        ),
        (
            [
                &["verify-bundle", "--bundle", "/nonexistent.json"][..],
                &identity,
                &[a_txt],
            ]
            .concat(),
            "cannot read bundle /nonexistent.json",
        ),
        (
            [
                &["verify-bundle", "--bundle", bundle][..],
                &identity,
                &["/nonexistent.txt"],
            ]
            .concat(),
            "cannot read artifact /nonexistent.txt",
        ),
        (
            vec!["verify-bundle", "--bundle", bundle, "--key", &broken, a_txt],
            "key ",
        ),
        (
            [
                &[
                    "verify-bundle",
                    "--bundle",
                    bundle,
                    "--trusted-root",
                    &broken,
                ][..],
                &identity,
                &[a_txt],
            ]
            .concat(),
            "malformed trusted root",
        ),
    ] {
        let run = imagegate(&args, &[]);
        run.assert_code(2).assert_stderr_contains(message);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
}

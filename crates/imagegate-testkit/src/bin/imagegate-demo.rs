//! Demo of the current state: a real registry on loopback, an image pushed and signed
//! the way cosign does, then `imagegate verify` run on it — once for a signed image,
//! once for an unsigned one.
#![allow(clippy::expect_used)] // a demo: set-up failures panic with their message

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};

use imagegate_testkit::{CosignKey, Registry};

fn main() -> ExitCode {
    let imagegate = std::env::current_exe()
        .expect("own path")
        .with_file_name("imagegate");
    let registry = Registry::start();
    let pusher = registry.pusher();
    let key = CosignKey::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let name = format!("{}/demo/app", registry.host());
    let digest = pusher.push_image("demo/app", "signed");
    pusher.sign("demo/app", &name, &digest, &key, &BTreeMap::new());
    pusher.push_image("demo/app", "unsigned");
    println!(
        "registry {} is running with {name}:signed and {name}:unsigned",
        registry.host()
    );

    let mut all_as_expected = true;
    for (tag, expected) in [("signed", 0), ("unsigned", 1)] {
        let image = format!("{name}:{tag}");
        println!("\n$ imagegate verify --key {} {image}", key_path.display());
        let status = Command::new(&imagegate)
            .args(["verify", "--key"])
            .arg(&key_path)
            .arg(&image)
            .status()
            .expect("run imagegate (build it with `cargo build -p imagegate`)");
        println!("exit code {:?} (expected {expected})", status.code());
        all_as_expected &= status.code() == Some(expected);
    }
    if all_as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

//! docker `config.json` (mounted secrets, `--docker-config`). Only parsing: looking up a
//! credential may run credential helpers, which a fuzzer must not start.
#![no_main]

use std::path::Path;

use imagegate_oci::DockerConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = DockerConfig::parse(Path::new("fuzz/config.json"), data);
});

//! Helpers shared by the CLI tests.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt as _;

/// The result of one `imagegate` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// Runs `imagegate ARGS` with a clean environment for credentials (a home directory
/// without docker config), plus `envs`.
pub fn imagegate(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut command = command_in(home.path());
    command.args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    let started = Instant::now();
    let output = command.output().expect("run imagegate");
    run_of(output, started)
}

/// Runs `imagegate ARGS < input` as [`imagegate`] does (`imagegate review`).
pub fn imagegate_with_input<S: AsRef<OsStr>>(args: &[S], input: &[u8]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut command = command_in(home.path());
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("run imagegate");
    child
        .stdin
        .take()
        .expect("stdin of imagegate")
        .write_all(input)
        .expect("write imagegate's stdin");
    let output = child.wait_with_output().expect("wait for imagegate");
    run_of(output, started)
}

/// The imagegate binary with `home` as its home directory and no credentials or
/// signature repository from the environment.
fn command_in(home: &Path) -> Command {
    let mut command = Command::cargo_bin("imagegate").expect("imagegate binary");
    command
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("COSIGN_REPOSITORY")
        .env("IMAGEGATE_LOG", "warn");
    command
}

fn run_of(output: Output, started: Instant) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = output;
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

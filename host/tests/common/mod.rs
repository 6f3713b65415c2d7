//! What the host's test programs share: building the wasm they serve, once per process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `cargo build --release --target TARGET` of the workspace at `manifest`, with the outer
/// build's settings removed (they are for the native host, not this wasm build).
/// `target_dir` keeps the wasm build's own folder when set.
pub fn build_wasm(manifest: &Path, target: &str, target_dir: Option<&Path>) {
    // A no-op when already installed; needed on a fresh toolchain.
    let _ = Command::new("rustup")
        .args(["target", "add", target])
        .output();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--release", "--target", target])
        .arg("--manifest-path")
        .arg(manifest);
    if let Some(dir) = target_dir {
        cargo.arg("--target-dir").arg(dir);
    }
    let output = cargo
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo to build the test wasm");
    assert!(
        output.status.success(),
        "building {} failed:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The fixture component's folder (tests/fixture).
#[allow(dead_code)] // (not every test program serves the fixture)
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")
}

/// The fixture component, built once per test process; its `.wasm` path.
#[allow(dead_code)]
pub fn fixture_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let dir = fixture_dir();
        build_wasm(
            &dir.join("Cargo.toml"),
            "wasm32-wasip2",
            Some(&dir.join("target")),
        );
        let wasm = dir.join("target/wasm32-wasip2/release/spin_host_fixture.wasm");
        assert!(wasm.exists(), "{} missing after build", wasm.display());
        wasm
    })
}

//! The compile cache with a real Spin component (the fixture) served by a real `Host`:
//! a restart finds the compiled code on disk, a rebuilt component is compiled again
//! and serves its new code, and a damaged cache file is compiled again. The file
//! format's own cases are unit tests in `src/compile_cache.rs`. Nothing here is timed:
//! what each start did is read from [`Host::compiled`] and the cache folder.

use std::path::{Path, PathBuf};

mod common;

use common::{fixture_dir, fixture_wasm};
use spin_host::compile_cache::CacheOutcome;
use spin_host::{CompileCache, Host, HostConfig};
use tokio::sync::oneshot;

/// The fixture's answer to `GET /sleep?ms=0`, which occurs once in its `.wasm` (in
/// its data segment), so replacing it makes a component that answers differently.
const SLEPT: &[u8] = b"slept";

/// An app folder: the fixture's manifest, and `wasm` where it expects its component.
fn app(wasm: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("spin.toml"),
        dir.path().join("spin.toml"),
    )
    .unwrap();
    rebuild(dir.path(), wasm);
    dir
}

/// Write the app's component, as a build would.
fn rebuild(app: &Path, wasm: &[u8]) {
    let path = app.join("target/wasm32-wasip2/release/spin_host_fixture.wasm");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, wasm).unwrap();
}

fn fixture() -> Vec<u8> {
    std::fs::read(fixture_wasm()).unwrap()
}

/// The fixture with its `slept` answer replaced by `SLEPT`: other bytes, other code.
fn fixture_that_shouts() -> Vec<u8> {
    let mut wasm = fixture();
    let at: Vec<usize> = wasm
        .windows(SLEPT.len())
        .enumerate()
        .filter(|(_, w)| *w == SLEPT)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "`slept` occurs once in the fixture");
    wasm[at[0]..at[0] + SLEPT.len()].copy_from_slice(b"SLEPT");
    wasm
}

fn config(app: &Path, cache: CompileCache) -> HostConfig {
    let mut config = HostConfig::new(app.join("spin.toml"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config
        .sqlite_path_overrides
        .insert("default".into(), app.join("data/app.db"));
    config
        .variables
        .insert("secret_word".into(), "xyzzy".into());
    config.max_instances = 8;
    config.compile_cache = cache;
    config
}

/// Start a host, `GET /sleep?ms=0` from it, stop it: what its start did for the
/// `fixture` component, and the answer.
async fn start_and_ask(config: HostConfig) -> (CacheOutcome, String) {
    let host = Host::start(config).await.expect("host starts");
    let compiled = host.compiled();
    let addr = host.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(host.serve(async move {
        let _ = stopped.await;
    }));
    let response = reqwest::get(format!("http://{addr}/sleep?ms=0"))
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    // Both components are the same file: the second reuses the first's code.
    assert_eq!(compiled.len(), 2, "{compiled:?}");
    assert_eq!(compiled[0].0, "fixture");
    assert_eq!(compiled[1], ("nodb".to_string(), CacheOutcome::Reused));
    (compiled[0].1.clone(), body)
}

/// The cache's entries (`*.cwasm`).
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_the_components_from_the_cache() {
    let first = app(&fixture());
    let (outcome, body) = start_and_ask(config(first.path(), CompileCache::InApp)).await;
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(body, "slept");
    let cache = first.path().join(".spin/compiled");
    assert_eq!(entries(&cache).len(), 1);
    assert!(cache.join(".gitignore").is_file());

    // In one process a second start on the same file shares the first's compilation
    // (Reused), so the restart is the same app in another folder, given the first's
    // cache: what a restarted process finds on disk.
    let restarted = app(&fixture());
    let (outcome, body) =
        start_and_ask(config(restarted.path(), CompileCache::At(cache.clone()))).await;
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(body, "slept");
    assert_eq!(entries(&cache).len(), 1);
    assert!(!restarted.path().join(".spin/compiled").exists());

    // Off: compiled, nothing written.
    let uncached = app(&fixture());
    let (outcome, _) = start_and_ask(config(uncached.path(), CompileCache::Off)).await;
    assert_eq!(outcome, CacheOutcome::Off);
    assert!(!uncached.path().join(".spin/compiled").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_component_is_compiled_again_and_serves_its_new_code() {
    let cache = tempfile::tempdir().unwrap();
    let at = || CompileCache::At(cache.path().to_path_buf());
    let app = app(&fixture());
    let (outcome, body) = start_and_ask(config(app.path(), at())).await;
    assert_eq!((outcome, body.as_str()), (CacheOutcome::Miss, "slept"));

    // Rebuilt with other bytes at the same path: compiled again, the new code runs.
    rebuild(app.path(), &fixture_that_shouts());
    let (outcome, body) = start_and_ask(config(app.path(), at())).await;
    assert_eq!((outcome, body.as_str()), (CacheOutcome::Miss, "SLEPT"));
    assert_eq!(entries(cache.path()).len(), 2);

    // And back: the first build's entry is still there and is the one loaded.
    rebuild(app.path(), &fixture());
    let (outcome, body) = start_and_ask(config(app.path(), at())).await;
    assert_eq!((outcome, body.as_str()), (CacheOutcome::Hit, "slept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cache_file_is_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    let at = || CompileCache::At(cache.path().to_path_buf());
    let first = app(&fixture());
    let (outcome, _) = start_and_ask(config(first.path(), at())).await;
    assert_eq!(outcome, CacheOutcome::Miss);

    // One bit of the compiled code flipped on disk.
    let entry = entries(cache.path()).pop().unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&entry, &bytes).unwrap();

    let second = app(&fixture());
    let (outcome, body) = start_and_ask(config(second.path(), at())).await;
    assert!(
        matches!(&outcome, CacheOutcome::Rejected(why) if why.contains("checksum")),
        "{outcome:?}"
    );
    assert_eq!(body, "slept");

    // The entry was replaced with a good one.
    let third = app(&fixture());
    let (outcome, body) = start_and_ask(config(third.path(), at())).await;
    assert_eq!((outcome, body.as_str()), (CacheOutcome::Hit, "slept"));
}

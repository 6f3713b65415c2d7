//! Core wasm modules (`wasm32-wasip1`, what `spin new http-rust` builds) turned into
//! components at load, as Spin does.
//!
//! A module built with a wit-bindgen based SDK (spin-sdk 2 and later) carries its
//! component type in custom sections and imports WASI preview 1; `wit-component`'s
//! encoder wraps it with the preview1 adapter released with wasmtime 48 (the
//! *reactor* one: an HTTP component is called through its exports, it has no `main`).
//! The result is written once under the cache directory, named by the module's
//! SHA-256, so a restart (or a second host on the same app) does not redo it; a file
//! that is already a component is used as it is.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use sha2::{Digest, Sha256};

/// The wasm binary header: magic, then version 1 for a core module. A component has
/// a different version/layer field (`0d 00 01 00`).
const CORE_MODULE_HEADER: [u8; 8] = [0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00];

/// Where converted modules are kept under an app's directory (beside Spin's own
/// `.spin/` state).
pub fn cache_dir(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join(".spin").join("componentized")
}

/// The file to compile for `source`: `source` itself when it is a component (or not
/// wasm at all: the compiler names that error), else the cached component made from
/// the module, converting it first if no cached copy exists.
///
/// Blocking (reads, hashes, maybe encodes and writes): call from a blocking thread.
pub fn loadable_path(source: &Path, cache_dir: &Path) -> Result<PathBuf> {
    let bytes =
        std::fs::read(source).map_err(|e| anyhow!("cannot read {}: {e}", source.display()))?;
    if !bytes.starts_with(&CORE_MODULE_HEADER) {
        return Ok(source.to_path_buf());
    }
    let digest = hex(&Sha256::digest(&bytes));
    let cached = cache_dir.join(format!("{digest}.wasm"));
    if cached.is_file() {
        tracing::debug!(source = %source.display(), cached = %cached.display(), "componentized module from cache");
        return Ok(cached);
    }
    let started = std::time::Instant::now();
    let component = componentize(&bytes).with_context(|| {
        format!(
            "cannot turn the core module {} into a component",
            source.display()
        )
    })?;
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| anyhow!("cannot create {}: {e}", cache_dir.display()))?;
    // Written under a temporary name and renamed: two hosts starting at once never
    // read a half-written file.
    let partial = cache_dir.join(format!("{digest}.wasm.{}.partial", std::process::id()));
    std::fs::write(&partial, &component)
        .and_then(|()| std::fs::rename(&partial, &cached))
        .map_err(|e| anyhow!("cannot write {}: {e}", cached.display()))?;
    tracing::info!(
        source = %source.display(),
        cached = %cached.display(),
        ms = started.elapsed().as_millis() as u64,
        "core wasm module turned into a component"
    );
    Ok(cached)
}

/// Encode a preview1 core module as a component with the preview1 reactor adapter.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.wasm");
        std::fs::write(&file, [0x00, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]).unwrap();
        assert_eq!(
            loadable_path(&file, &dir.path().join("cache")).unwrap(),
            file
        );
        assert!(!dir.path().join("cache").exists());
    }

    #[test]
    fn a_module_is_converted_once_and_cached_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.wasm");
        // An empty core module: no imports, so the component it becomes is empty too.
        std::fs::write(&file, CORE_MODULE_HEADER).unwrap();
        let cache = dir.path().join("cache");
        let first = loadable_path(&file, &cache).unwrap();
        assert!(first.starts_with(&cache), "{}", first.display());
        let bytes = std::fs::read(&first).unwrap();
        assert!(bytes.starts_with(b"\0asm") && !bytes.starts_with(&CORE_MODULE_HEADER));
        // A second load finds it: the cached file is not rewritten.
        let written = std::fs::metadata(&first).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(loadable_path(&file, &cache).unwrap(), first);
        assert_eq!(
            std::fs::metadata(&first).unwrap().modified().unwrap(),
            written
        );
    }
}

// Over 600 lines: 250 of them are its tests, kept beside the cache rules they check.
//! Compiled components kept on disk, so that a restart loads machine code instead of
//! running Cranelift again (as `spin up` does with wasmtime's cache).
//!
//! # Why not wasmtime's own cache
//!
//! wasmtime's `cache` feature (`Config::cache`) would do the same job, and Spin uses it.
//! It is not used here because:
//!
//! - its directory is part of the engine's configuration, and engines are shared by
//!   every host in the process ([`crate::engine::shared_engine`]), so it cannot follow
//!   each app's manifest (tests start many apps in one process);
//! - it checks nothing but that the entry decompresses and parses: zstd frames are
//!   written without a checksum and the loaded ELF has none, so a flipped bit in a
//!   cached function would run as wrong machine code;
//! - it starts a background worker per engine that keeps statistics files beside the
//!   entries and recompresses popular ones with zstd level 20 (CPU on a small machine),
//!   and every start pays a decompression.
//!
//! # What a cache file is
//!
//! One file per compiled component, `<key>.cwasm`, where `key` is the SHA-256 of a tag
//! for this file format, the engine's [`Engine::precompile_compatibility_hash`] (the
//! full wasmtime version, e.g. `48.0.8`; the target; Cranelift's flags, including the
//! CPU features it detected; the tunables such as memory reservations and guard
//! sizes; the enabled wasm features) and the component's own bytes. So a rebuilt
//! `.wasm` (any byte changed), another wasmtime release or an engine configured
//! differently looks for another file and never finds this one. The file holds:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `SPHCWASM` |
//! | 4 | format version, little-endian (`FORMAT`) |
//! | 32 | the key again (a file copied or renamed to another key is refused) |
//! | 32 | SHA-256 of the payload |
//! | 8 | payload length, little-endian |
//! | n | the payload: [`Component::serialize`]'s output |
//!
//! # Why loading it is sound
//!
//! [`Component::deserialize`] is `unsafe`: wasmtime checks only lightly that the bytes
//! are its own output, and arbitrary bytes could be arbitrary machine code. Its
//! contract is met here because the payload handed to it is, byte for byte, what
//! [`Component::serialize`] produced for this key in a process running this host:
//!
//! - every file is written under a unique temporary name and renamed into place, so
//!   no reader ever sees a half-written file, and nothing writes a file in place;
//! - the file is read into memory once, and the bytes that were checked are the
//!   bytes deserialized (no second read, no mapping that could change under us);
//! - a file that is short, has another magic, format or key, another length, or a
//!   payload whose SHA-256 differs from the recorded one (a torn write after a power
//!   loss, a truncated copy, disk corruption) is not deserialized: the component is
//!   compiled again and the file replaced. wasmtime then checks the payload's own
//!   header (its version and engine settings) as a second line;
//! - the cache is trusted as much as the `.wasm` files beside it: the default folder
//!   is inside the app's folder. Anyone who can write there can also replace the
//!   components themselves. The checksum guards against accidents, not against
//!   someone forging a file with a matching checksum.
//!
//! The key does not cover a wasmtime patched in place under the same version number:
//! the workspace pins `wasmtime = "=48.0.8"` from crates.io. Anyone patching wasmtime
//! must turn the cache off or clear it.
//!
//! # Numbers
//!
//! - Files are not `fsync`ed: a file lost or torn by a crash fails its checksum and is
//!   compiled again; a start does not wait for the disk.
//! - Entries are kept up to [`MAX_CACHE_BYTES`] per folder (256 MiB). The
//!   orchestrator's six components compile to 18 MiB (3.6 MiB for each API
//!   component, 0.5 MiB for the dashboard), so that is about fourteen builds of all of
//!   them: enough to switch between branches without compiling again. The folder is
//!   pruned after a start that compiled something (a start that only loaded adds
//!   nothing): the least recently used entries go first (a hit touches the file's
//!   modification time), never the ones the host just loaded, and temporary files
//!   older than an hour (a writer that died).
//! - Loading an entry is a read, a SHA-256 (with the CPU's SHA extensions, about
//!   2 GB/s) and a copy into executable memory: the orchestrator's six load in well
//!   under 100 ms, where compiling them takes 4–8 s on two cores.
//! - A cache folder that cannot be created or written is not an error: the host
//!   compiles as without a cache and says so once per start.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where an app's compiled components are kept by default: beside Spin's own state
/// in the app's `.spin/` folder.
pub fn default_dir(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join(".spin").join("compiled")
}

/// Entries kept per cache folder, in bytes, before the least recently used go.
pub const MAX_CACHE_BYTES: u64 = 256 << 20;

/// How old a temporary file must be before a prune removes it (its writer died).
const STALE_TEMP: Duration = Duration::from_secs(3600);

const MAGIC: &[u8; 8] = b"SPHCWASM";
/// Bumped whenever the layout of a file or the derivation of its key changes.
const FORMAT: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 32 + 32 + 8;
const EXTENSION: &str = "cwasm";

/// How a component's machine code was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache configured: compiled.
    Off,
    /// Loaded from the cache; nothing compiled.
    Hit,
    /// Not in the cache: compiled, and written to it if the folder allowed.
    Miss,
    /// A cache file was there but refused (the reason): compiled and replaced.
    Rejected(String),
    /// The same file was already loaded by this process with the same engine (one
    /// of the above, earlier): that compilation is shared.
    Reused,
}

/// A component ready for `instantiate_pre`, with how it was obtained and the cache
/// file that holds it (when there is one).
pub struct Loaded {
    /// The compiled component.
    pub component: Component,
    /// Hit, miss, refused or off.
    pub outcome: CacheOutcome,
    /// The cache file backing it, when the cache is on and holds it.
    pub file: Option<PathBuf>,
}

/// The cache file for `wasm` compiled by `engine`, in `dir`.
pub fn entry_path(engine: &Engine, wasm: &[u8], dir: &Path) -> PathBuf {
    dir.join(format!("{}.{EXTENSION}", hex(&key(engine, wasm))))
}

/// The cache key: what the compiled code depends on (see the module's doc).
fn key(engine: &Engine, wasm: &[u8]) -> [u8; 32] {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.0.update(b"spin-host compiled component\0");
    hasher.0.update(FORMAT.to_le_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update((wasm.len() as u64).to_le_bytes());
    hasher.0.update(wasm);
    hasher.0.finalize().into()
}

/// A [`Hasher`] feeding SHA-256, so wasmtime's `Hash` of its configuration can go into
/// the key (std's own hashers are not meant to be stored).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        // Only the digest is used (finalize); `finish` is never called for a key.
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Compile `wasm` with `engine`, or load its earlier compilation from `dir`.
///
/// With `dir` set: a valid entry is loaded (and its modification time touched, for
/// pruning); a missing or refused one means compiling and writing the entry.
/// Compile errors are returned as they are; cache trouble never is (it is logged
/// and the component compiled).
///
/// Blocking (reads, hashes, compiles, writes): call from a blocking thread.
pub fn load_or_compile(engine: &Engine, wasm: &[u8], dir: Option<&Path>) -> Result<Loaded> {
    let Some(dir) = dir else {
        return Ok(Loaded {
            component: compile(engine, wasm)?.0,
            outcome: CacheOutcome::Off,
            file: None,
        });
    };
    let key = key(engine, wasm);
    let path = dir.join(format!("{}.{EXTENSION}", hex(&key)));
    let outcome = match read_entry(&path, &key) {
        Ok(Some(payload)) => {
            // SAFETY: `payload` is what `Component::serialize` wrote for this key: the
            // file was written whole (temporary file, then rename) by `write_entry`,
            // and its SHA-256 matches the one recorded beside it; see the module's
            // doc for the whole argument. wasmtime also checks its own header.
            match unsafe { Component::deserialize(engine, &payload) } {
                Ok(component) => {
                    touch(&path);
                    return Ok(Loaded {
                        component,
                        outcome: CacheOutcome::Hit,
                        file: Some(path),
                    });
                }
                Err(e) => CacheOutcome::Rejected(format!(
                    "wasmtime refused it: {}",
                    crate::diag::one_line(&format!("{e:#}"))
                )),
            }
        }
        Ok(None) => CacheOutcome::Miss,
        Err(reason) => CacheOutcome::Rejected(reason),
    };
    if let CacheOutcome::Rejected(reason) = &outcome {
        tracing::warn!(file = %path.display(), "compile cache entry refused ({reason}); compiling again");
    }
    let (component, payload) = compile(engine, wasm)?;
    let payload = match payload {
        Some(payload) => Ok(payload),
        None => component
            .serialize()
            .map_err(|e| anyhow!("{}", crate::diag::one_line(&format!("{e:#}")))),
    };
    let file = match payload.and_then(|payload| write_entry(dir, &path, &key, &payload)) {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot write to the compile cache, continuing without it: {e:#}");
            None
        }
    };
    Ok(Loaded {
        component,
        outcome,
        file,
    })
}

/// Compile a component from its binary or, as `Component::from_file` allows, its text
/// format (the key is then the text's bytes), on the start's compiling engine
/// ([`crate::engine::compiler_for`]) when there is one, so that `engine` never holds a
/// compiler's memory; with the machine code it was loaded from, then.
fn compile(engine: &Engine, wasm: &[u8]) -> Result<(Component, Option<Vec<u8>>)> {
    let Some(compiler) = crate::engine::compiler_for(engine) else {
        let component = Component::new(engine, wasm).map_err(crate::instance::to_anyhow)?;
        return Ok((component, None));
    };
    let code = compiler
        .precompile_component(wasm)
        .map_err(crate::instance::to_anyhow)?;
    // SAFETY: `code` was produced just now, in this process, by `precompile_component`
    // of an engine with `engine`'s configuration (the requirement of `deserialize`);
    // wasmtime checks the configuration recorded in it against `engine`'s too.
    let component =
        unsafe { Component::deserialize(engine, &code) }.map_err(crate::instance::to_anyhow)?;
    Ok((component, Some(code)))
}

/// The payload of the entry at `path`, `None` when there is no file, or why the file
/// is refused.
fn read_entry(path: &Path, key: &[u8; 32]) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        // No file, or no folder (a file where the folder should be: writing will say).
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than a header", bytes.len()));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    if &header[..8] != MAGIC {
        return Err("not a compile cache file".into());
    }
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if format != FORMAT {
        return Err(format!("format {format}, not {FORMAT}"));
    }
    if &header[12..44] != key {
        return Err("written for another key".into());
    }
    let length = u64::from_le_bytes(header[76..84].try_into().expect("8 bytes"));
    if length != payload.len() as u64 {
        return Err(format!(
            "payload of {} bytes where {length} were written",
            payload.len()
        ));
    }
    if Sha256::digest(payload).as_slice() != &header[44..76] {
        return Err("checksum mismatch".into());
    }
    bytes.drain(..HEADER_LEN);
    Ok(Some(bytes))
}

/// Write the entry for `key` at `path` (in `dir`, created if needed): a temporary file
/// of a name no other writer uses, then a rename over `path`.
fn write_entry(dir: &Path, path: &Path, key: &[u8; 32], payload: &[u8]) -> Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    create_dir(dir)?;
    let temp = dir.join(format!(
        "{}.{}.{}.tmp",
        hex(&key[..8]),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT.to_le_bytes());
    header.extend_from_slice(key);
    header.extend_from_slice(&Sha256::digest(payload));
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(&header)?;
            file.write_all(payload)
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(anyhow!("cannot write {}: {e}", path.display()));
    }
    Ok(())
}

/// Create the cache folder if it does not exist, and then only, with a `.gitignore`
/// that ignores it whole (the default folder is inside the app's source tree) and a
/// `CACHEDIR.TAG` for backup tools. A folder that exists is left as it is.
fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
    let _ = std::fs::write(dir.join(".gitignore"), "*\n");
    let _ = std::fs::write(
        dir.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n\
         # Compiled WebAssembly components kept by spin-host; safe to delete.\n",
    );
    Ok(())
}

/// Mark an entry as just used, for [`prune`]. Best effort: a read-only cache still
/// serves hits.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Keep `dir` within [`MAX_CACHE_BYTES`]: remove the least recently used entries
/// (never those in `keep`) until the rest fit, and temporary files older than an
/// hour. Returns how many files went. Errors are ignored (another host may be pruning
/// the same folder).
pub fn prune(dir: &Path, keep: &HashSet<PathBuf>) -> usize {
    prune_to(dir, keep, MAX_CACHE_BYTES)
}

fn prune_to(dir: &Path, keep: &HashSet<PathBuf>, max_bytes: u64) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    let mut cached = Vec::new();
    let mut total = 0u64;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(now);
        match path.extension().and_then(|e| e.to_str()) {
            Some("tmp")
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMP
                    && std::fs::remove_file(&path).is_ok() =>
            {
                removed += 1;
            }
            Some(EXTENSION) => {
                total += meta.len();
                if !keep.contains(&path) {
                    cached.push((modified, meta.len(), path));
                }
            }
            _ => {}
        }
    }
    cached.sort();
    for (_, len, path) in cached {
        if total <= max_bytes {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            tracing::debug!(file = %path.display(), "compile cache entry pruned");
            removed += 1;
        }
        total = total.saturating_sub(len);
    }
    removed
}

/// Give the memory the compiler freed back to the system.
///
/// Cranelift's working memory (about 100 MiB for this app's six components, spread
/// over the compiling threads' malloc arenas) is freed when compilation ends, but
/// glibc keeps freed memory in its arenas: without this, a process that compiled
/// holds it for its whole life (RSS idle 150+ MiB after compiling against about
/// 50 MiB after loading from the cache). `malloc_trim` returns every arena's free
/// pages. Only with glibc; elsewhere a no-op.
pub fn release_compiler_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes a byte count, touches only the
        // allocator's own free lists, and is thread-safe (it locks each arena).
        unsafe {
            malloc_trim(0);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::Linker;
    use wasmtime::{Config, Store};

    /// The binary of this component (made with the `wat` crate), whose `i32.const`
    /// operand is at [`ANSWER_AT`]:
    ///
    /// ```text
    /// (component
    ///   (core module $m (func (export "answer") (result i32) i32.const 7))
    ///   (core instance $i (instantiate $m))
    ///   (func (export "answer") (result u32) (canon lift (core func $i "answer"))))
    /// ```
    const ANSWER_COMPONENT: [u8; 142] = [
        0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x01, 0x32, 0x00, 0x61, 0x73, 0x6d, 0x01,
        0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07,
        0x0a, 0x01, 0x06, 0x61, 0x6e, 0x73, 0x77, 0x65, 0x72, 0x00, 0x00, 0x0a, 0x06, 0x01, 0x04,
        0x00, 0x41, 0x07, 0x0b, 0x00, 0x09, 0x04, 0x6e, 0x61, 0x6d, 0x65, 0x00, 0x02, 0x01, 0x6d,
        0x02, 0x04, 0x01, 0x00, 0x00, 0x00, 0x07, 0x05, 0x01, 0x40, 0x00, 0x00, 0x79, 0x06, 0x0c,
        0x01, 0x00, 0x00, 0x01, 0x00, 0x06, 0x61, 0x6e, 0x73, 0x77, 0x65, 0x72, 0x08, 0x06, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x0c, 0x01, 0x00, 0x06, 0x61, 0x6e, 0x73, 0x77, 0x65,
        0x72, 0x01, 0x00, 0x00, 0x00, 0x1f, 0x0e, 0x63, 0x6f, 0x6d, 0x70, 0x6f, 0x6e, 0x65, 0x6e,
        0x74, 0x2d, 0x6e, 0x61, 0x6d, 0x65, 0x01, 0x06, 0x00, 0x11, 0x01, 0x00, 0x01, 0x6d, 0x01,
        0x06, 0x00, 0x12, 0x01, 0x00, 0x01, 0x69,
    ];
    const ANSWER_AT: usize = 47;

    /// A component exporting `answer: func() -> u32` that returns `n` (under 64: one
    /// LEB128 byte).
    fn answer_component(n: u32) -> Vec<u8> {
        assert!(n < 64);
        assert_eq!(ANSWER_COMPONENT[ANSWER_AT - 1], 0x41, "i32.const");
        let mut bytes = ANSWER_COMPONENT.to_vec();
        bytes[ANSWER_AT] = n as u8;
        bytes
    }

    fn engine() -> Engine {
        Engine::new(&Config::new()).unwrap()
    }

    fn answer(engine: &Engine, component: &Component) -> u32 {
        let mut store = Store::new(engine, ());
        let instance = Linker::new(engine)
            .instantiate(&mut store, component)
            .unwrap();
        let func = instance
            .get_typed_func::<(), (u32,)>(&mut store, "answer")
            .unwrap();
        func.call(&mut store, ()).unwrap().0
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == EXTENSION))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_second_load_comes_from_the_cache() {
        let engine = engine();
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join(".spin/compiled");
        let wasm = answer_component(7);
        let first = load_or_compile(&engine, &wasm, Some(&dir)).unwrap();
        assert_eq!(first.outcome, CacheOutcome::Miss);
        let file = first.file.clone().unwrap();
        assert_eq!(file, entry_path(&engine, &wasm, &dir));
        assert_eq!(entries(&dir), vec![file.clone()]);
        // The folder it made is ignored by git whole.
        assert_eq!(
            std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
            "*\n"
        );
        assert!(dir.join("CACHEDIR.TAG").is_file());

        let second = load_or_compile(&engine, &wasm, Some(&dir)).unwrap();
        assert_eq!(second.outcome, CacheOutcome::Hit);
        assert_eq!(second.file.as_deref(), Some(file.as_path()));
        assert_eq!(answer(&engine, &second.component), 7);
        assert_eq!(entries(&dir).len(), 1);
    }

    #[test]
    fn without_a_folder_nothing_is_written() {
        let engine = engine();
        let loaded = load_or_compile(&engine, &answer_component(1), None).unwrap();
        assert_eq!(loaded.outcome, CacheOutcome::Off);
        assert!(loaded.file.is_none());
        assert_eq!(answer(&engine, &loaded.component), 1);
    }

    #[test]
    fn changed_bytes_are_compiled_again_and_the_new_code_runs() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let old = load_or_compile(&engine, &answer_component(1), Some(dir.path())).unwrap();
        assert_eq!(answer(&engine, &old.component), 1);
        // The component rebuilt: other bytes, another entry, the new behaviour.
        let new = load_or_compile(&engine, &answer_component(2), Some(dir.path())).unwrap();
        assert_eq!(new.outcome, CacheOutcome::Miss);
        assert_ne!(new.file, old.file);
        assert_eq!(answer(&engine, &new.component), 2);
        // And the old build still finds its own.
        let again = load_or_compile(&engine, &answer_component(1), Some(dir.path())).unwrap();
        assert_eq!(again.outcome, CacheOutcome::Hit);
        assert_eq!(answer(&engine, &again.component), 1);
        // A folder that existed before is not given a .gitignore.
        assert!(!dir.path().join(".gitignore").exists());
    }

    #[test]
    fn another_engine_configuration_uses_another_entry() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = answer_component(3);
        let a = engine();
        let mut config = Config::new();
        config.memory_guard_size(1 << 20);
        let b = Engine::new(&config).unwrap();
        assert_ne!(
            entry_path(&a, &wasm, dir.path()),
            entry_path(&b, &wasm, dir.path())
        );
        load_or_compile(&a, &wasm, Some(dir.path())).unwrap();
        let loaded = load_or_compile(&b, &wasm, Some(dir.path())).unwrap();
        assert_eq!(loaded.outcome, CacheOutcome::Miss);
        assert_eq!(answer(&b, &loaded.component), 3);
    }

    /// Each damaged file is refused, the component compiled again (and answers right),
    /// and the entry replaced by a good one.
    #[test]
    fn a_damaged_entry_is_refused_and_replaced() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let wasm = answer_component(42);
        let path = load_or_compile(&engine, &wasm, Some(dir.path()))
            .unwrap()
            .file
            .unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut damages: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("truncated header", good[..HEADER_LEN - 1].to_vec()),
            ("truncated payload", good[..good.len() - 100].to_vec()),
            ("garbage", vec![0xAB; good.len()]),
        ];
        let mut flipped = good.clone();
        let middle = HEADER_LEN + (good.len() - HEADER_LEN) / 2;
        flipped[middle] ^= 0x01;
        damages.push(("one bit flipped in the code", flipped));
        let mut wrong_key = good.clone();
        wrong_key[12] ^= 0xFF;
        damages.push(("another key", wrong_key));
        let mut wrong_format = good.clone();
        wrong_format[8] = 9;
        damages.push(("another format", wrong_format));
        // A checksum that matches, over a payload wasmtime does not accept: wasmtime's
        // own header check is the second line.
        let mut forged = good[..HEADER_LEN].to_vec();
        let payload = vec![0u8; 4096];
        forged[44..76].copy_from_slice(&Sha256::digest(&payload));
        forged[76..84].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        forged.extend_from_slice(&payload);
        damages.push(("not wasmtime's output", forged));

        for (what, bytes) in damages {
            std::fs::write(&path, &bytes).unwrap();
            let loaded = load_or_compile(&engine, &wasm, Some(dir.path())).unwrap();
            assert!(
                matches!(loaded.outcome, CacheOutcome::Rejected(_)),
                "{what}: {:?}",
                loaded.outcome
            );
            assert_eq!(answer(&engine, &loaded.component), 42, "{what}");
            let reloaded = load_or_compile(&engine, &wasm, Some(dir.path())).unwrap();
            assert_eq!(reloaded.outcome, CacheOutcome::Hit, "{what}: replaced");
        }
    }

    #[test]
    fn an_unwritable_folder_still_compiles() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        // A file where the folder should be: it cannot be created.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        let loaded = load_or_compile(&engine, &answer_component(5), Some(&blocked)).unwrap();
        assert_eq!(loaded.outcome, CacheOutcome::Miss);
        assert!(loaded.file.is_none());
        assert_eq!(answer(&engine, &loaded.component), 5);
    }

    #[test]
    fn a_compile_error_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_or_compile(&engine(), b"not wasm", Some(dir.path()))
            .err()
            .unwrap();
        assert!(!format!("{err}").is_empty());
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn pruning_drops_the_least_recently_used_first_and_keeps_what_is_in_use() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for n in 0..4 {
            let loaded = load_or_compile(&engine, &answer_component(n), Some(dir.path())).unwrap();
            let file = loaded.file.unwrap();
            // Oldest first: entry n last used n hours ago counted from the end.
            let used = SystemTime::now() - Duration::from_secs(3600 * (10 - n as u64));
            std::fs::File::options()
                .append(true)
                .open(&file)
                .unwrap()
                .set_modified(used)
                .unwrap();
            files.push(file);
        }
        let size = std::fs::metadata(&files[0]).unwrap().len();
        let stale = dir.path().join("0000.1.0.tmp");
        std::fs::write(&stale, b"partial").unwrap();
        std::fs::File::options()
            .append(true)
            .open(&stale)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * STALE_TEMP)
            .unwrap();
        let fresh = dir.path().join("0000.2.0.tmp");
        std::fs::write(&fresh, b"being written").unwrap();

        // Room for two entries; the oldest (0) is in use, so 1 and 2 go.
        let keep: HashSet<PathBuf> = [files[0].clone()].into();
        let removed = prune_to(dir.path(), &keep, size * 2 + size / 2);
        assert_eq!(removed, 3);
        assert_eq!(entries(dir.path()), {
            let mut left = vec![files[0].clone(), files[3].clone()];
            left.sort();
            left
        });
        assert!(!stale.exists());
        assert!(fresh.exists());
    }
}

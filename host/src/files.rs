//! A component's `files`, mapped read-only into its guest file system as Spin maps
//! them: a directory `"static"` appears at `/static`, `{ source = "assets",
//! destination = "/www" }` at `/www`. Each is a wasmtime-wasi preopen with read-only
//! permissions, so a write fails (PermissionDenied) and nothing outside the directory
//! is reachable, `..` included (cap-std resolves every path beneath the preopen).
//!
//! Globs, single files and `exclude_files` need Spin's copy of the matched files into
//! a staging directory; this host refuses them at start, by name, rather than mounting
//! something different from what Spin would.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::manifest::FileMount;

/// One read-only mount: a host directory and its absolute guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The host directory (resolved against the manifest directory).
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
}

/// Resolve component `id`'s `files` and `exclude_files` against `manifest_dir`.
/// Errors name the entry: a missing directory, a glob or a single file, or any
/// `exclude_files`.
pub fn mounts(
    id: &str,
    manifest_dir: &Path,
    files: &[FileMount],
    exclude_files: &[String],
) -> Result<Vec<Mount>> {
    if let Some(glob) = exclude_files.first() {
        bail!("component `{id}`: exclude_files (`{glob}`) is not supported by this host (only whole directories in `files`)");
    }
    let mut out = Vec::new();
    for f in files {
        let (source, guest) = match f {
            FileMount::Pattern(p) => {
                if p.contains(['*', '?', '[', '{']) {
                    bail!("component `{id}`: files glob `{p}` is not supported by this host (name a directory, or use {{ source, destination }})");
                }
                let rel = p.trim_start_matches("./").trim_end_matches('/');
                (p.clone(), format!("/{rel}"))
            }
            FileMount::Placement {
                source,
                destination,
            } => (source.clone(), destination.clone()),
        };
        let host = manifest_dir.join(&source);
        if !host.is_dir() {
            bail!(
                "component `{id}`: files entry `{source}` ({}) is not a directory; this host mounts only directories",
                host.display()
            );
        }
        out.push(Mount { host, guest });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_map_where_spin_puts_them_and_globs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("static")).unwrap();
        std::fs::create_dir_all(dir.path().join("assets")).unwrap();
        let m = mounts(
            "c",
            dir.path(),
            &[
                FileMount::Pattern("static".into()),
                FileMount::Placement {
                    source: "assets".into(),
                    destination: "/www".into(),
                },
            ],
            &[],
        )
        .unwrap();
        assert_eq!(m[0].guest, "/static");
        assert_eq!(m[0].host, dir.path().join("static"));
        assert_eq!(m[1].guest, "/www");
        for (files, exclude, needle) in [
            (
                vec![FileMount::Pattern("static/**/*".into())],
                vec![],
                "glob",
            ),
            (
                vec![FileMount::Pattern("missing".into())],
                vec![],
                "not a directory",
            ),
            (vec![], vec!["x".to_string()], "exclude_files"),
        ] {
            let e = mounts("c", dir.path(), &files, &exclude)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("component `c`"), "{e}");
        }
    }
}

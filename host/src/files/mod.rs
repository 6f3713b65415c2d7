//! A component's `files`, mapped read-only into its guest file system as Spin maps
//! them:
//!
//! - `"static"` (a directory) appears at `/static`, `{ source = "assets", destination =
//!   "/www" }` at `/www`;
//! - `"README.md"` (a file) at `/README.md`, `{ source = "a.txt", destination = "/b.txt" }`
//!   at `/b.txt`;
//! - a glob, `"static/**/*.html"` or `"*.txt"`, puts every matching *file* at its path
//!   relative to the manifest directory (`/static/x/index.html`, `/notes.txt`);
//! - `exclude_files` globs, matched against the path relative to the manifest directory
//!   (Spin's rule: `*` also crosses `/` there), leave files out of all of the above.
//!
//! A component whose `files` are only directories and that excludes nothing gets each
//! directory as its own preopen (no copy; edits on the host show at once, as with
//! Spin's `--direct-mounts`). Anything else is copied, as Spin copies it, into one
//! staging directory made at start and removed with the host, mounted at `/`. Either
//! way the preopens are read-only, so a write fails (PermissionDenied), and cap-std
//! resolves every guest path beneath its preopen, so nothing outside is reachable,
//! `..` included.

pub(crate) mod capability;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

use crate::manifest::FileMount;

/// One read-only mount: a host directory and its absolute guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The host directory (resolved against the manifest directory).
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
}

/// What a component's guest sees of the host's files.
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// The preopens, in order.
    pub mounts: Vec<Mount>,
    /// The staging directory the mounts point into, if files were copied: kept alive
    /// (and removed when the last holder goes) with the component.
    staging: Option<Arc<tempfile::TempDir>>,
}

impl Files {
    /// Whether the files were copied into a staging directory.
    pub fn is_staged(&self) -> bool {
        self.staging.is_some()
    }
}

/// Resolve component `id`'s `files` and `exclude_files` against `manifest_dir`.
/// Errors name the component and the entry: a source that does not exist, a glob that
/// does not parse, a pattern ending in `.` or `..`, a glob match outside the manifest
/// directory.
pub fn mounts(
    id: &str,
    manifest_dir: &Path,
    files: &[FileMount],
    exclude_files: &[String],
) -> Result<Files> {
    resolve(manifest_dir, files, exclude_files).map_err(|e| anyhow!("component `{id}`: {e:#}"))
}

fn resolve(manifest_dir: &Path, files: &[FileMount], exclude_files: &[String]) -> Result<Files> {
    if files.is_empty() {
        return Ok(Files::default());
    }
    if exclude_files.is_empty() {
        if let Some(mounts) = direct_mounts(manifest_dir, files) {
            return Ok(Files {
                mounts,
                staging: None,
            });
        }
    }
    let exclude = exclude_files
        .iter()
        .map(|p| {
            glob::Pattern::new(p).with_context(|| format!("exclude_files pattern `{p}` is invalid"))
        })
        .collect::<Result<Vec<_>>>()?;
    let staging = tempfile::Builder::new()
        .prefix("spin-host-files-")
        .tempdir()
        .context("cannot create a staging directory for files")?;
    let mut stager = Stager {
        app_root: absolute(manifest_dir)?,
        root: staging.path().to_path_buf(),
        exclude,
        copied: 0,
    };
    for f in files {
        match f {
            FileMount::Pattern(p) => stager.pattern(p)?,
            FileMount::Placement {
                source,
                destination,
            } => stager.placement(source, destination)?,
        }
    }
    tracing::debug!(
        staging = %staging.path().display(),
        files = stager.copied,
        "files copied for the guest"
    );
    Ok(Files {
        mounts: vec![Mount {
            host: staging.path().to_path_buf(),
            guest: "/".to_string(),
        }],
        staging: Some(Arc::new(staging)),
    })
}

/// The preopens when every entry names an existing directory; `None` if one does not
/// (a file, a glob, or something missing: the staging path reports it).
fn direct_mounts(manifest_dir: &Path, files: &[FileMount]) -> Option<Vec<Mount>> {
    files
        .iter()
        .map(|f| {
            let (source, guest) = match f {
                FileMount::Pattern(p) => {
                    if is_glob(p) || ends_in_dot(p) {
                        return None;
                    }
                    let rel = p.trim_start_matches("./").trim_end_matches('/');
                    (p.as_str(), format!("/{rel}"))
                }
                FileMount::Placement {
                    source,
                    destination,
                } => (source.as_str(), destination.clone()),
            };
            let host = manifest_dir.join(source);
            host.is_dir().then_some(Mount { host, guest })
        })
        .collect()
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

fn ends_in_dot(p: &str) -> bool {
    let p = p.trim_end_matches('/');
    p == "." || p == ".." || p.ends_with("/.") || p.ends_with("/..")
}

/// The manifest directory as an absolute path, so glob matches (absolute) can be made
/// relative to it.
fn absolute(dir: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// Copies what one component's `files` select into its staging directory.
struct Stager {
    app_root: PathBuf,
    root: PathBuf,
    exclude: Vec<glob::Pattern>,
    copied: usize,
}

impl Stager {
    /// A `files` string: a directory, a file, or a glob (in that order, as Spin tries).
    fn pattern(&mut self, pattern: &str) -> Result<()> {
        if ends_in_dot(pattern) {
            // A trailing `..` would place files outside the guest root; a trailing `.`
            // the whole app. Spin refuses both the same way.
            bail!("files pattern `{pattern}` ends in `.` or `..`; name the directory, use {{ source, destination }}, or a glob ending in `**/*`");
        }
        let path = self.app_root.join(pattern);
        let guest = relative_guest_path(pattern)?;
        if path.is_dir() {
            self.tree(&path, &self.root.join(&guest))
        } else if path.is_file() {
            self.file(&path, &self.root.join(&guest))
        } else if is_glob(pattern) {
            // Only the pattern is a glob, not the directory the app sits in.
            let full = format!(
                "{}/{}",
                glob::Pattern::escape(&self.app_root.to_string_lossy()),
                pattern.trim_start_matches("./")
            );
            let matches =
                glob::glob(&full).with_context(|| format!("files glob `{pattern}` is invalid"))?;
            let mut any = false;
            for m in matches {
                let src = m.with_context(|| format!("files glob `{pattern}`"))?;
                if !src.is_file() {
                    continue;
                }
                let rel = src.strip_prefix(&self.app_root).map_err(|_| {
                    anyhow!(
                        "files glob `{pattern}` matches {}, outside the application directory",
                        src.display()
                    )
                })?;
                any = true;
                let dest = self.root.join(rel);
                self.file(&src, &dest)?;
            }
            if !any {
                tracing::warn!(pattern, "files glob matches no file");
            }
            Ok(())
        } else {
            bail!(
                "files entry `{pattern}` ({}) does not exist and is not a glob",
                path.display()
            )
        }
    }

    /// `{ source, destination }`: a directory's tree, or one file, at `destination`.
    fn placement(&mut self, source: &str, destination: &str) -> Result<()> {
        let src = self.app_root.join(source);
        let guest = relative_guest_path(destination.trim_start_matches('/'))?;
        let dest = self.root.join(guest);
        if src.is_dir() {
            self.tree(&src, &dest)
        } else if src.is_file() {
            self.file(&src, &dest)
        } else {
            bail!("files source `{source}` ({}) does not exist", src.display())
        }
    }

    /// Every file beneath `dir`, at the same relative path beneath `dest`.
    fn tree(&mut self, dir: &Path, dest: &Path) -> Result<()> {
        std::fs::create_dir_all(dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
        // The directory's own name may hold glob metacharacters; only `**/*` is a glob.
        let escaped = format!("{}/**/*", glob::Pattern::escape(&dir.to_string_lossy()));
        for m in glob::glob(&escaped).with_context(|| format!("listing {}", dir.display()))? {
            let src = m.with_context(|| format!("listing {}", dir.display()))?;
            if !src.is_file() {
                continue;
            }
            let rel = src.strip_prefix(dir)?;
            self.file(&src, &dest.join(rel))?;
        }
        Ok(())
    }

    /// Copy one file unless `exclude_files` leaves it out.
    fn file(&mut self, src: &Path, dest: &Path) -> Result<()> {
        // Exclusions are written relative to the manifest directory; a source outside it
        // (a `{ source = "../x" }` placement) is matched as given.
        let rel = src.strip_prefix(&self.app_root).unwrap_or(src);
        if self.exclude.iter().any(|p| p.matches_path(rel)) {
            tracing::debug!(file = %rel.display(), "left out by exclude_files");
            return Ok(());
        }
        if !dest.starts_with(&self.root) {
            bail!("{} would be placed outside the guest root", dest.display());
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(src, dest)
            .with_context(|| format!("cannot copy {} for the guest", src.display()))?;
        self.copied += 1;
        Ok(())
    }
}

/// A guest path relative to the guest root, refusing anything that climbs out of it.
fn relative_guest_path(path: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("files path `{path}` climbs out of the guest root")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "static/index.html",
            "static/sub/page.html",
            "static/sub/style.css",
            "static/secret.html",
            "notes.txt",
            "todo.txt",
            "assets/logo.svg",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        dir
    }

    /// Every file under `root`, relative, sorted.
    fn listing(root: &Path) -> Vec<String> {
        let mut out: Vec<String> = glob::glob(&format!("{}/**/*", root.display()))
            .unwrap()
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        out.sort();
        out
    }

    fn pattern(p: &str) -> FileMount {
        FileMount::Pattern(p.into())
    }

    #[test]
    fn directories_alone_are_mounted_directly() {
        let dir = app();
        let m = mounts(
            "c",
            dir.path(),
            &[
                pattern("static"),
                FileMount::Placement {
                    source: "assets".into(),
                    destination: "/www".into(),
                },
            ],
            &[],
        )
        .unwrap();
        assert!(!m.is_staged());
        assert_eq!(m.mounts[0].guest, "/static");
        assert_eq!(m.mounts[0].host, dir.path().join("static"));
        assert_eq!(m.mounts[1].guest, "/www");
    }

    #[test]
    fn globs_keep_their_relative_paths_and_exclusions_apply() {
        let dir = app();
        let m = mounts(
            "c",
            dir.path(),
            &[pattern("static/**/*.html"), pattern("*.txt")],
            &["static/secret.html".to_string(), "todo*".to_string()],
        )
        .unwrap();
        assert!(m.is_staged());
        assert_eq!(m.mounts.len(), 1);
        assert_eq!(m.mounts[0].guest, "/");
        assert_eq!(
            listing(&m.mounts[0].host),
            ["notes.txt", "static/index.html", "static/sub/page.html"]
        );
    }

    #[test]
    fn exclusions_also_apply_to_directories_and_placements() {
        let dir = app();
        let m = mounts(
            "c",
            dir.path(),
            &[
                pattern("static"),
                FileMount::Placement {
                    source: "static/sub".into(),
                    destination: "/data".into(),
                },
                FileMount::Placement {
                    source: "notes.txt".into(),
                    destination: "/etc/notes".into(),
                },
                pattern("todo.txt"),
            ],
            // Spin's exclude globs let `*` cross `/`.
            &["static/*.css".to_string()],
        )
        .unwrap();
        assert_eq!(
            listing(&m.mounts[0].host),
            [
                "data/page.html",
                "etc/notes",
                "static/index.html",
                "static/secret.html",
                "static/sub/page.html",
                "todo.txt"
            ]
        );
        // The staging directory goes with the last holder.
        let staged = m.mounts[0].host.clone();
        drop(m);
        assert!(!staged.exists());
    }

    #[test]
    fn bad_entries_are_named() {
        let dir = app();
        for (files, exclude, needle) in [
            (vec![pattern("missing")], vec![], "does not exist"),
            (vec![pattern("static/..")], vec![], "ends in `.` or `..`"),
            (vec![pattern(".")], vec![], "ends in `.` or `..`"),
            (vec![pattern("static/[")], vec![], "glob `static/[`"),
            (
                vec![pattern("static")],
                vec!["[".to_string()],
                "exclude_files pattern `[`",
            ),
            (
                vec![FileMount::Placement {
                    source: "nope".into(),
                    destination: "/x".into(),
                }],
                vec![],
                "source `nope`",
            ),
            (
                vec![FileMount::Placement {
                    source: "notes.txt".into(),
                    destination: "/../x".into(),
                }],
                vec![],
                "climbs out",
            ),
        ] {
            let e = mounts("c", dir.path(), &files, &exclude)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("component `c`"), "{e}");
        }
    }
}

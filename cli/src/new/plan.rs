//! What `new` does with each file of a project: the plan (create, skip or overwrite,
//! decided before anything is written), its summary, and the writes (each to a temporary
//! file renamed into place).

use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::render::{component_files, render_project, shell_quote};
use super::{name_from_dir, validate_name, NewArgs, Project, DEFAULT_COMPONENTS_DIR};

/// One file of a generated project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Relative to the project folder, `/`-separated.
    pub path: String,
    pub contents: Vec<u8>,
}

/// What `new` does with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The file does not exist: it is written.
    Create,
    /// The file exists and `--force` is off: it is left untouched.
    Skip,
    /// The file exists and `--force` is on: it is replaced.
    Overwrite,
}

impl Action {
    fn label(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Skip => "skip",
            Action::Overwrite => "overwrite",
        }
    }
}

/// One file of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub file: GeneratedFile,
    pub action: Action,
}

/// Everything `new` will do, fully checked: applying it writes the files marked
/// [`Action::Create`] or [`Action::Overwrite`] and nothing else.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The project folder, as given.
    pub dir: PathBuf,
    pub project: Project,
    /// Every file of the project, in a fixed order (configuration, docs, migrations,
    /// components).
    pub files: Vec<PlannedFile>,
}

/// Check everything and decide, per file, create / skip / overwrite. Reads the
/// filesystem, writes nothing. Fails, with one line, on an invalid name (explicit or
/// taken from DIR), port or database path, when DIR exists but is not a folder, when a
/// project file (or a folder on its way) exists as something else, and when a component
/// is missing.
pub fn plan(args: &NewArgs) -> Result<Plan> {
    let name = match &args.name {
        Some(name) => {
            validate_name(name)?;
            name.clone()
        }
        None => {
            let name = name_from_dir(&args.dir)?;
            if let Err(err) = validate_name(&name) {
                bail!(
                    "{err} (the name is taken from the folder {}; pass --name NAME)",
                    args.dir.display()
                );
            }
            name
        }
    };
    let project = Project {
        name,
        http_port: args.http_port,
        websocket_port: args.websocket_port,
        web_ui_port: args.web_ui_port,
        database_path: args.database_path.clone(),
    };
    project.validate()?;
    if args.dir.exists() && !args.dir.is_dir() {
        bail!("{} exists and is not a folder", args.dir.display());
    }
    let components_dir = args
        .components_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_COMPONENTS_DIR));
    let mut files = render_project(&project)?;
    files.extend(component_files(&components_dir)?);

    let mut planned = Vec::with_capacity(files.len());
    for file in files {
        let target = args.dir.join(&file.path);
        // A folder on the way that exists as a file would fail the write later.
        let mut folder = PathBuf::new();
        let segments: Vec<&str> = file.path.split('/').collect();
        for segment in &segments[..segments.len() - 1] {
            folder.push(segment);
            let path = args.dir.join(&folder);
            if path.exists() && !path.is_dir() {
                bail!("{} exists and is not a folder", path.display());
            }
        }
        let action = match std::fs::symlink_metadata(&target) {
            Err(e) if e.kind() == ErrorKind::NotFound => Action::Create,
            Err(e) => return Err(e).with_context(|| format!("checking {}", target.display())),
            Ok(_) if target.is_dir() => bail!("{} exists and is a folder", target.display()),
            Ok(_) if args.force => Action::Overwrite,
            Ok(_) => Action::Skip,
        };
        planned.push(PlannedFile { file, action });
    }
    Ok(Plan {
        dir: args.dir.clone(),
        project,
        files: planned,
    })
}

impl Plan {
    /// The files marked `action`, by relative path.
    pub fn paths(&self, action: Action) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| f.action == action)
            .map(|f| f.file.path.as_str())
            .collect()
    }

    /// Write every file marked create or overwrite, creating folders as needed. Each file
    /// goes to a temporary file in its own folder and is renamed into place: a failure
    /// leaves no half-written file (files written before it stay). A file marked create
    /// that appeared since planning is not clobbered (the write fails instead). Skipped
    /// files are not touched.
    pub fn apply(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let mut written = 0;
        for planned in &self.files {
            if planned.action == Action::Skip {
                continue;
            }
            let target = self.dir.join(&planned.file.path);
            write_atomically(
                &target,
                &planned.file.contents,
                planned.action == Action::Overwrite,
            )
            .with_context(|| {
                format!(
                    "writing {} ({written} files written before it)",
                    target.display()
                )
            })?;
            written += 1;
        }
        Ok(())
    }

    /// What was done (or, with `dry_run`, what would be done): one line per file with its
    /// action, the skipped files with how to overwrite them, and the next steps.
    pub fn summary(&self, dry_run: bool) -> String {
        let mut out = String::new();
        let dir = self.dir.display();
        let name = &self.project.name;
        if dry_run {
            let _ = writeln!(
                out,
                "Dry run: would write project {name:?} into {dir} (nothing is written):"
            );
        } else {
            let _ = writeln!(out, "Project {name:?} in {dir}:");
        }
        for planned in &self.files {
            let _ = writeln!(
                out,
                "  {:<9}  {}",
                planned.action.label(),
                planned.file.path
            );
        }
        let skipped = self.paths(Action::Skip);
        if !skipped.is_empty() {
            let _ = writeln!(
                out,
                "{} {} existing file{} (pass --force to overwrite): {}",
                if dry_run { "Would skip" } else { "Skipped" },
                skipped.len(),
                if skipped.len() == 1 { "" } else { "s" },
                skipped.join(", ")
            );
        }
        let cd = shell_quote(&self.dir.to_string_lossy());
        let _ = writeln!(out, "Next steps:");
        let _ = writeln!(out, "  cd {cd} && orchestrator up");
        let _ = writeln!(
            out,
            "  then: http://127.0.0.1:{}/health and ws://127.0.0.1:{}/ws/agent-status (see README.md)",
            self.project.http_port, self.project.websocket_port
        );
        out
    }
}

fn write_atomically(target: &Path, contents: &[u8], replace: bool) -> Result<()> {
    let folder = target
        .parent()
        .ok_or_else(|| anyhow!("{} has no folder", target.display()))?;
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".orchestrator-new-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // An ordinary file (umask applies), not the temporary file's owner-only mode.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut temp = builder.tempfile_in(folder)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    if replace {
        temp.persist(target).map_err(|e| e.error)?;
    } else {
        temp.persist_noclobber(target).map_err(|e| e.error)?;
    }
    Ok(())
}

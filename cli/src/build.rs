//! `orchestrator build`: what `spin build` does, for hosts without the `spin` CLI.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use spin_host::manifest::Manifest;

use crate::args::ManifestArgs;

#[derive(clap::Args, Debug, Clone)]
pub struct BuildArgs {
    #[command(flatten)]
    pub app: ManifestArgs,
}

pub fn run(args: &BuildArgs) -> Result<()> {
    build(&args.app.manifest)
}

/// Make sure the wasm target is installed (a no-op when it is, or without rustup).
pub fn ensure_wasm_target() -> Result<()> {
    match Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => bail!("`rustup target add wasm32-wasip2` failed ({status})"),
        // No rustup: the toolchain may still have the target; the build will say if not.
        Err(_) => Ok(()),
    }
}

/// Run each component's build commands in its workdir, in manifest order, showing
/// progress. Components that share the same commands and workdir are built once.
pub fn build(manifest_path: &Path) -> Result<()> {
    let manifest = Manifest::from_file(manifest_path)?;
    let builds: Vec<_> = manifest
        .components
        .values()
        .filter_map(|c| c.build.as_ref().map(|b| (c.id.clone(), b.clone())))
        .collect();
    if builds.is_empty() {
        println!("Nothing to build: no component has a [component.X.build] section.");
        return Ok(());
    }
    ensure_wasm_target()?;
    let total = builds.len();
    for (index, (id, build)) in builds.iter().enumerate() {
        let workdir = build.resolved_workdir(&manifest.dir);
        for command in &build.commands {
            println!(
                "[{}/{total}] Building component {id}: {command} (in {})",
                index + 1,
                workdir.display()
            );
            let started = Instant::now();
            let status = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&workdir)
                .status()
                .with_context(|| format!("cannot run the build command of {id}"))?;
            if !status.success() {
                bail!("building component {id} failed: `{command}` exited with {status}");
            }
            println!(
                "[{}/{total}] {id} built in {:.1} s",
                index + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!("Finished building all Spin components");
    Ok(())
}

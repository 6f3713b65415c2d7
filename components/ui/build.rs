//! Embeds every file of `assets/` in the component: its bytes, a gzip copy (compressed
//! once here, never per request) and an ETag (CRC-32 and length of the bytes).
//! `index.html` answers `/`; every other file answers `/ui/<name>`. No Node.js, no
//! bundler: the files are served as they are written.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

fn main() {
    // Absolute, so that a checkout moved with its target folder re-runs this script
    // instead of including files from the old place.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("assets");
    println!("cargo:rerun-if-changed={}", dir.display());
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("assets/")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .collect();
    names.sort();
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for name in names {
        let path = dir.join(&name);
        println!("cargo:rerun-if-changed={}", path.display());
        let body = std::fs::read(&path).expect("read asset");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&body).expect("gzip");
        let gzip = encoder.finish().expect("gzip");
        let gzip_file = format!("{out_dir}/{name}.gz");
        let gzip_expr = if gzip.len() < body.len() {
            std::fs::write(&gzip_file, &gzip).expect("write gzip");
            format!("Some(include_bytes!({gzip_file:?}))")
        } else {
            "None".to_owned()
        };
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        let route = if name == "index.html" {
            "/".to_owned()
        } else {
            format!("/ui/{name}")
        };
        let source = std::fs::canonicalize(&path).expect("path");
        writeln!(
            code,
            "    Asset {{ path: {route:?}, content_type: {:?}, body: include_bytes!({source:?}), \
             gzip: {gzip_expr}, etag: \"\\\"{:08x}-{:x}\\\"\" }},",
            content_type(&name),
            crc.sum(),
            body.len()
        )
        .expect("write");
    }
    code.push_str("];\n");
    std::fs::write(format!("{out_dir}/assets.rs"), code).expect("write assets.rs");
}

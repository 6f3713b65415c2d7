//! `bench-http`: the real host (wasm components) against a native server on the same core
//! functions, on loopback, with a built-in load generator. See `bench/README.md`.

#[path = "../http/mod.rs"]
mod bench;

fn main() -> std::process::ExitCode {
    bench::main()
}

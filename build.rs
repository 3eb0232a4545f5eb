//! One link option: the `cod` executable of an unoptimized-profile build (`cargo build`,
//! `cargo test`) is linked without its symbol table. Every package holds the executable that
//! packed it, and the tests pack, copy, hash and seed it hundreds of times: its symbols were a
//! third of its 55 MB (docs/performance.md). Panics still say where (file and line); a
//! backtrace of such an executable names no functions. Release builds are left as they are,
//! and so are the test executables.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("debug") {
        println!("cargo:rustc-link-arg-bin=cod=-Wl,--strip-all");
    }
}

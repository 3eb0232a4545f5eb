//! The `cod` executable: a thin shell over [`cod::run`].

fn main() -> std::process::ExitCode {
    cod::run()
}

//! Shared by the benchmarks: this machine's `openssl speed` figures, for ratios.

/// `openssl speed` RSA verifications per second at `bits`, on `cores` processes.
pub fn openssl_verify_rate(bits: usize, cores: usize) -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            "3",
            "-multi",
            &cores.to_string(),
            &format!("rsa{bits}"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Last line: "rsa 3072 bits 0.001234s 0.000056s  810.4  17857.1" (sign/s, verify/s).
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(&format!("{bits} bits")))?;
    line.split_whitespace().last()?.parse().ok()
}

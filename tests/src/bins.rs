//! Where the binaries under test are: next to the test executable's `deps/`.

use std::path::PathBuf;

/// `target/<profile>/`, found from the running test binary
/// (`target/<profile>/deps/<test>-<hash>`), or `EGRESS_BIN_DIR` when set.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EGRESS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut dir = exe
        .parent()
        .expect("the test binary is in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The `egress-collector` binary.
pub fn collector() -> PathBuf {
    binary("egress-collector")
}

/// The `egress-loadgen` binary.
pub fn loadgen() -> PathBuf {
    binary("egress-loadgen")
}

/// `egress-verify FILE <extra…>` (e.g. `--pubkey`, `--keyring`).
pub fn egress_verify(file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(bin_dir().join("egress-verify"))
        .arg(file)
        .args(extra)
        .output()
        .expect("spawn egress-verify")
}

/// `python3 signer/python/verify_export.py FILE <extra…>`.
pub fn verify_export_py(file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../signer/python/verify_export.py");
    std::process::Command::new("python3")
        .arg(script)
        .arg(file)
        .args(extra)
        .output()
        .expect("spawn python3")
}

use std::error::Error;

/// Doc comments and other attributes stay on the function.
#[pid_runtime::pidfile(name = "ui-main-result", force_tmpdir = true, mode = 0o600)]
#[allow(clippy::unnecessary_wraps)]
fn main() -> Result<(), Box<dyn Error>> {
    let path = pid_runtime::PidFile::new("ui-main-result").force_tmpdir(true).path().unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path)?.permissions());
    assert_eq!(mode & 0o7777, 0o600);
    Ok(())
}

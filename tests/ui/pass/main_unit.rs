#[pid_runtime::pidfile(name = "ui-main-unit", force_tmpdir = true)]
fn main() {
    let path = pid_runtime::PidFile::new("ui-main-unit").force_tmpdir(true).path().unwrap();
    let content = std::fs::read_to_string(path).unwrap();
    assert_eq!(content, format!("{}\n", std::process::id()));
}

#[pid_runtime::pidfile(name = "ui-main-unit", force_tmpdir = true)]
fn main() {
    let path = std::env::temp_dir().join("ui-main-unit.pid");
    let content = std::fs::read_to_string(path).unwrap();
    assert_eq!(content, format!("{}\n", std::process::id()));
}

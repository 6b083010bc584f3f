#[tokio::main(flavor = "current_thread")]
#[pid_runtime::pidfile(name = "ui-async-outer", force_tmpdir = true)]
async fn main() {
    tokio::task::yield_now().await;
    assert!(pid_runtime::PidFile::new("ui-async-outer").force_tmpdir(true).path().unwrap().exists());
}

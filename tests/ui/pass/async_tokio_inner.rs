#[pid_runtime::pidfile(name = "ui-async-inner", force_tmpdir = true)]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    tokio::task::yield_now().await;
    assert!(pid_runtime::PidFile::new("ui-async-inner").force_tmpdir(true).path().unwrap().exists());
}

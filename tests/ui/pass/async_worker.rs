#[pid_runtime::pidfile(name = "ui-async-worker", force_tmpdir = true)]
async fn fetch(count: u32) -> std::io::Result<u32> {
    tokio::task::yield_now().await;
    assert!(pid_runtime::PidFile::new("ui-async-worker").force_tmpdir(true).path().unwrap().exists());
    Ok(count + 1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(fetch(1).await.unwrap(), 2);
    assert!(!pid_runtime::PidFile::new("ui-async-worker").force_tmpdir(true).path().unwrap().exists());
}

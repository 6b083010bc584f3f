#[pid_runtime::pidfile(name = "ui-async-worker", force_tmpdir = true)]
async fn fetch(count: u32) -> std::io::Result<u32> {
    tokio::task::yield_now().await;
    assert!(std::env::temp_dir().join("ui-async-worker.pid").exists());
    Ok(count + 1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(fetch(1).await.unwrap(), 2);
    assert!(!std::env::temp_dir().join("ui-async-worker.pid").exists());
}

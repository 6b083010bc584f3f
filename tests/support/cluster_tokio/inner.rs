//! `#[tokio::main]` inside `#[pidfile(cluster = ..)]` on an `async fn
//! main`: prints `holding TOKEN`, waits for a line on its standard input,
//! and returns. The lock's name and servers come from `PIDFILE_TEST_NAME`
//! and `PIDFILE_ETCD_ENDPOINTS`.

use pid_runtime::cluster::Etcd;
use tokio::io::AsyncBufReadExt;

#[pid_runtime::pidfile(
    name = std::env::var("PIDFILE_TEST_NAME").expect("PIDFILE_TEST_NAME"),
    cluster = Etcd::from_env(),
    local = false,
    ttl = "2s",
    bind = lease
)]
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    println!("holding {}", lease.fencing_token());
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    Ok(())
}

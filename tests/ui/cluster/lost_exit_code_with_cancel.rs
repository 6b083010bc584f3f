#[pid_runtime::pidfile(cluster = pid_runtime::cluster::Etcd::from_env(), on_lost = "cancel", lost_exit_code = 70)]
fn main() -> std::io::Result<()> {
    Ok(())
}

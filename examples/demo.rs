//! A tour in real processes: a second copy is refused with the holder's pid,
//! starts once the first is gone, and a copy killed with SIGKILL leaves a
//! stale file that the next start takes over.
//!
//! ```text
//! cargo run --example demo
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};

use pid_runtime::{PidFile, Status};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("copy"), Some(dir)) => copy(Path::new(&dir)),
        _ => tour(),
    }
}

/// One copy of the "daemon".
fn copy(dir: &Path) -> ExitCode {
    match serve(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            println!("refused: {error}");
            ExitCode::from(1)
        }
    }
}

/// Runs only while this process holds `demo.pid`: says so, and holds it
/// until standard input closes.
#[pid_runtime::pidfile(name = "demo", dir = dir)]
fn serve(dir: &Path) -> std::io::Result<()> {
    println!(
        "holding {} as pid {}",
        dir.join("demo.pid").display(),
        std::process::id()
    );
    std::io::stdout().flush()?;
    std::io::stdin().read_line(&mut String::new())?;
    Ok(())
}

fn tour() -> ExitCode {
    let dir = std::env::temp_dir().join(format!("pid-demo-{}", std::process::id()));
    let pidfile = PidFile::new("demo").dir(&dir);

    let (mut first, said) = start_copy(&dir);
    println!("first copy:  {said}");
    let (_, said) = start_copy(&dir);
    println!("second copy: {said}");
    println!("check():     {:?}", pidfile.check().expect("check"));

    drop(first.stdin.take());
    first.wait().expect("wait for the first copy");
    println!(
        "first copy exits; the file is gone: {}",
        !dir.join("demo.pid").exists()
    );
    let (mut third, said) = start_copy(&dir);
    println!("third copy:  {said}");

    third.kill().expect("SIGKILL the third copy");
    third.wait().expect("reap the third copy");
    let status = pidfile.check().expect("check");
    println!("third copy killed with SIGKILL; check(): {status:?}");
    assert!(matches!(status, Status::Stale { .. }));
    let guard = pidfile.acquire().expect("take over the stale file");
    println!(
        "this process took the stale file over as pid {}",
        guard.pid()
    );
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}

/// Starts a copy and returns it with the first line it printed.
fn start_copy(dir: &Path) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("copy")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a copy");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read what the copy said");
    (child, line.trim_end().to_string())
}

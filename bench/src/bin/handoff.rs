//! Handoff latency: how long after a holder releases a pidfile a waiting
//! process holds it, for three ways of waiting, side by side in one run:
//!
//! - `acquire_timeout`: pid-runtime's wait (inotify on Linux);
//! - `polling`: acquire in a loop with pauses of 1 ms doubling to 50 ms, as
//!   `pidfile run --wait` did before `acquire_timeout`;
//! - `flock-w`: a blocking `flock(LOCK_EX)` on the file, which the kernel
//!   wakes at once, as `flock -w` does (a floor; it locks, nothing more).
//!
//! ```text
//! handoff [--handoffs 1000] [--dir DIR]
//! ```
//!
//! A holder process takes the file, then on each round the waiter (this
//! process) starts waiting, the holder releases after a pause of 2 to 12 ms
//! (so that the waiter is asleep in its wait, as in real life) and records
//! the instant just before its release; the waiter records the instant it
//! holds. Both are CLOCK_MONOTONIC. It prints the median and the 99th
//! percentile of the difference for each way, in microseconds.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pid_runtime::PidFile;

const WAYS: [&str; 3] = ["acquire_timeout", "polling", "flock-w"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--holder") {
        return holder(&args[1], Path::new(&args[2]));
    }
    let mut handoffs = 1000;
    let mut dir: Option<PathBuf> = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--handoffs" => handoffs = value.parse().expect("--handoffs N"),
            "--dir" => dir = Some(PathBuf::from(value)),
            _ => panic!("unknown option {flag}"),
        }
    }
    let made = dir.is_none();
    let dir = dir.unwrap_or_else(|| {
        let template = Path::new("/dev/shm").join("pid-handoff-XXXXXX");
        nix::unistd::mkdtemp(&template)
            .or_else(|_| nix::unistd::mkdtemp(&std::env::temp_dir().join("pid-handoff-XXXXXX")))
            .expect("make a directory")
    });
    println!("Handoffs: {handoffs} per way, in {}.", dir.display());
    println!();
    println!("| way of waiting | median µs | p99 µs |");
    println!("|---|---:|---:|");
    for way in WAYS {
        let mut latencies = run(way, &dir.join(format!("{way}.pid")), handoffs);
        latencies.sort_unstable();
        let at = |fraction: f64| latencies[((latencies.len() - 1) as f64 * fraction) as usize];
        println!(
            "| {way} | {:.1} | {:.1} |",
            at(0.5) as f64 / 1e3,
            at(0.99) as f64 / 1e3
        );
    }
    if made {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// One way: `handoffs` rounds against a holder process; latencies in ns.
fn run(way: &str, path: &Path, handoffs: usize) -> Vec<u64> {
    let mut holder = Command::new(std::env::current_exe().expect("this program"))
        .args(["--holder", way])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the holder");
    let mut to_holder = holder.stdin.take().expect("holder stdin");
    let mut from_holder = BufReader::new(holder.stdout.take().expect("holder stdout")).lines();
    let mut line = || {
        from_holder
            .next()
            .expect("the holder answers")
            .expect("read")
    };
    let mut latencies = Vec::with_capacity(handoffs);
    for round in 0..handoffs {
        writeln!(to_holder, "take").expect("tell the holder");
        assert_eq!(line(), "held");
        // The holder waits 2 to 12 ms before it releases: the waiter is
        // asleep in its wait by then.
        writeln!(to_holder, "release {}", 2_000 + (round * 7_919) % 10_000).expect("tell");
        let taken = wait_and_take(way, path);
        let held_at = now_ns();
        let released_at: u64 = line().parse().expect("the release instant");
        latencies.push(held_at.saturating_sub(released_at));
        drop(taken);
    }
    drop(to_holder);
    let _ = holder.wait();
    latencies
}

/// What the waiter holds: dropped to release.
enum Taken {
    Guard(#[allow(dead_code)] pid_runtime::PidFileGuard),
    Locked(#[allow(dead_code)] std::fs::File),
}

fn wait_and_take(way: &str, path: &Path) -> Taken {
    let pidfile = pidfile_at(path);
    match way {
        "acquire_timeout" => Taken::Guard(
            pidfile
                .acquire_timeout(Duration::from_secs(60))
                .expect("taken at the release"),
        ),
        "polling" => {
            let mut pause = Duration::from_millis(1);
            loop {
                match pidfile.acquire() {
                    Ok(guard) => return Taken::Guard(guard),
                    Err(error) if error.is_already_running() => {}
                    Err(error) => panic!("{error}"),
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
        _ => {
            let file = std::fs::File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .expect("open");
            // SAFETY: flock on a descriptor that stays open while it is held.
            let locked = unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_EX) };
            assert_eq!(locked, 0, "flock");
            Taken::Locked(file)
        }
    }
}

fn pidfile_at(path: &Path) -> PidFile {
    PidFile::new(path.file_name().expect("a file name"))
        .dir(path.parent().expect("a directory"))
        .enforce_pid_suffix(false)
}

/// The holder's side: `take` → takes the file (waiting, the same way) and
/// says `held`; `release US` → waits US µs, then says the instant just
/// before it releases.
fn holder(way: &str, path: &Path) {
    let mut out = std::io::stdout().lock();
    let mut taken = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("a command");
        if line == "take" {
            taken = Some(wait_and_take(way, path));
            writeln!(out, "held")
                .and_then(|()| out.flush())
                .expect("answer");
        } else if let Some(pause) = line.strip_prefix("release ") {
            std::thread::sleep(Duration::from_micros(pause.parse().expect("µs")));
            let at = now_ns();
            drop(taken.take());
            writeln!(out, "{at}")
                .and_then(|()| out.flush())
                .expect("answer");
        }
    }
}

fn now_ns() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("the clock");
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

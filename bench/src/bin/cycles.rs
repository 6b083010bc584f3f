//! `cycles PATH COUNT [--stale]`: acquires and releases the pidfile at PATH
//! COUNT times and prints the mean time of one cycle in nanoseconds. COUNT 0
//! does nothing, so that `strace -c` of a run with 0 cycles counts the
//! start-up alone.
//!
//! With `--stale`, a stale file naming a longer, dead pid is put in place
//! before each cycle (outside the timed part), so each cycle judges the old
//! content, takes it over and cuts it short.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pid_runtime::PidFile;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(Ok(count))) = (args.get(1), args.get(2).map(|c| c.parse::<u32>())) else {
        eprintln!("usage: cycles PATH COUNT");
        return ExitCode::from(2);
    };
    let path = Path::new(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        eprintln!("cycles: {} is not a file path", path.display());
        return ExitCode::from(2);
    };
    let pidfile = PidFile::new(name).dir(dir).enforce_pid_suffix(false);
    let stale = args.get(3).is_some_and(|flag| flag == "--stale");
    let mut timed = Duration::ZERO;
    for _ in 0..count {
        if stale {
            // Above any pid_max, so no process has it; longer than ours.
            if let Err(error) = std::fs::write(path, "2147483640\n") {
                eprintln!("cycles: {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        }
        let started = Instant::now();
        let cycle = pidfile.acquire();
        match cycle {
            Ok(guard) => {
                if let Err(error) = guard.release() {
                    eprintln!("cycles: {error}");
                    return ExitCode::FAILURE;
                }
                timed += started.elapsed();
            }
            Err(error) => {
                eprintln!("cycles: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let nanos = timed.as_nanos() / u128::from(count.max(1));
    println!("{nanos}");
    ExitCode::SUCCESS
}

//! Many processes contend for one pidfile; each holder records its entry and
//! exit in a shared append-only log, which is then read back to count
//! overlaps: two processes holding the file at once.
//!
//! ```text
//! pidfile-stress [--procs 8] [--cycles 500] [--hold-us 0] [--dir DIR]
//! ```
//!
//! It prints one summary line and exits 1 if any holders overlapped or any
//! attempt failed with anything but "already running".

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use pid_runtime::PidFile;

const NAME: &str = "stress";

struct Options {
    procs: usize,
    cycles: usize,
    hold: Duration,
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, dir, cycles, hold_us] = args.as_slice() {
        if mode == "--worker" {
            let hold = Duration::from_micros(hold_us.parse().expect("hold time"));
            return worker(Path::new(dir), cycles.parse().expect("cycles"), hold);
        }
    }
    let options = parse_options(&args);
    let scratch;
    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        None => {
            let template = std::env::temp_dir().join("pid-stress-XXXXXX");
            scratch = nix::unistd::mkdtemp(&template).expect("make a directory");
            scratch.clone()
        }
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..options.procs)
        .map(|_| {
            Command::new(std::env::current_exe().expect("own path"))
                .arg("--worker")
                .arg(&dir)
                .arg(options.cycles.to_string())
                .arg(options.hold.as_micros().to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("start a worker")
        })
        .collect();
    let mut refused = 0_u64;
    let mut errors = 0_u64;
    for worker in workers {
        let output = worker.wait_with_output().expect("wait for a worker");
        let report = String::from_utf8_lossy(&output.stdout);
        refused += field(&report, "refused");
        errors += field(&report, "errors");
        if !output.status.success() {
            errors += 1;
            eprintln!("worker failed: {}", output.status);
        }
    }
    let log = std::fs::read_to_string(dir.join("log")).expect("read the log");
    let (cycles, overlaps) = count_overlaps(&log);
    println!(
        "procs={} cycles={cycles} overlaps={overlaps} refused={refused} errors={errors} seconds={:.2}",
        options.procs,
        started.elapsed().as_secs_f64()
    );
    if options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let expected = (options.procs * options.cycles) as u64;
    if overlaps == 0 && errors == 0 && cycles == expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn parse_options(args: &[String]) -> Options {
    let mut options = Options {
        procs: 8,
        cycles: 500,
        hold: Duration::ZERO,
        dir: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--procs" => options.procs = value.parse().expect("--procs N"),
            "--cycles" => options.cycles = value.parse().expect("--cycles N"),
            "--hold-us" => {
                options.hold = Duration::from_micros(value.parse().expect("--hold-us N"))
            }
            "--dir" => options.dir = Some(PathBuf::from(value)),
            _ => panic!("unknown option {flag}"),
        }
    }
    options
}

fn worker(dir: &Path, cycles: usize, hold: Duration) -> ExitCode {
    let pidfile = PidFile::new(NAME).dir(dir);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(dir.join("log"))
        .expect("open the log");
    let me = std::process::id();
    let (mut refused, mut errors) = (0_u64, 0_u64);
    for _ in 0..cycles {
        let guard = loop {
            match pidfile.acquire() {
                Ok(guard) => break guard,
                Err(pid_runtime::Error::AlreadyLocked { .. }) => {
                    refused += 1;
                }
                Err(error) => {
                    errors += 1;
                    report_error(errors, &error);
                }
            }
            std::thread::yield_now();
        };
        // One write each: O_APPEND keeps the lines whole and in order.
        log.write_all(format!("+{me}\n").as_bytes()).expect("log");
        if !hold.is_zero() {
            std::thread::sleep(hold);
        }
        log.write_all(format!("-{me}\n").as_bytes()).expect("log");
        if let Err(error) = guard.release() {
            errors += 1;
            report_error(errors, &error);
        }
    }
    println!("refused={refused} errors={errors}");
    ExitCode::SUCCESS
}

/// Prints the first few errors of a worker; the count tells the rest.
fn report_error(count: u64, error: &pid_runtime::Error) {
    if count <= 5 {
        eprintln!("{error}");
    }
}

/// Completed cycles, and how many times a holder entered while another held.
fn count_overlaps(log: &str) -> (u64, u64) {
    let mut holders: Vec<&str> = Vec::new();
    let (mut cycles, mut overlaps) = (0, 0);
    for line in log.lines() {
        if let Some(pid) = line.strip_prefix('+') {
            if !holders.is_empty() {
                overlaps += 1;
            }
            holders.push(pid);
        } else if let Some(pid) = line.strip_prefix('-') {
            if let Some(at) = holders.iter().position(|holder| *holder == pid) {
                holders.remove(at);
                cycles += 1;
            }
        }
    }
    (cycles, overlaps)
}

fn field(report: &str, name: &str) -> u64 {
    report
        .split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

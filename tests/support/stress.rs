//! Many processes contend for one pidfile; each holder records its entry and
//! exit in a shared append-only log, which is then read back to count
//! overlaps: two processes holding the file at once.
//!
//! ```text
//! pidfile-stress [--procs 8] [--cycles 500] [--hold-us 0]
//!                [--mode loop|fresh|kill] [--contender rust|python|python-fork|naive]
//!                [--check] [--dir DIR]
//! ```
//!
//! - `loop`: each process acquires and releases `cycles` times in a tight loop.
//! - `fresh`: each attempt is a new process that exits right after releasing,
//!   so the last holder's pid is dead an instant after it lets go.
//! - `kill`: as `fresh`, and each attempt is sent SIGKILL after a random
//!   delay, at any point: before, during or after taking the file.
//! - `--contender python` makes each attempt a Python `pid` 3.0.4 program
//!   (`tests/peers/stress_attempt.py`, or `stress_loop.py` for `loop`; set
//!   `PIDFILE_PYTHON`), for comparison.
//! - `--contender python-fork` (fresh only): one long-lived Python process
//!   per worker forks a child for each attempt (`tests/peers/stress_fork.py`),
//!   as a pre-forking server or a cron wrapper does. A new interpreter per
//!   attempt takes about 25 ms, too slow to meet Python `pid`'s race.
//! - `--contender naive` (loop only) takes the file as the simplest flock
//!   pidfile does: open, flock, write, then unlink and close, with no check
//!   that the locked file is still the one at the path. Its overlaps show
//!   that the log catches two holders at once.
//! - `--check`: one more process runs `check()` in a loop beside them; any
//!   error it meets counts as an error.
//!
//! It prints one summary line and exits 1 if holders overlapped or anything
//! failed with an error other than "already running".

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pid_runtime::{Error, PidFile, Status};

const NAME: &str = "stress";
/// Exit codes of one attempt.
const HELD: i32 = 0;
const REFUSED: i32 = 1;
const FAILED: i32 = 2;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Loop,
    Fresh,
    Kill,
}

struct Options {
    procs: usize,
    cycles: usize,
    hold: Duration,
    mode: Mode,
    contender: &'static str,
    check: bool,
    dir: Option<PathBuf>,
}

#[derive(Default)]
struct Tally {
    refused: u64,
    errors: u64,
    killed: u64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--worker") => return worker(&args[1..]),
        Some("--attempt") => return attempt(Path::new(&args[1]), micros(&args[2])),
        Some("--checker") => return checker(Path::new(&args[1])),
        _ => {}
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
    let mode = match options.mode {
        Mode::Loop => "loop",
        Mode::Fresh => "fresh",
        Mode::Kill => "kill",
    };
    let contender = options.contender;
    let checker = options
        .check
        .then(|| spawn_self(&["--checker", path_arg(&dir)]));
    let workers: Vec<Child> = (0..options.procs)
        .map(|_| {
            spawn_self(&[
                "--worker",
                path_arg(&dir),
                &options.cycles.to_string(),
                &options.hold.as_micros().to_string(),
                mode,
                contender,
            ])
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        let report = finish(worker, &mut tally.errors);
        tally.refused += field(&report, "refused");
        tally.errors += field(&report, "errors");
        tally.killed += field(&report, "killed");
    }
    std::fs::write(dir.join("done"), "").expect("tell the checker to stop");
    let checks = checker.map(|checker| finish(checker, &mut tally.errors));
    if let Some(report) = &checks {
        tally.errors += field(report, "errors");
    }
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let log = read_log(&log);
    println!(
        "mode={mode} contender={contender} procs={} attempts={} holds={} overlaps={} \
         takeovers={} refused={} killed={} errors={} {}seconds={:.2}",
        options.procs,
        options.procs * options.cycles,
        log.holds,
        log.overlaps,
        log.takeovers,
        tally.refused,
        tally.killed,
        tally.errors,
        checks
            .map(|report| format!("{} ", report.trim()))
            .unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    if options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let complete =
        options.mode != Mode::Loop || log.holds == (options.procs * options.cycles) as u64;
    if log.overlaps == 0 && tally.errors == 0 && complete {
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
        mode: Mode::Loop,
        contender: "rust",
        check: false,
        dir: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--check" {
            options.check = true;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match (flag.as_str(), value.as_str()) {
            ("--procs", n) => options.procs = n.parse().expect("--procs N"),
            ("--cycles", n) => options.cycles = n.parse().expect("--cycles N"),
            ("--hold-us", n) => options.hold = micros(n),
            ("--mode", "loop") => options.mode = Mode::Loop,
            ("--mode", "fresh") => options.mode = Mode::Fresh,
            ("--mode", "kill") => options.mode = Mode::Kill,
            ("--contender", "rust") => options.contender = "rust",
            ("--contender", "python") => options.contender = "python",
            ("--contender", "naive") => options.contender = "naive",
            ("--contender", "python-fork") => options.contender = "python-fork",
            ("--dir", dir) => options.dir = Some(PathBuf::from(dir)),
            _ => panic!("unknown option {flag} {value}"),
        }
    }
    assert!(
        options.contender != "naive" || options.mode == Mode::Loop,
        "--contender naive needs --mode loop"
    );
    assert!(
        options.contender != "python-fork" || options.mode == Mode::Fresh,
        "--contender python-fork needs --mode fresh"
    );
    options
}

fn micros(text: &str) -> Duration {
    Duration::from_micros(text.parse().expect("microseconds"))
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 directory")
}

fn spawn_self(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("own path"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a process")
}

/// Waits for a process and returns what it printed; a failure is an error.
fn finish(child: Child, errors: &mut u64) -> String {
    let output = child.wait_with_output().expect("wait for a process");
    if !output.status.success() {
        *errors += 1;
        eprintln!("a stress process failed: {}", output.status);
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn open_log(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(dir.join("log"))
        .expect("open the log")
}

/// One write each: O_APPEND keeps the lines whole and in order.
fn log_line(log: &mut std::fs::File, line: &str) {
    log.write_all(line.as_bytes()).expect("write the log");
}

/// Logs the entry of holder `me`, holds for `hold`, and logs its exit.
fn hold_logged(log: &mut std::fs::File, me: &str, hold: Duration) {
    log_line(log, &format!("+{me}\n"));
    if !hold.is_zero() {
        std::thread::sleep(hold);
    }
    log_line(log, &format!("-{me}\n"));
}

fn worker(args: &[String]) -> ExitCode {
    let [dir, cycles, hold, mode, contender] = args else {
        panic!("--worker DIR CYCLES HOLD_US MODE CONTENDER");
    };
    let (dir, cycles, hold) = (
        Path::new(dir),
        cycles.parse().expect("cycles"),
        micros(hold),
    );
    let mut tally = Tally::default();
    if mode == "loop" && contender == "python" {
        return python_loop(dir, cycles, hold);
    } else if contender == "python-fork" {
        return python_forks(dir, cycles, hold);
    } else if mode == "loop" && contender == "naive" {
        naive_loop(dir, cycles, hold, &mut tally);
    } else if mode == "loop" {
        hold_in_a_loop(dir, cycles, hold, &mut tally);
    } else {
        let mut random = Random::seeded();
        for _ in 0..cycles {
            let mut child = attempt_command(dir, hold, contender == "python")
                .spawn()
                .expect("start an attempt");
            if mode == "kill" {
                std::thread::sleep(Duration::from_micros(random.below(2_000)));
                let _ = child.kill();
            }
            let status = child.wait().expect("wait for an attempt");
            match (status.code(), status.signal()) {
                (Some(HELD), _) => {}
                (Some(REFUSED), _) => tally.refused += 1,
                (_, Some(9)) => tally.killed += 1,
                _ => tally.errors += 1,
            }
        }
    }
    println!(
        "refused={} errors={} killed={}",
        tally.refused, tally.errors, tally.killed
    );
    ExitCode::SUCCESS
}

fn attempt_command(dir: &Path, hold: Duration, python: bool) -> Command {
    let hold = hold.as_micros().to_string();
    let mut command = if python {
        python_command("stress_attempt.py")
    } else {
        let mut command = Command::new(std::env::current_exe().expect("own path"));
        command.arg("--attempt");
        command
    };
    command.arg(dir).arg(hold).stdout(Stdio::null());
    command
}

/// The loop of `hold_in_a_loop`, made by Python `pid` in a process of its
/// own (`tests/peers/stress_loop.py`), which prints the same tally line.
fn python_loop(dir: &Path, cycles: usize, hold: Duration) -> ExitCode {
    run_python("stress_loop.py", dir, cycles, hold)
}

/// Fresh attempts forked by one long-lived Python process
/// (`tests/peers/stress_fork.py`), which prints the same tally line.
fn python_forks(dir: &Path, cycles: usize, hold: Duration) -> ExitCode {
    run_python("stress_fork.py", dir, cycles, hold)
}

fn run_python(script: &str, dir: &Path, cycles: usize, hold: Duration) -> ExitCode {
    let status = python_command(script)
        .arg(dir)
        .arg(cycles.to_string())
        .arg(hold.as_micros().to_string())
        .status()
        .expect("start Python");
    if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn python_command(script: &str) -> Command {
    let python = std::env::var_os("PIDFILE_PYTHON").unwrap_or_else(|| "python3".into());
    let mut command = Command::new(python);
    command.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/peers")
            .join(script),
    );
    command
}

/// The loop of `hold_in_a_loop` with the simplest flock pidfile.
fn naive_loop(dir: &Path, cycles: usize, hold: Duration, tally: &mut Tally) {
    use nix::fcntl::{Flock, FlockArg, OFlag};
    use nix::sys::stat::Mode;

    let path = dir.join(format!("{NAME}.pid"));
    let mut log = open_log(dir);
    let me = std::process::id();
    for _ in 0..cycles {
        let locked = loop {
            let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC;
            let file = nix::fcntl::open(&path, flags, Mode::from_bits_truncate(0o644))
                .expect("open the naive pidfile");
            match Flock::lock(std::fs::File::from(file), FlockArg::LockExclusiveNonblock) {
                Ok(locked) => break locked,
                Err(_) => tally.refused += 1,
            }
            std::thread::yield_now();
        };
        (&*locked)
            .write_all(format!("{me}\n").as_bytes())
            .expect("write the naive pidfile");
        hold_logged(&mut log, &me.to_string(), hold);
        let _ = std::fs::remove_file(&path);
        drop(locked);
    }
}

fn hold_in_a_loop(dir: &Path, cycles: usize, hold: Duration, tally: &mut Tally) {
    let pidfile = PidFile::new(NAME).dir(dir);
    let mut log = open_log(dir);
    let me = std::process::id();
    for _ in 0..cycles {
        let guard = loop {
            match pidfile.acquire() {
                Ok(guard) => break guard,
                Err(Error::AlreadyLocked { .. }) => tally.refused += 1,
                Err(error) => {
                    tally.errors += 1;
                    report_error(tally.errors, &error);
                }
            }
            std::thread::yield_now();
        };
        hold_logged(&mut log, &me.to_string(), hold);
        if let Err(error) = guard.release() {
            tally.errors += 1;
            report_error(tally.errors, &error);
        }
    }
}

/// One attempt in a process of its own, which exits right after releasing.
/// It logs its pid with its start time: pids wrap around in a long run.
fn attempt(dir: &Path, hold: Duration) -> ExitCode {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let me = format!("{}.{started}", std::process::id());
    match PidFile::new(NAME).dir(dir).acquire() {
        Ok(guard) => {
            let mut log = open_log(dir);
            hold_logged(&mut log, &me, hold);
            drop(guard);
            ExitCode::from(HELD as u8)
        }
        Err(Error::AlreadyLocked { .. }) => ExitCode::from(REFUSED as u8),
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(FAILED as u8)
        }
    }
}

/// Runs `check()` until the file `done` appears.
fn checker(dir: &Path) -> ExitCode {
    let pidfile = PidFile::new(NAME).dir(dir);
    let done = dir.join("done");
    let (mut checks, mut running, mut stale, mut not_running, mut errors) = (0, 0, 0, 0, 0_u64);
    while !done.exists() {
        checks += 1;
        match pidfile.check() {
            Ok(Status::Running { .. }) => running += 1,
            Ok(Status::Stale { .. }) => stale += 1,
            Ok(Status::NotRunning) => not_running += 1,
            Err(error) => {
                errors += 1;
                report_error(errors, &error);
            }
        }
    }
    println!(
        "checks={checks} running={running} stale={stale} not-running={not_running} errors={errors}"
    );
    ExitCode::SUCCESS
}

/// Prints the first few errors of a process; the count tells the rest.
fn report_error(count: u64, error: &Error) {
    if count <= 5 {
        eprintln!("{error}");
    }
}

struct LogSummary {
    holds: u64,
    overlaps: u64,
    takeovers: u64,
}

/// Reads the log back. A holder that entered and never left was killed
/// while holding: its hold ended at an unknown moment, so it cannot be part
/// of an overlap, and the next entry took over its file.
fn read_log(log: &str) -> LogSummary {
    let lines: Vec<&str> = log.lines().collect();
    let left: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|line| line.strip_prefix('-'))
        .collect();
    let mut summary = LogSummary {
        holds: 0,
        overlaps: 0,
        takeovers: 0,
    };
    let mut holders: Vec<&str> = Vec::new();
    let mut after_killed = false;
    for line in lines {
        if let Some(pid) = line.strip_prefix('+') {
            if !holders.is_empty() {
                summary.overlaps += 1;
            }
            if after_killed {
                summary.takeovers += 1;
                after_killed = false;
            }
            if left.contains(pid) {
                holders.push(pid);
            } else {
                after_killed = true;
            }
        } else if let Some(pid) = line.strip_prefix('-') {
            if let Some(at) = holders.iter().position(|holder| *holder == pid) {
                holders.remove(at);
                summary.holds += 1;
            }
        }
    }
    summary
}

fn field(report: &str, name: &str) -> u64 {
    report
        .split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// xorshift64*: enough to spread kill delays, seeded by pid and clock.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.subsec_nanos());
        Random((u64::from(std::process::id()) << 32 | u64::from(nanos)) | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

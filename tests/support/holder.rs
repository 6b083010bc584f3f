//! A process the integration tests drive through its standard input, one
//! command a line, answering one line each on its standard output:
//!
//! - `acquire DIR NAME [mode=OCTAL] [owner=UID] [same] [insecure] [term=auto|always|never]` →
//!   `ok PID PATH` or `err VARIANT PID|- MESSAGE`
//!   (DIR `-` means no directory: the default one, or with `tmp` the private
//!   temporary one)
//! - `check DIR NAME [options]` → `running PID|-`, `stale PID|-`, `not-running`, or `err ...`
//! - `path DIR NAME [options]` → `path PATH` or `err ...`
//! - `release` (the newest guard) → `released` or `err ...`
//! - `umask OCTAL` → `umask`
//! - `euid` → `euid UID`, the effective user id
//! - `ignore-sigterm` → `ignoring`
//! - `fork-exit` / `fork-drop`: a forked child exits through `exit` or drops
//!   its copies of the guards first; → `child-exited CODE`
//! - `churn DIR THREADS`: each thread acquires and releases `churn-N` in a
//!   loop, until the process ends; → `churning` once every thread has done
//!   one cycle
//! - `daemonize`: hands the newest guard to a daemon; the daemon answers
//!   `daemon PID` and goes on reading commands, this process exits 0
//! - `exit CODE`, `panic`, `abort`: end while holding every guard
//!
//! It prints `ready PID` first.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use pid_runtime::{Error, PidFile, PidFileGuard, Status, TermSignal};

fn main() -> ExitCode {
    let mut guards: Vec<PidFileGuard> = Vec::new();
    let mut out = std::io::stdout().lock();
    say(&mut out, format!("ready {}", std::process::id()));
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("read a command");
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["acquire", dir, name, options @ ..] => match configure(dir, name, options).acquire() {
                Ok(guard) => {
                    let answer = format!("ok {} {}", guard.pid(), guard.path().display());
                    guards.push(guard);
                    answer
                }
                Err(error) => describe(&error),
            },
            ["path", dir, name, options @ ..] => match configure(dir, name, options).path() {
                Ok(path) => format!("path {}", path.display()),
                Err(error) => describe(&error),
            },
            ["check", dir, name, options @ ..] => match configure(dir, name, options).check() {
                Ok(Status::NotRunning) => "not-running".to_string(),
                Ok(Status::Stale { pid }) => format!("stale {}", or_dash(pid)),
                Ok(Status::Running { pid }) => format!("running {}", or_dash(pid)),
                Err(error) => describe(&error),
            },
            ["release"] => match guards.pop().map(PidFileGuard::release) {
                Some(Ok(())) => "released".to_string(),
                Some(Err(error)) => describe(&error),
                None => "err None - no guard".to_string(),
            },
            ["umask", mode] => {
                let mode = u32::from_str_radix(mode, 8).expect("an octal umask");
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mode as _));
                "umask".to_string()
            }
            ["ignore-sigterm"] => {
                // SAFETY: SIG_IGN is not a handler; nothing runs on delivery.
                unsafe {
                    nix::sys::signal::signal(
                        nix::sys::signal::Signal::SIGTERM,
                        nix::sys::signal::SigHandler::SigIgn,
                    )
                }
                .expect("ignore SIGTERM");
                "ignoring".to_string()
            }
            ["fork-exit"] => fork_child(&mut guards, |_| std::process::exit(0)),
            ["fork-drop"] => fork_child(&mut guards, |guards| {
                guards.clear();
                // SAFETY: ends the child at once, running nothing more.
                unsafe { nix::libc::_exit(0) }
            }),
            ["churn", dir, threads] => churn(dir, threads.parse().expect("a thread count")),
            ["euid"] => format!("euid {}", nix::unistd::geteuid()),
            ["daemonize"] => match guards.pop() {
                // SAFETY: this program is single-threaded.
                Some(guard) => match unsafe { guard.daemonize() } {
                    Ok(guard) => {
                        let answer = format!("daemon {}", guard.pid());
                        guards.push(guard);
                        answer
                    }
                    Err(error) => describe(&error),
                },
                None => "err None - no guard".to_string(),
            },
            ["exit", code] => std::process::exit(code.parse().expect("an exit code")),
            ["panic"] => panic!("panicking while holding {} guards", guards.len()),
            ["abort"] => std::process::abort(),
            _ => format!("err Usage - unknown command {line:?}"),
        };
        say(&mut out, answer);
    }
    ExitCode::SUCCESS
}

fn configure(dir: &str, name: &str, options: &[&str]) -> PidFile {
    let mut pidfile = PidFile::new(name);
    if dir != "-" {
        pidfile = pidfile.dir(dir);
    }
    for option in options {
        pidfile = match option.split_once('=') {
            Some(("mode", mode)) => {
                pidfile.mode(u32::from_str_radix(mode, 8).expect("an octal mode"))
            }
            Some(("owner", uid)) => pidfile.owner(Some(uid.parse().expect("a uid")), None),
            Some(("term", "auto")) => pidfile.term_signal(TermSignal::Auto),
            Some(("term", "always")) => pidfile.term_signal(TermSignal::Always),
            Some(("term", "never")) => pidfile.term_signal(TermSignal::Never),
            None if *option == "same" => pidfile.allow_same_pid(true),
            None if *option == "insecure" => pidfile.allow_insecure_dir(true),
            None if *option == "tmp" => pidfile.force_tmpdir(true),
            _ => panic!("unknown option {option}"),
        };
    }
    pidfile
}

/// Starts `threads` threads that acquire and release their own pidfile in
/// `dir` for as long as the process lives.
fn churn(dir: &str, threads: usize) -> String {
    let (cycled, first_cycles) = std::sync::mpsc::channel();
    for thread in 0..threads {
        let pidfile = PidFile::new(format!("churn-{thread}")).dir(dir);
        let cycled = cycled.clone();
        std::thread::spawn(move || {
            let mut cycled = Some(cycled);
            loop {
                pidfile
                    .acquire()
                    .and_then(PidFileGuard::release)
                    .expect("acquire and release");
                if let Some(cycled) = cycled.take() {
                    let _ = cycled.send(());
                }
            }
        });
    }
    for _ in 0..threads {
        first_cycles.recv().expect("a first cycle");
    }
    "churning".to_string()
}

/// Forks; the child runs `end` on its copies of the guards and must not
/// return. The parent answers with the child's exit code.
fn fork_child(guards: &mut Vec<PidFileGuard>, end: impl FnOnce(&mut Vec<PidFileGuard>)) -> String {
    // SAFETY: this program is single-threaded, so the child may run any code.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            end(guards);
            unreachable!("the child ends in `end`")
        }
        nix::unistd::ForkResult::Parent { child } => {
            match nix::sys::wait::waitpid(child, None).expect("wait for the child") {
                nix::sys::wait::WaitStatus::Exited(_, code) => format!("child-exited {code}"),
                other => format!("err Child - {other:?}"),
            }
        }
    }
}

fn describe(error: &Error) -> String {
    let variant = format!("{error:?}");
    let variant = variant
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string();
    format!("err {variant} {} {error}", or_dash(error.pid()))
}

fn or_dash(pid: Option<pid_runtime::Pid>) -> String {
    pid.map_or_else(|| "-".to_string(), |pid| pid.to_string())
}

fn say(out: &mut impl Write, line: String) {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .expect("write an answer");
}

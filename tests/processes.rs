//! Acquisition, refusal, stale takeover and cleanup between real processes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;

use common::{Bystander, Holder, TempDir};
use nix::sys::signal::Signal;
use pid_runtime::{Error, Pid, PidFile, Status};

#[test]
fn second_process_is_refused_with_holder_pid() {
    let dir = TempDir::new();
    let mut first = Holder::spawn();
    let path = first.acquire(&dir, "worker");
    assert_eq!(path, dir.join("worker.pid"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", first.pid)
    );

    let mut second = Holder::spawn();
    let answer = second.ask(&format!("acquire {} worker", dir.arg()));
    assert_eq!(
        answer,
        format!(
            "err AlreadyLocked {pid} already running as pid {pid} ({})",
            path.display(),
            pid = first.pid
        )
    );
    // The refusal changed nothing.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", first.pid)
    );
}

#[test]
fn second_process_starts_once_the_first_releases() {
    let dir = TempDir::new();
    let mut first = Holder::spawn();
    let path = first.acquire(&dir, "worker");
    assert_eq!(first.ask("release"), "released");
    assert!(!path.exists());
    let mut second = Holder::spawn();
    assert_eq!(second.acquire(&dir, "worker"), path);
}

#[test]
fn holder_killed_with_sigkill_leaves_a_file_the_next_acquire_takes() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    let dead = holder.pid;
    let status = holder.kill_and_wait(Signal::SIGKILL);
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{dead}\n"));

    let pidfile = PidFile::new("worker").dir(dir.path());
    assert_eq!(pidfile.check().unwrap(), Status::Stale { pid: Some(dead) });
    let guard = pidfile.acquire().expect("a stale file is taken over");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(guard);
    assert!(!path.exists());
}

#[test]
fn sigterm_removes_the_file_and_the_process_dies_of_sigterm() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    let status = holder.kill_and_wait(Signal::SIGTERM);
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    assert!(!path.exists(), "SIGTERM left {path:?} behind");
}

/// However a SIGTERM falls among threads that acquire and release in a loop
/// (between creating a file and registering it, between unregistering and
/// unlinking it), the process dies of SIGTERM and leaves no file behind.
/// `PIDFILE_SIGTERM_RUNS` sets how many processes are killed (default 300).
#[test]
fn sigterm_during_acquisitions_and_releases_leaves_no_file() {
    churning_processes_leave_no_file("PIDFILE_SIGTERM_RUNS", |holder, run| {
        let status = holder.signal_and_wait(Signal::SIGTERM);
        assert_eq!(
            status.signal(),
            Some(Signal::SIGTERM as i32),
            "run {run}: {status:?}"
        );
    });
}

/// However `exit` falls among threads that acquire and release in a loop,
/// the process exits with its status and leaves no file behind: the `exit`
/// handler waits for the acquisitions and releases under way, and holds
/// off new ones. `PIDFILE_EXIT_RUNS` sets how many processes exit (default
/// 300).
#[test]
fn exit_during_acquisitions_and_releases_leaves_no_file() {
    churning_processes_leave_no_file("PIDFILE_EXIT_RUNS", |holder, run| {
        let status = holder.end_with("exit 3");
        assert_eq!(status.code(), Some(3), "run {run}: {status:?}");
    });
}

/// Ends, with `end`, processes whose four threads acquire and release in a
/// loop (as many as `runs_variable` says, default 300), and asserts that
/// none left a file behind.
fn churning_processes_leave_no_file(runs_variable: &str, end: impl Fn(Holder, usize)) {
    let runs: usize = std::env::var(runs_variable)
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(300);
    let mut left_behind = Vec::new();
    for run in 0..runs {
        let dir = TempDir::new();
        let mut holder = Holder::spawn();
        assert_eq!(holder.ask(&format!("churn {} 4", dir.arg())), "churning");
        let pid = holder.pid;
        end(holder, run);
        // Each with its content, so a failure says whose file it was.
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (entry.file_name(), std::fs::read_to_string(entry.path()))
            })
            .collect();
        if !files.is_empty() {
            left_behind.push((run, pid, files));
        }
    }
    assert!(
        left_behind.is_empty(),
        "{} of {runs} runs left files (run, holder, files): {left_behind:?}",
        left_behind.len()
    );
}

#[test]
fn sigterm_with_policy_never_leaves_the_file() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let answer = holder.ask(&format!("acquire {} worker term=never", dir.arg()));
    assert!(answer.starts_with("ok "), "{answer}");
    let status = holder.kill_and_wait(Signal::SIGTERM);
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    assert!(dir.join("worker.pid").exists());
}

#[test]
fn sigterm_handler_is_not_installed_over_a_program_s_own_disposition() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    assert_eq!(holder.ask("ignore-sigterm"), "ignoring");
    let path = holder.acquire(&dir, "worker");
    // Still ignored: the process answers after the signal was sent.
    holder.signal(Signal::SIGTERM);
    assert_eq!(holder.ask("release"), "released");
    assert!(!path.exists());
}

#[test]
fn sigterm_policy_always_replaces_a_program_s_own_disposition() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    assert_eq!(holder.ask("ignore-sigterm"), "ignoring");
    let answer = holder.ask(&format!("acquire {} worker term=always", dir.arg()));
    assert!(answer.starts_with("ok "), "{answer}");
    let status = holder.kill_and_wait(Signal::SIGTERM);
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    assert!(!dir.join("worker.pid").exists());
}

#[test]
fn process_exit_removes_the_file() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    let status = holder.end_with("exit 3");
    assert_eq!(status.code(), Some(3));
    assert!(!path.exists(), "exit left {path:?} behind");
}

#[test]
fn unwinding_panic_removes_the_file() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    let status = holder.end_with("panic");
    assert_eq!(status.code(), Some(101));
    assert!(!path.exists(), "a panic left {path:?} behind");
}

#[test]
fn abort_leaves_a_stale_file() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    let pid = holder.pid;
    let status = holder.end_with("abort");
    assert_eq!(status.signal(), Some(Signal::SIGABRT as i32));
    let pidfile = PidFile::new("worker").dir(dir.path());
    assert_eq!(pidfile.check().unwrap(), Status::Stale { pid: Some(pid) });
    assert!(path.exists());
}

#[test]
fn forked_child_exiting_does_not_remove_the_parent_s_file() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    assert_eq!(holder.ask("fork-exit"), "child-exited 0");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", holder.pid)
    );
    let pidfile = PidFile::new("worker").dir(dir.path());
    assert_eq!(
        pidfile.check().unwrap(),
        Status::Running {
            pid: Some(holder.pid)
        }
    );
}

#[test]
fn forked_child_dropping_its_guards_does_not_remove_the_parent_s_file() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    assert_eq!(holder.ask("fork-drop"), "child-exited 0");
    assert!(path.exists());
    // The parent still holds the lock: the child only closed its copy.
    let refused = PidFile::new("worker")
        .dir(dir.path())
        .acquire()
        .unwrap_err();
    assert!(
        matches!(refused, Error::AlreadyLocked { pid: Some(pid), .. } if pid == holder.pid),
        "{refused}"
    );
    assert_eq!(holder.ask("release"), "released");
    assert!(!path.exists());
}

#[test]
fn live_unrelated_pid_older_than_the_file_is_already_running() {
    let dir = TempDir::new();
    let bystander = Bystander::spawn();
    let path = dir.join("worker.pid");
    std::fs::write(&path, format!("{}\n", bystander.pid())).unwrap();

    let pidfile = PidFile::new("worker").dir(dir.path());
    let error = pidfile.acquire().unwrap_err();
    assert!(
        matches!(&error, Error::AlreadyRunning { pid, .. } if *pid == bystander.pid()),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "already running as pid {} ({}, written without a lock)",
            bystander.pid(),
            path.display()
        )
    );
    assert_eq!(
        pidfile.check().unwrap(),
        Status::Running {
            pid: Some(bystander.pid())
        }
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", bystander.pid())
    );
}

/// A process whose main thread has exited while another thread runs shows
/// as a zombie in `/proc/<pid>/stat`, yet lives: its unlocked file names a
/// running program and is not taken over.
#[cfg(target_os = "linux")]
#[test]
fn a_process_whose_main_thread_exited_is_alive() {
    let dir = TempDir::new();
    let program = common::build_c("tests/support/zombie_leader.c", &dir, &["-pthread"]);
    let path = dir.join("worker.pid");
    let mut command = std::process::Command::new(program);
    command.arg(&path);
    let (mut child, lines) = common::spawn_piped(command);
    assert_eq!(
        lines.recv_timeout(common::ANSWER_TIMEOUT).as_deref(),
        Ok("ready")
    );
    let pid = Pid::from_raw(child.id());
    let stat = format!("/proc/{pid}/stat");
    let deadline = std::time::Instant::now() + common::ANSWER_TIMEOUT;
    while !std::fs::read_to_string(&stat).unwrap().contains(") Z ") {
        assert!(
            std::time::Instant::now() < deadline,
            "the main thread never exited"
        );
        std::thread::yield_now();
    }
    let pidfile = PidFile::new("worker").dir(dir.path());
    let error = pidfile.acquire().unwrap_err();
    assert!(
        matches!(&error, Error::AlreadyRunning { pid: found, .. } if *found == pid),
        "{error:?}"
    );
    assert_eq!(pidfile.check().unwrap(), Status::Running { pid: Some(pid) });
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{pid}\n"));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[cfg(target_os = "linux")]
#[test]
fn live_pid_younger_than_the_file_is_a_reused_pid_and_taken() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    let bystander = Bystander::spawn();
    std::fs::write(&path, format!("{}\n", bystander.pid())).unwrap();
    // The file was written an hour before the process started.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();

    let pidfile = PidFile::new("worker").dir(dir.path());
    assert_eq!(
        pidfile.check().unwrap(),
        Status::Stale {
            pid: Some(bystander.pid())
        }
    );
    let _guard = pidfile.acquire().expect("a reused pid is stale");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
}

#[test]
fn mode_is_exact_under_any_umask() {
    for (umask, mode) in [
        ("000", "644"),
        ("077", "644"),
        ("077", "640"),
        ("000", "600"),
    ] {
        let dir = TempDir::new();
        let mut holder = Holder::spawn();
        assert_eq!(holder.ask(&format!("umask {umask}")), "umask");
        let answer = holder.ask(&format!("acquire {} worker mode={mode}", dir.arg()));
        assert!(answer.starts_with("ok "), "{answer}");
        let actual = std::fs::metadata(dir.join("worker.pid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(
            actual,
            u32::from_str_radix(mode, 8).unwrap(),
            "umask {umask} mode {mode}"
        );
    }
}

#[test]
fn mode_of_a_stale_file_is_corrected() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _guard = PidFile::new("worker")
        .dir(dir.path())
        .mode(0o644)
        .acquire()
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
}

#[test]
fn check_reports_each_state() {
    let dir = TempDir::new();
    let pidfile = PidFile::new("worker").dir(dir.path());
    let path = dir.join("worker.pid");
    assert_eq!(pidfile.check().unwrap(), Status::NotRunning);

    let mut holder = Holder::spawn();
    holder.acquire(&dir, "worker");
    assert_eq!(
        pidfile.check().unwrap(),
        Status::Running {
            pid: Some(holder.pid)
        }
    );
    // Another process's view is the same.
    let mut looker = Holder::spawn();
    assert_eq!(
        looker.ask(&format!("check {} worker", dir.arg())),
        format!("running {}", holder.pid)
    );
    let before = std::fs::read(&path).unwrap();
    let dead = holder.pid;
    holder.kill_and_wait(Signal::SIGKILL);
    assert_eq!(pidfile.check().unwrap(), Status::Stale { pid: Some(dead) });
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "check changed the file"
    );

    std::fs::write(&path, "").unwrap();
    assert_eq!(pidfile.check().unwrap(), Status::Stale { pid: None });

    std::fs::write(&path, "not a pid\n").unwrap();
    assert!(matches!(
        pidfile.check().unwrap_err(),
        Error::Unreadable { .. }
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"not a pid\n");
}

#[test]
fn two_threads_acquiring_one_name_get_one_guard() {
    let dir = TempDir::new();
    let pidfile = PidFile::new("worker").dir(dir.path());
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<_> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    pidfile.acquire()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let (guards, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(guards.len(), 1);
    let error = errors.into_iter().next().unwrap().unwrap_err();
    assert!(
        matches!(error, Error::AlreadyLocked { pid: Some(pid), .. } if pid == Pid::current()),
        "{error}"
    );
}

#[test]
fn allow_same_pid_gives_a_second_guard_that_does_not_own_the_file() {
    let dir = TempDir::new();
    let pidfile = PidFile::new("worker").dir(dir.path()).allow_same_pid(true);
    let owner = pidfile.acquire().unwrap();
    let second = pidfile
        .acquire()
        .expect("the same process may acquire again");
    assert!(owner.owns_file());
    assert!(!second.owns_file());
    second.release().unwrap();
    assert!(
        owner.path().exists(),
        "the non-owning guard removed the file"
    );
    let path = owner.path().to_path_buf();
    owner.release().unwrap();
    assert!(!path.exists());
}

#[test]
fn allow_same_pid_takes_an_unlocked_file_naming_this_process() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
    let refused = PidFile::new("worker")
        .dir(dir.path())
        .acquire()
        .unwrap_err();
    assert!(matches!(refused, Error::AlreadyRunning { .. }), "{refused}");
    let guard = PidFile::new("worker")
        .dir(dir.path())
        .allow_same_pid(true)
        .acquire()
        .unwrap();
    assert!(guard.owns_file());
}

#[test]
fn for_program_is_named_after_argv0() {
    let arg0 = std::env::args_os().next().unwrap();
    let program = std::path::Path::new(&arg0).file_name().unwrap();
    let dir = TempDir::new();
    let path = PidFile::for_program().dir(dir.path()).path().unwrap();
    assert_eq!(
        path,
        dir.join(&format!("{}.pid", program.to_str().unwrap()))
    );
}

#[test]
fn guard_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>(value: T) -> T {
        value
    }
    let dir = TempDir::new();
    let guard = send_and_sync(PidFile::new("worker").dir(dir.path()).acquire().unwrap());
    let path = guard.path().to_path_buf();
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert!(!path.exists());
}

#[test]
fn set_pid_records_another_process_with_the_write_rules_of_acquire() {
    let dir = TempDir::new();
    let pidfile = PidFile::new("job").dir(dir.path());
    let mut guard = pidfile.acquire().unwrap();
    let path = guard.path().to_path_buf();
    let child = Bystander::spawn();

    guard.set_pid(child.pid()).unwrap();
    assert_eq!(guard.pid(), child.pid());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", child.pid())
    );
    assert_eq!(
        pidfile.check().unwrap(),
        Status::Running {
            pid: Some(child.pid())
        }
    );
    // Another process is refused with the recorded id.
    let mut other = Holder::spawn();
    let answer = other.ask(&format!("acquire {} job", dir.arg()));
    assert!(
        answer.starts_with(&format!("err AlreadyLocked {} ", child.pid())),
        "{answer}"
    );

    // A shorter id leaves no tail of the longer one behind.
    guard.set_pid(Pid::from_raw(1)).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");

    guard.release().unwrap();
    assert!(!path.exists());
}

#[test]
fn set_pid_refuses_a_group_id_and_a_guard_that_does_not_own_the_file() {
    let dir = TempDir::new();
    let pidfile = PidFile::new("job").dir(dir.path()).allow_same_pid(true);
    let mut owner = pidfile.acquire().unwrap();
    let path = owner.path().to_path_buf();
    let written = std::fs::read_to_string(&path).unwrap();

    // 0 and u32::MAX (-1 as a pid_t) would address process groups in kill.
    for pid in [0, 1 << 31, u32::MAX] {
        let error = owner.set_pid(Pid::from_raw(pid)).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidPid { pid: p, .. } if p.as_raw() == pid),
            "{error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }
    let mut sharer = pidfile.acquire().unwrap();
    assert!(!sharer.owns_file());
    let error = sharer
        .set_pid(Pid::from_raw(std::process::id() + 1))
        .unwrap_err();
    assert!(matches!(error, Error::NotOwningGuard { .. }), "{error:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
}

/// `acquire_timeout` takes the file when its holder releases it, or dies
/// (its descriptor closed by the kernel), well before its time is up, and
/// gives the holder's refusal when the time is up.
#[test]
fn acquire_timeout_takes_over_at_a_release_or_a_death_and_else_gives_the_refusal() {
    let dir = TempDir::new();
    let pidfile = PidFile::new("worker").dir(dir.path());
    let mut holder = Holder::spawn();
    holder.acquire(&dir, "worker");
    let error = pidfile
        .acquire_timeout(std::time::Duration::from_millis(100))
        .unwrap_err();
    assert!(
        matches!(&error, Error::AlreadyLocked { pid: Some(pid), .. } if *pid == holder.pid),
        "{error:?}"
    );

    let waiter = std::thread::spawn({
        let pidfile = pidfile.clone();
        move || pidfile.acquire_timeout(common::ANSWER_TIMEOUT)
    });
    assert_eq!(holder.ask("release"), "released");
    let guard = waiter.join().unwrap().expect("taken at the release");
    drop(guard);

    let mut holder = Holder::spawn();
    holder.acquire(&dir, "worker");
    let waiter = std::thread::spawn({
        let pidfile = pidfile.clone();
        move || pidfile.acquire_timeout(common::ANSWER_TIMEOUT)
    });
    holder.kill_and_wait(Signal::SIGKILL);
    let guard = waiter.join().unwrap().expect("taken once the holder died");
    assert_eq!(guard.pid(), Pid::current());
}

/// `wait_until_free` returns once the holder is gone, and says false when
/// its time is up first; it takes nothing.
#[test]
fn wait_until_free_returns_at_the_release_and_takes_nothing() {
    let dir = TempDir::new();
    let pidfile = PidFile::new("worker").dir(dir.path());
    assert!(pidfile.wait_until_free(None).unwrap());
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    assert!(!pidfile
        .wait_until_free(Some(std::time::Duration::from_millis(100)))
        .unwrap());
    let waiter = std::thread::spawn({
        let pidfile = pidfile.clone();
        move || pidfile.wait_until_free(Some(common::ANSWER_TIMEOUT))
    });
    assert_eq!(holder.ask("release"), "released");
    assert!(waiter.join().unwrap().unwrap());
    assert!(!path.exists(), "the wait took nothing");
}

/// `daemonize` hands the held file to a daemon: when the starting process
/// exits (0), the file already names the daemon, which holds the lock, and
/// removes the file when it releases it.
#[test]
fn daemonize_hands_the_file_to_the_daemon_before_the_starter_exits() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "daemon");
    let starter = holder.pid;
    let answer = holder.ask("daemonize");
    let daemon: u32 = answer
        .strip_prefix("daemon ")
        .unwrap_or_else(|| panic!("{answer}"))
        .parse()
        .unwrap();
    assert_ne!(daemon, starter.as_raw());
    let status = holder.wait_for_exit();
    assert_eq!(status.code(), Some(0), "the starter exits 0");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{daemon}\n")
    );
    let daemon = Pid::from_raw(daemon);
    let error = PidFile::new("daemon")
        .dir(dir.path())
        .acquire()
        .unwrap_err();
    assert!(
        matches!(&error, Error::AlreadyLocked { pid: Some(pid), .. } if *pid == daemon),
        "{error:?}"
    );
    // The daemon leads no session: it cannot get a terminal back.
    let daemon = common::sys(daemon);
    assert_ne!(nix::unistd::getsid(Some(daemon)).unwrap(), daemon);
    assert_eq!(holder.ask("release"), "released");
    assert!(!path.exists());
    holder.send_line("exit 0");
}

/// A process another thread spawns gets a copy of every descriptor open at
/// its fork, until its exec: a refused acquisition must not leave its lock
/// behind in such a copy, or the file looks held for a while by nobody.
#[test]
fn a_refused_acquisition_leaves_no_lock_in_a_process_spawned_meanwhile() {
    use std::os::unix::process::CommandExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    let runs: usize = std::env::var("PIDFILE_FORK_RACE_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(2000);
    let dir = TempDir::new();
    let bystander = Bystander::spawn();
    let path = dir.join("worker.pid");
    std::fs::write(&path, format!("{}\n", bystander.pid())).unwrap();
    let pidfile = PidFile::new("worker").dir(dir.path());
    let stop = AtomicBool::new(false);
    let locked_after = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let mut command = std::process::Command::new("true");
                // SAFETY: nanosleep is async-signal-safe. The pause widens the
                // window between fork and exec that every spawn has.
                unsafe {
                    command.pre_exec(|| {
                        let pause = nix::libc::timespec {
                            tv_sec: 0,
                            tv_nsec: 200_000,
                        };
                        nix::libc::nanosleep(&pause, std::ptr::null_mut());
                        Ok(())
                    });
                }
                command.spawn().unwrap().wait().unwrap();
            }
        });
        let mut locked = 0;
        for _ in 0..runs {
            // A lock left in a child makes the next refusal AlreadyLocked.
            match pidfile.acquire() {
                Err(Error::AlreadyRunning { .. }) => {}
                Err(Error::AlreadyLocked { .. }) => locked += 1,
                other => {
                    stop.store(true, Ordering::Relaxed);
                    panic!("{other:?}");
                }
            }
            let probe = std::fs::File::open(&path).unwrap();
            if nix::fcntl::Flock::lock(probe, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
            {
                locked += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        locked
    });
    assert_eq!(
        locked_after, 0,
        "of {runs} refusals and probes, found locked"
    );
}

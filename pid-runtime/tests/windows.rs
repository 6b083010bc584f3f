//! The Windows backend with real processes: this test binary started again
//! as a holder, contention between processes, a holder ended by
//! `taskkill /F`, cleanup at exit, and files that are not pidfiles.
#![cfg(windows)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use pid_runtime::{Error, FileKind, Pid, PidFile, Status};

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("pid-windows-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How a holder ends once its standard input says so.
const DROP: &str = "drop";
const EXIT: &str = "exit";
/// A holder that instead contends in a loop, and reports.
const CHURN: &str = "churn";

/// Another process holding `contended.pid` in `dir`, once it said so.
struct Holder {
    child: Child,
    pid: Pid,
    _stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn start(dir: &Path, end: &str) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "holder_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PIDFILE_HOLDER_DIR", dir)
            .env("PIDFILE_HOLDER_END", end)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let pid = loop {
            line.clear();
            assert_ne!(
                stdout.read_line(&mut line).unwrap(),
                0,
                "the holder ended before holding"
            );
            // libtest may have written "test holder_process ... " first.
            if let Some((_, pid)) = line.trim().rsplit_once("held ") {
                break Pid::from_raw(pid.parse().unwrap());
            }
        };
        assert_eq!(pid.as_raw(), child.id());
        Holder {
            child,
            pid,
            _stdout: stdout,
        }
    }

    /// Tells the holder to end as it was started to, and waits for it.
    fn end(mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"end\n").unwrap();
        drop(stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

fn contended(dir: &Path) -> PidFile {
    PidFile::new("contended").dir(dir)
}

/// Run by [`Holder::start`] in a process of its own.
#[test]
#[ignore = "the holder process of the other tests, started by them"]
fn holder_process() {
    let dir = std::env::var_os("PIDFILE_HOLDER_DIR").expect("started by Holder::start");
    let end = std::env::var("PIDFILE_HOLDER_END").unwrap();
    if end == CHURN {
        return churn(Path::new(&dir));
    }
    let guard = contended(Path::new(&dir)).acquire().unwrap();
    println!("held {}", guard.pid());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    if end == EXIT {
        // Ends the process with the guard still alive.
        std::process::exit(0);
    }
    drop(guard);
}

/// Takes and releases `contended.pid` in a loop; while holding, creates a
/// marker that only one process at a time can create. Prints the counts.
fn churn(dir: &Path) {
    let cycles: usize = std::env::var("PIDFILE_WINDOWS_CYCLES")
        .ok()
        .and_then(|cycles| cycles.parse().ok())
        .unwrap_or(300);
    let marker = dir.join("inside");
    let (mut holds, mut overlaps, mut refusals) = (0, 0, 0);
    for _ in 0..cycles {
        match contended(dir).acquire() {
            Ok(guard) => {
                holds += 1;
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&marker)
                {
                    Ok(file) => {
                        drop(file);
                        std::fs::remove_file(&marker).unwrap();
                    }
                    Err(_) => overlaps += 1,
                }
                guard.release().unwrap();
            }
            Err(error) if error.is_busy() => refusals += 1,
            Err(error) => panic!("{error}"),
        }
    }
    println!("held {holds} overlaps {overlaps} refused {refusals}");
}

#[test]
fn processes_contending_in_a_loop_never_hold_at_once() {
    let dir = TempDir::new("churn");
    let churners: Vec<Child> = (0..4)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "holder_process", "--ignored", "--nocapture"])
                .env("PIDFILE_HOLDER_DIR", &dir.0)
                .env("PIDFILE_HOLDER_END", CHURN)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut holds, mut refusals) = (0, 0);
    for churner in churners {
        let output = churner.wait_with_output().unwrap();
        assert!(output.status.success());
        let report = String::from_utf8(output.stdout).unwrap();
        let line = report
            .lines()
            .find(|line| line.contains(" overlaps "))
            .expect("a report");
        let counts: Vec<usize> = line
            .rsplit_once("held ")
            .expect("a report")
            .1
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        let [held, overlaps, refused] = counts[..] else {
            panic!("report {report:?}");
        };
        assert_eq!(overlaps, 0, "two processes held the file at once");
        holds += held;
        refusals += refused;
    }
    assert!(
        holds > 0 && refusals > 0,
        "held {holds}, refused {refusals}: no contention"
    );
    assert!(!dir.0.join("contended.pid").exists());
}

fn attribute_dir() -> PathBuf {
    std::env::temp_dir().join(format!("pid-windows-attribute-{}", std::process::id()))
}

#[pid_runtime::pidfile(name = "attributed", dir = attribute_dir())]
fn attributed() -> std::io::Result<Status> {
    PidFile::new("attributed")
        .dir(attribute_dir())
        .check()
        .map_err(Into::into)
}

#[test]
fn the_attribute_holds_the_file_while_the_function_runs() {
    assert_eq!(
        attributed().unwrap(),
        Status::Running {
            pid: Some(Pid::current())
        }
    );
    assert!(!attribute_dir().join("attributed.pid").exists());
    let _held = PidFile::new("attributed")
        .dir(attribute_dir())
        .acquire()
        .unwrap();
    let refused = attributed().unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ResourceBusy);
}

#[test]
fn a_second_process_is_refused_with_the_holders_pid_which_stays_readable() {
    let dir = TempDir::new("contended");
    let holder = Holder::start(&dir.0, DROP);
    let path = contended(&dir.0).path().unwrap();

    match contended(&dir.0).acquire() {
        Err(Error::AlreadyLocked { pid, .. }) => assert_eq!(pid, Some(holder.pid)),
        other => panic!("expected AlreadyLocked, got {other:?}"),
    }
    assert_eq!(
        contended(&dir.0).check().unwrap(),
        Status::Running {
            pid: Some(holder.pid)
        }
    );
    // Any reader, not just this library, reads the pid while it is held.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", holder.pid)
    );

    holder.end();
    assert!(!path.exists(), "the holder's drop removes the file");
    assert_eq!(contended(&dir.0).check().unwrap(), Status::NotRunning);
    let guard = contended(&dir.0).acquire().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(guard);
}

#[test]
fn a_holder_ended_by_taskkill_leaves_a_stale_file_that_is_taken_over() {
    let dir = TempDir::new("taskkill");
    let mut holder = Holder::start(&dir.0, DROP);
    let path = contended(&dir.0).path().unwrap();

    let killed = Command::new("taskkill")
        .args(["/F", "/PID", &holder.pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(killed.success(), "taskkill: {killed}");
    holder.child.wait().unwrap();

    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", holder.pid)
    );
    assert_eq!(
        contended(&dir.0).check().unwrap(),
        Status::Stale {
            pid: Some(holder.pid)
        }
    );
    let guard = contended(&dir.0).acquire().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    guard.release().unwrap();
    assert!(!path.exists());
}

/// Whether Wine runs this test rather than Windows: ntdll exports
/// `wine_get_version` there.
fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: NUL-terminated names; ntdll is loaded in every process.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

/// Windows runs the library's TLS callback as a process ends by `exit`,
/// which removes the file. Wine 8 does not run an executable's TLS
/// callbacks then: there the file stays, unlocked and naming a process
/// that is gone, and is taken over as stale.
#[test]
fn a_holder_that_exits_without_dropping_leaves_no_file_that_blocks() {
    let dir = TempDir::new("exit");
    let holder = Holder::start(&dir.0, EXIT);
    let gone = holder.pid;
    let path = contended(&dir.0).path().unwrap();
    assert!(path.exists());
    holder.end();
    if under_wine() {
        assert_eq!(
            contended(&dir.0).check().unwrap(),
            Status::Stale { pid: Some(gone) }
        );
        drop(
            contended(&dir.0)
                .acquire()
                .expect("a stale file is taken over"),
        );
    } else {
        assert!(!path.exists(), "std::process::exit left {}", path.display());
    }
}

#[test]
fn a_second_acquisition_in_this_process_is_refused_unless_same_pid_is_allowed() {
    let dir = TempDir::new("same-process");
    let pidfile = PidFile::new("job").dir(&dir.0);
    let guard = pidfile.acquire().unwrap();
    match pidfile.acquire() {
        Err(Error::AlreadyLocked { pid, .. }) => assert_eq!(pid, Some(Pid::current())),
        other => panic!("expected AlreadyLocked, got {other:?}"),
    }
    let shared = pidfile.clone().allow_same_pid(true).acquire().unwrap();
    assert!(!shared.owns_file());
    drop(shared);
    assert!(guard.path().exists(), "a sharing guard removes nothing");
    drop(guard);
    assert!(!pidfile.path().unwrap().exists());
}

#[test]
fn a_released_file_can_be_taken_again_while_a_reader_keeps_it_open() {
    let dir = TempDir::new("reader");
    let pidfile = PidFile::new("job").dir(&dir.0);
    for _ in 0..3 {
        let guard = pidfile.acquire().unwrap();
        // A reader that shares nothing but reading and writing, as most do.
        let reader = std::fs::File::open(guard.path()).unwrap();
        guard.release().unwrap();
        let again = pidfile.acquire().unwrap();
        drop(reader);
        drop(again);
    }
}

#[test]
fn unix_options_are_refused_with_a_clear_error() {
    let dir = TempDir::new("options");
    for (pidfile, option) in [
        (PidFile::new("job").dir(&dir.0).mode(0o600), "mode"),
        (
            PidFile::new("job").dir(&dir.0).owner(Some(0), None),
            "owner",
        ),
    ] {
        let error = pidfile.acquire().unwrap_err();
        assert!(
            matches!(&error, Error::Unsupported { option: named, .. } if *named == option),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("the pidfile option `{option}` is not supported on Windows")
        );
    }
    assert!(!dir.0.join("job.pid").exists());
}

#[test]
fn what_is_not_a_pidfile_is_refused_and_left_as_it_was() {
    let dir = TempDir::new("hostile");
    let text = "# settings\nkey = value\n";
    std::fs::write(dir.0.join("config.pid"), text).unwrap();
    std::fs::create_dir(dir.0.join("folder.pid")).unwrap();

    let config = PidFile::new("config").dir(&dir.0);
    assert!(matches!(config.acquire(), Err(Error::Unreadable { .. })));
    assert!(matches!(config.check(), Err(Error::Unreadable { .. })));
    assert_eq!(
        std::fs::read_to_string(dir.0.join("config.pid")).unwrap(),
        text
    );

    let folder = PidFile::new("folder").dir(&dir.0);
    assert!(matches!(
        folder.acquire(),
        Err(Error::NotARegularFile {
            kind: FileKind::Directory,
            ..
        })
    ));
    assert!(dir.0.join("folder.pid").is_dir());

    // A file with a second name: rewriting or removing it would change the
    // other name too.
    std::fs::write(dir.0.join("original"), "42\n").unwrap();
    std::fs::hard_link(dir.0.join("original"), dir.0.join("linked.pid")).unwrap();
    let linked = PidFile::new("linked").dir(&dir.0);
    assert!(matches!(
        linked.acquire(),
        Err(Error::NotARegularFile {
            kind: FileKind::HardLink { links: 2 },
            ..
        })
    ));
    assert_eq!(
        std::fs::read_to_string(dir.0.join("original")).unwrap(),
        "42\n"
    );

    for device in ["NUL", "con", "COM1", "lpt9.log"] {
        let error = PidFile::new(device).dir(&dir.0).acquire().unwrap_err();
        assert!(
            matches!(error, Error::InvalidName { .. }),
            "{device}: {error:?}"
        );
    }
}

#[test]
fn a_stale_file_naming_a_dead_process_is_taken_over() {
    let dir = TempDir::new("stale");
    let mut exited = Command::new(std::env::current_exe().unwrap())
        .args(["--list"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let gone = exited.id();
    exited.wait().unwrap();
    let path = dir.0.join("job.pid");
    std::fs::write(&path, format!("{gone}\n")).unwrap();
    let pidfile = PidFile::new("job").dir(&dir.0);
    assert_eq!(
        pidfile.check().unwrap(),
        Status::Stale {
            pid: Some(Pid::from_raw(gone))
        }
    );
    let guard = pidfile.acquire().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(guard);
}

/// What Python `pid` 3.0.4 does on Windows, through the same C runtime
/// calls: `open(path, "a+")` (which shares reading and writing, not
/// deletion, and starts at the end), `msvcrt.locking(fd, LK_NBLCK, 1)` at
/// that position, then a read of the first byte, which fails with `EACCES`
/// while another process locks it.
mod python_pid {
    use std::ffi::c_int;
    use std::fs::{File, OpenOptions};
    use std::os::windows::fs::OpenOptionsExt;
    use std::os::windows::io::IntoRawHandle;
    use std::path::Path;

    extern "C" {
        fn _open_osfhandle(handle: isize, flags: c_int) -> c_int;
        fn _lseek(fd: c_int, offset: i32, origin: c_int) -> i32;
        fn _locking(fd: c_int, mode: c_int, bytes: i32) -> c_int;
        fn _read(fd: c_int, buffer: *mut u8, count: u32) -> c_int;
        fn _write(fd: c_int, buffer: *const u8, count: u32) -> c_int;
        fn _chsize(fd: c_int, size: i32) -> c_int;
        fn _close(fd: c_int) -> c_int;
    }
    const SEEK_SET: c_int = 0;
    const SEEK_END: c_int = 2;
    const LK_NBLCK: c_int = 2;
    /// FILE_SHARE_READ | FILE_SHARE_WRITE, as the C runtime's `_SH_DENYNO`.
    const SHARE_READ_WRITE: u32 = 1 | 2;

    /// A C runtime descriptor on `path`, opened as `open(path, "a+")` is.
    pub(super) struct CrtFile(c_int);

    impl CrtFile {
        pub(super) fn open(path: &Path) -> CrtFile {
            let file: File = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .share_mode(SHARE_READ_WRITE)
                .open(path)
                .unwrap();
            // SAFETY: a handle we own, given to the C runtime for good.
            let fd = unsafe { _open_osfhandle(file.into_raw_handle() as isize, 0) };
            assert!(fd >= 0);
            // SAFETY: a valid descriptor.
            unsafe { _lseek(fd, 0, SEEK_END) };
            CrtFile(fd)
        }

        /// `msvcrt.locking(fd, LK_NBLCK, 1)` where the file position is.
        pub(super) fn lock_one_byte(&self) -> bool {
            // SAFETY: a valid descriptor.
            unsafe { _locking(self.0, LK_NBLCK, 1) == 0 }
        }

        /// `fh.seek(0); fh.read(16)`; `None` when the read fails (EACCES).
        pub(super) fn read_from_start(&self) -> Option<String> {
            let mut buffer = [0_u8; 16];
            // SAFETY: a valid descriptor and buffer.
            let read = unsafe {
                _lseek(self.0, 0, SEEK_SET);
                _read(self.0, buffer.as_mut_ptr(), buffer.len() as u32)
            };
            (read >= 0).then(|| String::from_utf8_lossy(&buffer[..read as usize]).into_owned())
        }

        /// `fh.seek(0); fh.truncate(); fh.write("%d\n" % pid)`.
        pub(super) fn write_pid(&self, pid: u32) {
            let text = format!("{pid}\n");
            // SAFETY: a valid descriptor and buffer.
            unsafe {
                _lseek(self.0, 0, SEEK_SET);
                assert_eq!(_chsize(self.0, 0), 0);
                assert_eq!(
                    _write(self.0, text.as_ptr(), text.len() as u32),
                    text.len() as c_int
                );
            }
        }
    }

    impl Drop for CrtFile {
        fn drop(&mut self) {
            // SAFETY: ours to close, once.
            unsafe { _close(self.0) };
        }
    }
}

#[test]
fn a_python_pid_holder_is_never_joined() {
    let dir = TempDir::new("python-holder");
    let pidfile = PidFile::new("shared").dir(&dir.0);
    let path = pidfile.path().unwrap();
    // A Python holder that created the file: it locked the first byte.
    let python = python_pid::CrtFile::open(&path);
    assert!(python.lock_one_byte());
    assert!(matches!(
        pidfile.acquire(),
        Err(Error::AlreadyLocked { pid: None, .. })
    ));
    assert_eq!(pidfile.check().unwrap(), Status::Running { pid: None });
    python.write_pid(std::process::id());
    assert!(pidfile.acquire().unwrap_err().is_busy());
    drop(python);
    // Python removes its file as it exits; this one was left, naming a live
    // process (this one) that wrote it without our lock.
    assert!(matches!(
        pidfile.acquire(),
        Err(Error::AlreadyRunning { .. })
    ));
}

#[test]
fn a_python_pid_newcomer_finds_the_holder_alive() {
    let dir = TempDir::new("python-newcomer");
    let pidfile = PidFile::new("shared").dir(&dir.0);
    let guard = pidfile.acquire().unwrap();
    let python = python_pid::CrtFile::open(guard.path());
    // It locks the byte at the end of the content, which nobody holds, then
    // reads the pid, and psutil.pid_exists finds it alive: it gives up with
    // PidFileAlreadyRunningError, touching nothing.
    assert!(python.lock_one_byte());
    assert_eq!(python.read_from_start(), Some(format!("{}\n", guard.pid())));
    drop(python);
    assert_eq!(
        std::fs::read_to_string(guard.path()).unwrap(),
        format!("{}\n", guard.pid())
    );
    guard.release().unwrap();
}

#[test]
fn the_default_directory_is_the_user_s_application_data_as_python_pid_has_it() {
    let app_data = PathBuf::from(std::env::var_os("APPDATA").expect("APPDATA is set"));
    assert_eq!(
        PidFile::new("indexer").path().unwrap(),
        app_data.join("indexer.pid")
    );
    assert_eq!(
        PidFile::new("indexer").force_tmpdir(true).path().unwrap(),
        std::env::temp_dir().join("indexer.pid")
    );
}

/// A file naming a live process that was created after the file was last
/// written cannot have been written by it: the pid was reused.
#[test]
fn a_file_naming_a_younger_process_is_stale() {
    let dir = TempDir::new("reused");
    let holder = Holder::start(&dir.0, DROP);
    let path = dir.0.join("job.pid");
    let file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut &file, format!("{}\n", holder.pid).as_bytes()).unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    file.set_modified(long_ago).unwrap();
    drop(file);

    let pidfile = PidFile::new("job").dir(&dir.0);
    assert_eq!(
        pidfile.check().unwrap(),
        Status::Stale {
            pid: Some(holder.pid)
        }
    );
    let guard = pidfile
        .acquire()
        .expect("a reused pid's file is taken over");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(guard);
    holder.end();
}

#[test]
fn set_pid_records_another_process_which_check_then_reports() {
    let dir = TempDir::new("set-pid");
    let holder = Holder::start(&dir.0, DROP);
    let pidfile = PidFile::new("supervised").dir(&dir.0);
    let mut guard = pidfile.acquire().unwrap();
    guard.set_pid(holder.pid).unwrap();
    assert_eq!(
        std::fs::read_to_string(guard.path()).unwrap(),
        format!("{}\n", holder.pid)
    );
    assert_eq!(
        pidfile.check().unwrap(),
        Status::Running {
            pid: Some(holder.pid)
        }
    );
    match pidfile.acquire() {
        Err(Error::AlreadyLocked { pid, .. }) => assert_eq!(pid, Some(holder.pid)),
        other => panic!("expected AlreadyLocked, got {other:?}"),
    }
    assert!(matches!(
        guard.set_pid(Pid::from_raw(0)),
        Err(Error::InvalidPid { .. })
    ));
    let path = guard.path().to_path_buf();
    guard.release().unwrap();
    assert!(!path.exists());
    holder.end();
}

//! Files that are not pidfiles: each gives its error and is left exactly as
//! it was, whether `acquire()` or `check()` meets it.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::{within_timeout, TempDir};
use pid_runtime::{Error, FileKind, PidFile};

/// What was at a path: enough to tell that nothing changed.
#[derive(Debug, PartialEq)]
struct Snapshot {
    kind: std::fs::FileType,
    content: Option<Vec<u8>>,
    link_target: Option<std::path::PathBuf>,
    inode: u64,
    modified: std::time::SystemTime,
}

fn snapshot(path: &Path) -> Snapshot {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::symlink_metadata(path).expect("the path still exists");
    let kind = metadata.file_type();
    Snapshot {
        kind,
        content: kind.is_file().then(|| std::fs::read(path).unwrap()),
        link_target: kind.is_symlink().then(|| std::fs::read_link(path).unwrap()),
        inode: metadata.ino(),
        modified: metadata.modified().unwrap(),
    }
}

/// Runs `acquire` and `check` on `dir/worker.pid`, each bounded by a
/// timeout, asserts both errors with `expect`, and that nothing changed.
fn assert_refused_untouched(dir: &TempDir, expect: impl Fn(&Error) -> bool) {
    let path = dir.join("worker.pid");
    let before = snapshot(&path);
    let pidfile = PidFile::new("worker").dir(dir.path());
    let acquired = within_timeout({
        let pidfile = pidfile.clone();
        move || pidfile.acquire()
    });
    let error = acquired.expect_err("a hostile file is never taken");
    assert!(expect(&error), "acquire: unexpected {error:?}");
    assert_eq!(error.path(), Some(path.as_path()), "{error}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "the message names the path: {error}"
    );
    let checked = within_timeout(move || pidfile.check());
    let error = checked.expect_err("a hostile file cannot be judged");
    assert!(expect(&error), "check: unexpected {error:?}");
    assert_eq!(snapshot(&path), before, "the file changed");
}

fn is_not_regular(kind: FileKind) -> impl Fn(&Error) -> bool {
    move |error| matches!(error, Error::NotARegularFile { kind: found, .. } if *found == kind)
}

fn is_unreadable(error: &Error) -> bool {
    matches!(error, Error::Unreadable { .. })
}

#[test]
fn symlink_to_a_file_is_not_followed() {
    let dir = TempDir::new();
    let target = dir.join("precious");
    std::fs::write(&target, "precious data\n").unwrap();
    symlink(&target, dir.join("worker.pid")).unwrap();
    assert_refused_untouched(&dir, is_not_regular(FileKind::Symlink));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious data\n");
}

#[test]
fn dangling_symlink_is_not_followed() {
    let dir = TempDir::new();
    symlink(dir.join("nowhere"), dir.join("worker.pid")).unwrap();
    assert_refused_untouched(&dir, is_not_regular(FileKind::Symlink));
    assert!(
        !dir.join("nowhere").exists(),
        "the link's target was created"
    );
}

#[test]
fn fifo_is_never_waited_on() {
    let dir = TempDir::new();
    nix::unistd::mkfifo(
        &dir.join("worker.pid"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert_refused_untouched(&dir, is_not_regular(FileKind::Fifo));
}

#[test]
fn directory_is_refused() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.join("worker.pid")).unwrap();
    std::fs::write(dir.join("worker.pid/inside"), "kept").unwrap();
    assert_refused_untouched(&dir, is_not_regular(FileKind::Directory));
    assert_eq!(
        std::fs::read(dir.join("worker.pid/inside")).unwrap(),
        b"kept"
    );
}

#[test]
fn hard_link_is_refused() {
    let dir = TempDir::new();
    let other = dir.join("other-name");
    std::fs::write(&other, "").unwrap();
    std::fs::hard_link(&other, dir.join("worker.pid")).unwrap();
    assert_refused_untouched(&dir, is_not_regular(FileKind::HardLink { links: 2 }));
}

#[test]
fn garbage_content_is_unreadable() {
    let dir = TempDir::new();
    std::fs::write(dir.join("worker.pid"), "hello, world\n").unwrap();
    assert_refused_untouched(&dir, is_unreadable);
    let error = PidFile::new("worker")
        .dir(dir.path())
        .acquire()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{} does not hold a process id (it starts with \"hello, world\\n\"); left untouched",
            dir.join("worker.pid").display()
        )
    );
}

#[test]
fn zero_is_unreadable_never_a_process_group() {
    let dir = TempDir::new();
    std::fs::write(dir.join("worker.pid"), "0\n").unwrap();
    assert_refused_untouched(&dir, is_unreadable);
}

#[test]
fn minus_one_is_unreadable_never_every_process() {
    let dir = TempDir::new();
    std::fs::write(dir.join("worker.pid"), "-1\n").unwrap();
    assert_refused_untouched(&dir, is_unreadable);
}

#[test]
fn huge_number_is_unreadable() {
    let dir = TempDir::new();
    std::fs::write(dir.join("worker.pid"), "99999999999999999999\n").unwrap();
    assert_refused_untouched(&dir, is_unreadable);
}

#[test]
fn file_in_place_of_the_directory_is_not_a_directory() {
    let dir = TempDir::new();
    let not_dir = dir.join("run");
    std::fs::write(&not_dir, "a file").unwrap();
    let error = PidFile::new("worker").dir(&not_dir).acquire().unwrap_err();
    assert!(
        matches!(&error, Error::NotADirectory { path, .. } if *path == not_dir),
        "{error:?}"
    );
    assert_eq!(std::fs::read(&not_dir).unwrap(), b"a file");
}

#[test]
fn missing_directory_is_created() {
    let dir = TempDir::new();
    let nested = dir.join("run/app");
    let guard = PidFile::new("worker").dir(&nested).acquire().unwrap();
    assert_eq!(guard.path(), nested.join("worker.pid"));
    assert!(guard.path().exists());
}

#[test]
fn invalid_names_are_refused_before_touching_the_disk() {
    let dir = TempDir::new();
    for name in ["", ".", "..", "a/b", "../escape", "nul\0byte"] {
        let error = PidFile::new(name).dir(dir.path()).acquire().unwrap_err();
        assert!(
            matches!(error, Error::InvalidName { .. }),
            "{name:?}: {error}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn mode_beyond_permission_bits_is_refused() {
    let dir = TempDir::new();
    let error = PidFile::new("worker")
        .dir(dir.path())
        .mode(0o100644)
        .acquire()
        .unwrap_err();
    assert!(
        matches!(error, Error::InvalidMode { mode: 0o100644, .. }),
        "{error}"
    );
    assert!(!dir.join("worker.pid").exists());
}

#[test]
fn longer_stale_pid_is_replaced_whole() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    // Above any pid_max, so no process has it.
    std::fs::write(&path, "2147483646\n").unwrap();
    let _guard = PidFile::new("worker").dir(dir.path()).acquire().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
}

/// A file is a pidfile only when the pid line is all of it: a blank line or
/// a stale pid followed by more text may be a configuration file given by
/// mistake, and is left byte for byte.
#[test]
fn text_after_the_first_line_is_unreadable_and_kept() {
    for content in [
        "\n# config\nkey = value\n".to_string(),
        format!("{}\ntrailing notes\n", common::dead_pid()),
        format!("{}\n\n", common::dead_pid()),
        "\r\n\r\n".to_string(),
    ] {
        let dir = TempDir::new();
        std::fs::write(dir.join("worker.pid"), &content).unwrap();
        eprintln!("case: {content:?}");
        assert_refused_untouched(&dir, is_unreadable);
        assert_eq!(
            std::fs::read_to_string(dir.join("worker.pid")).unwrap(),
            content
        );
    }
}

#[test]
fn empty_file_is_taken() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    std::fs::write(&path, "").unwrap();
    let _guard = PidFile::new("worker").dir(dir.path()).acquire().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
}

/// Contents that are not a process id, and files that are not pidfiles:
/// each gives its error from `acquire()` and `check()`, and stays exactly as
/// it was.
#[test]
fn table_of_bad_contents_and_kinds() {
    let contents: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"hello\n".to_vec()),
        ("zero", b"0\n".to_vec()),
        ("minus one", b"-1\n".to_vec()),
        ("plus sign", b"+5\n".to_vec()),
        ("leading zeros", b"0042\n".to_vec()),
        ("20 digits", b"12345678901234567890\n".to_vec()),
        ("above i32", b"2147483648\n".to_vec()),
        ("1 MiB of digits", vec![b'7'; 1 << 20]),
        ("NUL bytes", b"\0\0\0\0".to_vec()),
        ("NUL inside", b"12\x0034\n".to_vec()),
        ("invalid UTF-8", b"\xff\xfe\xfd\n".to_vec()),
        ("hex", b"0x2a\n".to_vec()),
        ("two numbers", b"42 43\n".to_vec()),
    ];
    let mut cases = 0;
    for (label, content) in contents {
        let dir = TempDir::new();
        std::fs::write(dir.join("worker.pid"), &content).unwrap();
        eprintln!("case: {label}");
        assert_refused_untouched(&dir, is_unreadable);
        cases += 1;
    }

    type Make = fn(&TempDir);
    let kinds: Vec<(&str, Make, FileKind)> = vec![
        (
            "symlink to a file",
            |dir| {
                std::fs::write(dir.join("target"), "1\n").unwrap();
                symlink(dir.join("target"), dir.join("worker.pid")).unwrap();
            },
            FileKind::Symlink,
        ),
        (
            "dangling symlink",
            |dir| {
                symlink(dir.join("missing"), dir.join("worker.pid")).unwrap();
            },
            FileKind::Symlink,
        ),
        (
            "symlink to a directory",
            |dir| {
                std::fs::create_dir(dir.join("elsewhere")).unwrap();
                symlink(dir.join("elsewhere"), dir.join("worker.pid")).unwrap();
            },
            FileKind::Symlink,
        ),
        (
            "/dev/null through a symlink",
            |dir| {
                symlink("/dev/null", dir.join("worker.pid")).unwrap();
            },
            FileKind::Symlink,
        ),
        (
            "FIFO",
            |dir| {
                nix::unistd::mkfifo(
                    &dir.join("worker.pid"),
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                )
                .unwrap();
            },
            FileKind::Fifo,
        ),
        (
            "directory",
            |dir| std::fs::create_dir(dir.join("worker.pid")).unwrap(),
            FileKind::Directory,
        ),
        (
            "socket",
            |dir| {
                // The socket file outlives the listener.
                drop(std::os::unix::net::UnixListener::bind(dir.join("worker.pid")).unwrap());
            },
            FileKind::Socket,
        ),
        (
            "hard link",
            |dir| {
                std::fs::write(dir.join("other"), "").unwrap();
                std::fs::hard_link(dir.join("other"), dir.join("worker.pid")).unwrap();
            },
            FileKind::HardLink { links: 2 },
        ),
    ];
    for (label, make, kind) in kinds {
        let dir = TempDir::new();
        make(&dir);
        eprintln!("case: {label}");
        assert_refused_untouched(&dir, is_not_regular(kind));
        cases += 1;
    }
    assert!(cases >= 20, "{cases} cases");
}

/// A line ending in CRLF is read like one ending in LF: a live pid there is
/// a running program, and the file is left alone.
#[test]
fn crlf_line_naming_a_live_process_is_already_running() {
    let dir = TempDir::new();
    let bystander = common::Bystander::spawn();
    let path = dir.join("worker.pid");
    std::fs::write(&path, format!("{}\r\n", bystander.pid())).unwrap();
    let before = snapshot(&path);
    let pidfile = PidFile::new("worker").dir(dir.path());
    let error = pidfile.acquire().unwrap_err();
    assert!(
        matches!(&error, Error::AlreadyRunning { pid, .. } if *pid == bystander.pid()),
        "{error}"
    );
    assert_eq!(
        pidfile.check().unwrap(),
        pid_runtime::Status::Running {
            pid: Some(bystander.pid())
        }
    );
    assert_eq!(snapshot(&path), before);
}

/// An unwritable directory is an error naming it; a read-only directory
/// holding a writable stale file is taken, and the file that cannot be
/// removed is reported by `release()`. Run as an unprivileged user, since
/// root may write anywhere.
#[test]
fn directories_the_user_cannot_write() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let unprivileged = nix::unistd::geteuid().is_root();
    let program = dir.join("pidfile-holder");
    std::fs::copy(env!("CARGO_BIN_EXE_pidfile-holder"), &program).unwrap();
    let spawn = || {
        common::Holder::spawn_program(&program, |command| {
            if unprivileged {
                command.uid(65534).gid(65534);
            }
        })
    };
    let sealed = dir.join("sealed");
    std::fs::create_dir(&sealed).unwrap();
    std::fs::set_permissions(&sealed, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut holder = spawn();
    let answer = holder.ask(&format!("acquire {} worker", sealed.display()));
    assert!(
        answer.starts_with(&format!(
            "err Io - cannot open {}: Permission denied",
            sealed.join("worker.pid").display()
        )),
        "{answer}"
    );

    let read_only = dir.join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    let stale = read_only.join("worker.pid");
    std::fs::write(&stale, format!("{}\n", common::dead_pid())).unwrap();
    if unprivileged {
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        nix::unistd::chown(&stale, nobody, Some(nix::unistd::Gid::from_raw(65534))).unwrap();
    }
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut holder = spawn();
    let answer = holder.ask(&format!("acquire {} worker", read_only.display()));
    assert!(
        answer.starts_with(&format!("ok {} ", holder.pid)),
        "{answer}"
    );
    let answer = holder.ask("release");
    assert!(
        answer.starts_with(&format!(
            "err Io - cannot remove {}: Permission denied",
            stale.display()
        )),
        "{answer}"
    );
    assert_eq!(
        std::fs::read_to_string(&stale).unwrap(),
        format!("{}\n", holder.pid)
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
        ..proptest::test_runner::Config::default()
    })]

    /// `check()` on arbitrary contents answers without panicking, reports
    /// text that is not a pid as `Unreadable`, and never changes the file.
    #[test]
    fn check_on_arbitrary_contents_changes_nothing(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let dir = TempDir::new();
        let path = dir.join("worker.pid");
        std::fs::write(&path, &bytes).unwrap();
        let before = snapshot(&path);
        match PidFile::new("worker").dir(dir.path()).check() {
            Ok(_) | Err(Error::Unreadable { .. }) => {}
            Err(other) => proptest::prop_assert!(false, "unexpected {other}"),
        }
        proptest::prop_assert_eq!(snapshot(&path), before);
    }
}

/// Runs `acquire` and `check` on `dir/worker.pid` as
/// [`assert_refused_untouched`] does, and asserts from inotify's `IN_OPEN`
/// events that nothing in `dir` was opened meanwhile.
fn assert_refused_unopened(dir: &TempDir, expect: impl Fn(&Error) -> bool) {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
    inotify
        .add_watch(dir.path(), AddWatchFlags::IN_OPEN)
        .unwrap();
    assert_refused_untouched(dir, expect);
    match inotify.read_events() {
        Err(nix::errno::Errno::EAGAIN) => {}
        Ok(events) => panic!("opened: {events:?}"),
        Err(error) => panic!("read inotify events: {error}"),
    }
}

/// A FIFO with a writer blocked in its open is refused without being opened:
/// opening it would complete the writer's open, and closing it would then
/// kill the writer with SIGPIPE. The writer, still waiting, delivers its line
/// to the reader that opens the FIFO afterwards.
#[test]
fn fifo_with_a_blocked_writer_is_never_opened() {
    let dir = TempDir::new();
    let fifo = dir.join("worker.pid");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let mut writer = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"echo "still waiting" > "$0""#)
        .arg(&fifo)
        .spawn()
        .unwrap();
    assert_refused_unopened(&dir, is_not_regular(FileKind::Fifo));
    let line = within_timeout(move || std::fs::read_to_string(fifo).unwrap());
    assert_eq!(line, "still waiting\n");
    assert!(writer.wait().unwrap().success());
}

/// A device node at the path is refused without being opened (opening
/// `/dev/ptmx` allocates a terminal, `/dev/watchdog` arms a reset). Needs
/// root to make the node.
#[test]
fn device_node_is_never_opened() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: making a device node needs root");
        return;
    }
    let dir = TempDir::new();
    // The node of /dev/null: harmless, should anything open it.
    nix::sys::stat::mknod(
        &dir.join("worker.pid"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::libc::makedev(1, 3),
    )
    .unwrap();
    assert_refused_unopened(&dir, is_not_regular(FileKind::CharDevice));
}

/// A socket at the path is refused without an open being tried.
#[test]
fn socket_is_never_opened() {
    let dir = TempDir::new();
    drop(std::os::unix::net::UnixListener::bind(dir.join("worker.pid")).unwrap());
    assert_refused_unopened(&dir, is_not_regular(FileKind::Socket));
}

/// A pidfile path on a kernel's pseudo file system is refused before it is
/// opened: a sysctl is a setting, and writing a pid into it changes the
/// system. `ns_last_pid` is harmless to write, should anything write it.
#[test]
fn sysctl_in_proc_is_refused_and_never_written() {
    let pidfile = PidFile::new("ns_last_pid")
        .dir("/proc/sys/kernel")
        .enforce_pid_suffix(false);
    for error in [pidfile.acquire().unwrap_err(), pidfile.check().unwrap_err()] {
        assert!(
            matches!(
                &error,
                Error::PseudoFileSystem {
                    file_system: "procfs",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("/proc/sys/kernel/ns_last_pid"),
            "{error}"
        );
    }
    let sysfs = PidFile::new("uevent_seqnum")
        .dir("/sys/kernel")
        .enforce_pid_suffix(false);
    let error = sysfs.check().unwrap_err();
    assert!(
        matches!(
            &error,
            Error::PseudoFileSystem {
                file_system: "sysfs",
                ..
            }
        ),
        "{error:?}"
    );
}

/// A small tmpfs, mounted for the test and unmounted when dropped.
struct SmallTmpfs(TempDir);

impl SmallTmpfs {
    /// One page, filled: a file can be made, not written.
    fn full() -> Option<SmallTmpfs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = TempDir::new();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4k,mode=0755", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        if !mounted.success() {
            eprintln!("skipped: cannot mount a tmpfs here");
            return None;
        }
        let fs = SmallTmpfs(dir);
        let filler = std::fs::write(fs.0.join("filler"), vec![0_u8; 1 << 16]);
        assert!(filler.is_err(), "the file system is full");
        Some(fs)
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// A write refused for lack of space leaves no file behind: the file the
/// acquisition created is removed with the error.
#[test]
fn a_full_file_system_leaves_no_empty_file() {
    let Some(fs) = SmallTmpfs::full() else { return };
    let error = PidFile::new("worker")
        .dir(fs.0.path())
        .acquire()
        .unwrap_err();
    assert!(
        matches!(&error, Error::Io { operation: "write", error, .. } if error.raw_os_error() == Some(nix::libc::ENOSPC)),
        "{error:?}"
    );
    assert!(!fs.0.join("worker.pid").exists(), "an empty file was left");
}

/// A refused change of owner removes the file the acquisition created, and
/// leaves a stale file it did not create as it was. Run as an unprivileged
/// user, who may not give a file to root.
#[test]
fn a_refused_chown_removes_the_new_file_and_keeps_an_old_one() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a helper as another user");
        return;
    }
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = dir.join("run");
    std::fs::create_dir(&run).unwrap();
    let nobody = nix::unistd::Uid::from_raw(65534);
    nix::unistd::chown(&run, Some(nobody), None).unwrap();
    let program = dir.join("pidfile-holder");
    std::fs::copy(env!("CARGO_BIN_EXE_pidfile-holder"), &program).unwrap();
    let mut holder = common::Holder::spawn_program(&program, |command| {
        command.uid(65534).gid(65534);
    });

    let answer = holder.ask(&format!("acquire {} fresh owner=0", run.display()));
    assert!(answer.starts_with("err Io - cannot chown"), "{answer}");
    assert!(!run.join("fresh.pid").exists(), "the new file was left");

    let stale = run.join("stale.pid");
    std::fs::write(&stale, format!("{}\n", common::dead_pid())).unwrap();
    nix::unistd::chown(&stale, Some(nobody), None).unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = snapshot(&stale);
    let mode_before = std::fs::metadata(&stale).unwrap().mode();
    let answer = holder.ask(&format!("acquire {} stale owner=0 mode=644", run.display()));
    assert!(answer.starts_with("err Io - cannot chown"), "{answer}");
    assert_eq!(snapshot(&stale), before);
    assert_eq!(std::fs::metadata(&stale).unwrap().mode(), mode_before);
}

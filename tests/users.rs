//! Other users: the directories on the way to a pidfile, files that belong to
//! someone else, the private temporary directory, and processes in other pid
//! namespaces. These need root to play the other user; without it each test
//! says it is skipped.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::{Holder, TempDir};
use nix::unistd::{Gid, Uid};
use pid_runtime::{Error, PidFile, Status};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: playing another user needs root");
    }
    root
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn give_to_nobody(path: &Path) {
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(Uid::from_raw(NOBODY)),
        Some(Gid::from_raw(NOBODY)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A directory made in `dir` with `mode`, like `/tmp` when `0o1777`.
fn shared_dir(dir: &TempDir, name: &str, mode: u32) -> std::path::PathBuf {
    chmod(dir.path(), 0o755);
    let shared = dir.join(name);
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, mode);
    shared
}

fn assert_insecure(pidfile: &PidFile, culprit: &Path, owner: u32) {
    for error in [pidfile.acquire().unwrap_err(), pidfile.check().unwrap_err()] {
        match &error {
            Error::InsecureDirectory {
                path, owner: found, ..
            } => {
                assert_eq!(path, culprit, "{error}");
                assert_eq!(*found, owner, "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            error.to_string().contains(&culprit.display().to_string()),
            "{error}"
        );
    }
}

#[test]
fn a_directory_of_another_user_is_refused() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new();
    let theirs = shared_dir(&dir, "theirs", 0o755);
    give_to_nobody(&theirs);
    let pidfile = PidFile::new("daemon").dir(&theirs);
    assert_insecure(&pidfile, &theirs, NOBODY);
    assert!(!theirs.join("daemon.pid").exists());
}

#[test]
fn a_directory_anyone_may_write_needs_the_sticky_bit() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new();
    let open = shared_dir(&dir, "open", 0o777);
    assert_insecure(&PidFile::new("daemon").dir(&open), &open, 0);
    let _opted_out = PidFile::new("daemon")
        .dir(&open)
        .allow_insecure_dir(true)
        .acquire()
        .unwrap();
    let sticky = shared_dir(&dir, "sticky", 0o1777);
    let _guard = PidFile::new("daemon").dir(&sticky).acquire().unwrap();
}

#[test]
fn a_directory_another_group_may_write_is_refused() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new();
    let grouped = shared_dir(&dir, "grouped", 0o775);
    nix::unistd::chown(&grouped, None, Some(Gid::from_raw(NOBODY))).unwrap();
    assert_insecure(&PidFile::new("daemon").dir(&grouped), &grouped, 0);
    let own_group = shared_dir(&dir, "own-group", 0o775);
    let _guard = PidFile::new("daemon").dir(&own_group).acquire().unwrap();
}

/// In a directory like `/tmp`, another user points a root daemon's run
/// directory at a directory of root's choosing with a symlink: refused.
#[test]
fn a_symlink_of_another_user_on_the_way_is_refused() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new();
    let tmp = shared_dir(&dir, "tmp", 0o1777);
    let precious = shared_dir(&dir, "precious", 0o755);
    let link = tmp.join("daemon-run");
    symlink(&precious, &link).unwrap();
    give_to_nobody(&link);
    assert_insecure(&PidFile::new("daemon").dir(&link), &link, NOBODY);
    assert!(!precious.join("daemon.pid").exists());

    let own_link = tmp.join("own-run");
    symlink(&precious, &own_link).unwrap();
    let guard = PidFile::new("daemon").dir(&own_link).acquire().unwrap();
    assert!(precious.join("daemon.pid").exists());
    drop(guard);
}

/// Another user's empty file in a shared directory is refused before it is
/// locked or changed, naming its owner; while that user holds it, the answer
/// is that it is held, with the holder's pid.
#[test]
fn another_user_s_file_is_refused_naming_its_owner_or_its_holder() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new();
    let tmp = shared_dir(&dir, "tmp", 0o1777);
    let path = tmp.join("daemon.pid");
    std::fs::write(&path, "").unwrap();
    chmod(&path, 0o666);
    give_to_nobody(&path);
    let pidfile = PidFile::new("daemon").dir(&tmp);
    let error = pidfile.acquire().unwrap_err();
    assert!(
        matches!(
            &error,
            Error::CannotTakeOver {
                owner: NOBODY,
                pid: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("owner uid 65534"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    assert_eq!(pidfile.check().unwrap(), Status::Stale { pid: None });
    std::fs::remove_file(&path).unwrap();

    let Some(mut theirs) = Holder::spawn_as(&dir, NOBODY) else {
        return;
    };
    theirs.acquire_path(&tmp, "daemon");
    let error = pidfile.acquire().unwrap_err();
    assert!(
        matches!(&error, Error::AlreadyLocked { pid: Some(pid), .. } if *pid == theirs.pid),
        "{error:?}"
    );
}

/// A file this user may not open for writing is still judged, read-only:
/// held (with the holder's pid), or stale and not ours to take (naming its
/// owner); never a bare "Permission denied".
#[test]
fn a_file_we_may_not_write_is_judged_read_only() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new();
    let tmp = shared_dir(&dir, "tmp", 0o1777);
    let root_s = PidFile::new("daemon").dir(&tmp).acquire().unwrap();
    let Some(mut nobody) = Holder::spawn_as(&dir, NOBODY) else {
        return;
    };
    let answer = nobody.ask(&format!("acquire {} daemon", tmp.display()));
    assert!(
        answer.starts_with(&format!(
            "err AlreadyLocked {} already running as pid",
            std::process::id()
        )),
        "{answer}"
    );

    let stale_dir = shared_dir(&dir, "stale", 0o1777);
    let stale = stale_dir.join("daemon.pid");
    let dead = common::dead_pid();
    std::fs::write(&stale, format!("{dead}\n")).unwrap();
    let answer = nobody.ask(&format!("acquire {} daemon", stale_dir.display()));
    assert!(
        answer.starts_with(&format!(
            "err CannotTakeOver - {} is stale (pid {dead} is gone or reused)",
            stale.display()
        )),
        "{answer}"
    );
    assert!(answer.contains("owner uid 0"), "{answer}");
    assert_eq!(
        std::fs::read_to_string(&stale).unwrap(),
        format!("{dead}\n")
    );
    drop(root_s);
}

/// Without a run directory, pidfiles go to the user's private directory in
/// the temporary directory, made `0700`; a squatter's directory or a symlink
/// in its place is refused.
#[test]
fn the_private_temporary_directory_is_made_and_checked() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new();
    let tmp = shared_dir(&dir, "tmp", 0o1777);
    let spawn = |uid| {
        let program = dir.join("pidfile-holder-private");
        if !program.exists() {
            std::fs::copy(env!("CARGO_BIN_EXE_pidfile-holder"), &program).unwrap();
        }
        Holder::spawn_program(&program, |command| {
            use std::os::unix::process::CommandExt;
            command.env("TMPDIR", &tmp).uid(uid).gid(uid);
        })
    };
    let mut root_s = spawn(0);
    let private = tmp.join("pidfile-0");
    let answer = root_s.ask("acquire - daemon tmp");
    assert_eq!(
        answer,
        format!("ok {} {}", root_s.pid, private.join("daemon.pid").display())
    );
    let mode = std::fs::symlink_metadata(&private)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700);

    let squatted = tmp.join(format!("pidfile-{NOBODY}"));
    std::fs::create_dir(&squatted).unwrap(); // root's, not nobody's
    let mut nobody = spawn(NOBODY);
    let answer = nobody.ask("acquire - daemon tmp");
    assert!(
        answer.starts_with(&format!(
            "err InsecureDirectory - {} is unsafe",
            squatted.display()
        )),
        "{answer}"
    );
    std::fs::remove_dir(&squatted).unwrap();
    symlink(&tmp, &squatted).unwrap();
    give_to_nobody(&squatted);
    let answer = nobody.ask("acquire - daemon tmp");
    assert!(
        answer.starts_with(&format!(
            "err InsecureDirectory - {} is unsafe",
            squatted.display()
        )),
        "{answer}"
    );
}

/// A set-user-id program ignores the `TMPDIR` of the user who runs it.
#[test]
fn a_set_user_id_program_ignores_tmpdir() {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        return;
    }
    let dir = TempDir::new();
    chmod(dir.path(), 0o755);
    let program = dir.join("pidfile-holder-setuid");
    std::fs::copy(env!("CARGO_BIN_EXE_pidfile-holder"), &program).unwrap();
    chmod(&program, 0o4755);
    let mut holder = Holder::spawn_program(&program, |command| {
        command.env("TMPDIR", dir.path()).uid(NOBODY).gid(NOBODY);
    });
    if holder.ask("euid") != "euid 0" {
        // Under an emulator registered with binfmt_misc without its
        // credentials flag, the kernel ignores the set-user-id bit.
        eprintln!("skipped: the set-user-id bit is not honoured for this executable here");
        return;
    }
    assert_eq!(
        holder.ask("path - daemon tmp"),
        "path /tmp/pidfile-0/daemon.pid"
    );
}

/// Two processes in two pid namespaces both have pid 1: with
/// `allow_same_pid`, the second is still refused, since the lock is held by
/// another process, not by this one.
#[test]
fn allow_same_pid_does_not_share_another_namespace_s_pid_1() {
    if !is_root() {
        return;
    }
    let unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .status();
    if !unshare.is_ok_and(|status| status.success()) {
        eprintln!("skipped: unshare --pid does not work here");
        return;
    }
    let dir = TempDir::new();
    let in_namespace = || {
        Holder::spawn_program(Path::new("unshare"), |command| {
            command.args([
                "--pid",
                "--fork",
                "--kill-child",
                env!("CARGO_BIN_EXE_pidfile-holder"),
            ]);
        })
    };
    let mut first = in_namespace();
    let mut second = in_namespace();
    let path = dir.join("shared.pid");
    assert_eq!(
        first.ask(&format!("acquire {} shared", dir.arg())),
        format!("ok 1 {}", path.display())
    );
    let answer = second.ask(&format!("acquire {} shared same", dir.arg()));
    assert!(
        answer.starts_with("err AlreadyLocked 1 already running as pid 1"),
        "{answer}"
    );
}

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
            "{} does not hold a process id (it starts with \"hello, world\"); left untouched",
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
fn longer_stale_content_is_cut_to_the_new_pid() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    std::fs::write(&path, format!("{}\ntrailing notes\n", common::dead_pid())).unwrap();
    let _guard = PidFile::new("worker").dir(dir.path()).acquire().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
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

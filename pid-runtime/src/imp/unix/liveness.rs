//! Whether the process a pidfile names still runs, and is the one that wrote it.

use crate::Pid;
use nix::errno::Errno;
use nix::sys::signal::kill;

/// What became of the process a pidfile names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// No such process, one that is exiting, or only its zombie.
    Dead,
    /// A process with that id started after the file was last written, so it
    /// cannot have written it: the id was reused.
    Reused,
    /// A live process that may have written the file.
    Alive,
}

/// How much later than the file's last write a process must have started to
/// count as a reuse of the id: the boot time is whole seconds and clocks step.
const START_TIME_SLACK_SECS: f64 = 1.0;

/// Whether a process (or its zombie) has this id.
pub(crate) fn exists(pid: Pid) -> bool {
    let Some(pid) = pid.to_system() else {
        return false;
    };
    // Any other answer, EPERM above all, means a process has this id.
    kill(pid, None) != Err(Errno::ESRCH)
}

/// Judges `pid` against a file last modified at `written` (seconds since the
/// epoch). `pid` must be positive: zero and negative ids address groups.
pub(crate) fn judge(pid: Pid, written: f64) -> Liveness {
    debug_assert!(pid.as_raw() > 0);
    match started_at(pid) {
        Some(Started::Ending) => Liveness::Dead,
        Some(Started::At(start)) if start > written + START_TIME_SLACK_SECS => Liveness::Reused,
        Some(Started::At(_)) => Liveness::Alive,
        // Nothing to read: no such process, no /proc here, or another user's
        // process under hidepid.
        None if exists(pid) => Liveness::Alive,
        None => Liveness::Dead,
    }
}

#[cfg_attr(
    not(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd"
    )),
    allow(dead_code)
)]
enum Started {
    /// Exiting or a zombie: a holder killed an instant ago has closed its
    /// files, so the lock is free, but is not yet gone from the table.
    Ending,
    /// Seconds since the epoch.
    At(f64),
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn started_at(pid: Pid) -> Option<Started> {
    use std::sync::OnceLock;

    static BOOT_TIME_AND_TICKS: OnceLock<Option<(u64, u64)>> = OnceLock::new();

    let mut line = [0_u8; 1024];
    let len = read_proc_file(&format!("/proc/{pid}/stat"), &mut line)?;
    let fields = parse_proc_stat(&line[..len])?;
    if fields.is_ending() && !other_thread_runs(pid) {
        return Some(Started::Ending);
    }
    let (boot_time, ticks_per_sec) = (*BOOT_TIME_AND_TICKS.get_or_init(|| {
        let boot_time = parse_boot_time(&std::fs::read("/proc/stat").ok()?)?;
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
        Some((boot_time, u64::try_from(ticks).ok().filter(|&t| t > 0)?))
    }))?;
    Some(Started::At(
        boot_time as f64 + fields.start_ticks as f64 / ticks_per_sec as f64,
    ))
}

/// Reads a small `/proc` file in one `read`: the kernel makes its whole
/// text at each read, so the growing reads of `std::fs::read` cost several
/// times as much. The fields judged here come well before 1 KiB.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_proc_file(path: &str, buffer: &mut [u8]) -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    loop {
        match file.read(buffer) {
            Ok(len) => return Some(len),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Whether a thread other than the main one still runs: a process whose
/// main thread has called `pthread_exit` shows as a zombie, and lives on in
/// its other threads.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn other_thread_runs(pid: Pid) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let main_thread = pid.to_string();
    tasks.flatten().any(|task| {
        let tid = task.file_name();
        tid.to_str() != Some(main_thread.as_str())
            && task.path().to_str().is_some_and(|task| {
                let mut line = [0_u8; 1024];
                read_proc_file(&format!("{task}/stat"), &mut line)
                    .and_then(|len| parse_proc_stat(&line[..len]))
                    .is_some_and(|fields| !fields.is_ending())
            })
    })
}

/// macOS: the kernel's BSD record of the process, from `proc_pidinfo`.
#[cfg(target_vendor = "apple")]
fn started_at(pid: Pid) -> Option<Started> {
    use nix::libc;
    let pid = pid.to_system()?.as_raw();
    // SAFETY: a zeroed plain C struct for the kernel to fill.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: a buffer of `size` bytes that lives for the call.
    let filled = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            std::ptr::from_mut(&mut info).cast(),
            size,
        )
    };
    if filled != size {
        return None;
    }
    if info.pbi_status == libc::SZOMB {
        return Some(Started::Ending);
    }
    Some(Started::At(
        info.pbi_start_tvsec as f64 + info.pbi_start_tvusec as f64 / 1e6,
    ))
}

/// FreeBSD: the process's `kinfo_proc`, from `sysctl kern.proc.pid`.
#[cfg(target_os = "freebsd")]
fn started_at(pid: Pid) -> Option<Started> {
    use nix::libc;
    let mut name = [
        libc::CTL_KERN,
        libc::KERN_PROC,
        libc::KERN_PROC_PID,
        pid.to_system()?.as_raw(),
    ];
    // SAFETY: a zeroed plain C struct for the kernel to fill.
    let mut info: libc::kinfo_proc = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::kinfo_proc>();
    // SAFETY: a name of 4 integers, and a buffer of `len` bytes that lives
    // for the call; nothing is written.
    let read = unsafe {
        libc::sysctl(
            name.as_mut_ptr(),
            name.len() as libc::c_uint,
            std::ptr::from_mut(&mut info).cast(),
            &mut len,
            std::ptr::null(),
            0,
        )
    };
    if read != 0 || len != std::mem::size_of::<libc::kinfo_proc>() {
        return None;
    }
    if info.ki_stat == libc::SZOMB {
        return Some(Started::Ending);
    }
    Some(Started::At(
        info.ki_start.tv_sec as f64 + info.ki_start.tv_usec as f64 / 1e6,
    ))
}

/// Elsewhere (NetBSD, OpenBSD, DragonFly, illumos) there is no start time
/// to read yet: a live id is taken at its word, so a reused pid is refused
/// rather than taken over.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
fn started_at(_pid: Pid) -> Option<Started> {
    None
}

/// The kernel's flag for a task that has begun to exit (`PF_EXITING`).
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
const PF_EXITING: u64 = 0x4;

#[derive(Debug, PartialEq, Eq)]
struct ProcStat {
    /// Field 3.
    state: u8,
    /// Field 9, the kernel's task flags.
    flags: u64,
    /// Field 22, clock ticks after boot.
    start_ticks: u64,
}

#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
impl ProcStat {
    /// Exiting, a zombie, or dead.
    fn is_ending(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x') || self.flags & PF_EXITING != 0
    }
}

/// The fields of a `/proc/<pid>/stat` line that tell whether it is ending and
/// when it started. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn parse_proc_stat(line: &[u8]) -> Option<ProcStat> {
    let after_name = &line[line.iter().rposition(|&byte| byte == b')')? + 1..];
    let mut fields = after_name
        .split(|byte| byte.is_ascii_whitespace())
        .filter(|field| !field.is_empty());
    let number = |field: &[u8]| std::str::from_utf8(field).ok()?.parse::<u64>().ok();
    let state = *fields.next()?.first()?;
    let flags = number(fields.nth(5)?)?;
    let start_ticks = number(fields.nth(12)?)?;
    Some(ProcStat {
        state,
        flags,
        start_ticks,
    })
}

/// The `btime` line of `/proc/stat`: boot time in seconds since the epoch.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn parse_boot_time(proc_stat: &[u8]) -> Option<u64> {
    proc_stat
        .split(|&byte| byte == b'\n')
        .find_map(|line| line.strip_prefix(b"btime "))
        .and_then(|value| std::str::from_utf8(value).ok()?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_counted_from_the_last_parenthesis() {
        let line = b"4242 (we(ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(
            parse_proc_stat(line),
            Some(ProcStat {
                state: b'S',
                flags: 4194560,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_proc_stat(b"4242 (x) Z 1"), None);
        assert_eq!(parse_proc_stat(b"no parenthesis"), None);
    }

    #[test]
    fn boot_time_is_read_from_btime() {
        let proc_stat = b"cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(parse_boot_time(proc_stat), Some(1_700_000_000));
        assert_eq!(parse_boot_time(b"cpu 1\n"), None);
    }

    #[test]
    fn this_process_is_alive_for_a_file_written_now() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert_eq!(judge(Pid::current(), now), Liveness::Alive);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reuses_an_id_written_before_it_started() {
        assert_eq!(judge(Pid::current(), 0.0), Liveness::Reused);
    }
}

//! Readiness for service managers: systemd's `NOTIFY_SOCKET` datagrams and
//! the notification descriptor of s6 and OpenRC.
//!
//! Under systemd with the default `NotifyAccess=main`, only `pidfile`, the
//! main process, may speak: the command gets a socket of `pidfile`'s own as
//! its `NOTIFY_SOCKET`, and each datagram it sends, with any descriptor it
//! passes (`sd_notify_barrier`'s pipe), is sent on to systemd by `pidfile`
//! as it came. With `--ready started`, `pidfile` says `READY=1` itself once
//! it holds the lock and the command runs. Either way, readiness cannot come
//! before the lock: the command starts only once it is held.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};

/// Where systemd listens, from `NOTIFY_SOCKET`, and pidfile's socket for the
/// command.
pub(crate) struct Relay {
    systemd: UnixAddr,
    out: UnixDatagram,
    ours: Option<(UnixDatagram, OsString)>,
}

impl Relay {
    /// The relay when `NOTIFY_SOCKET` is set (and names a socket path or an
    /// abstract name); `relay_command` makes a socket for the command.
    pub(crate) fn from_env(relay_command: bool) -> std::io::Result<Option<Relay>> {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let systemd = address(&name)?;
        let out = UnixDatagram::unbound()?;
        let ours = if relay_command {
            let (socket, name) = bind_own()?;
            Some((socket, name))
        } else {
            None
        };
        Ok(Some(Relay { systemd, out, ours }))
    }

    /// The `NOTIFY_SOCKET` the command gets.
    pub(crate) fn command_socket(&self) -> Option<&OsString> {
        self.ours.as_ref().map(|(_, name)| name)
    }

    /// Sends `message` to systemd as pidfile.
    pub(crate) fn say(&self, message: &[u8]) -> std::io::Result<()> {
        self.send(message, &[])
    }

    fn send(&self, message: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
        let iov = [std::io::IoSlice::new(message)];
        let rights = [ControlMessage::ScmRights(fds)];
        let control: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        sendmsg(
            self.out.as_raw_fd(),
            &iov,
            control,
            MsgFlags::empty(),
            Some(&self.systemd),
        )?;
        Ok(())
    }

    /// Passes on, on a thread of its own, every datagram the command sends,
    /// with the descriptors it carries, for as long as pidfile runs.
    pub(crate) fn relay_in_background(self) {
        let Some((socket, _)) = self.ours.as_ref() else {
            return;
        };
        let socket = socket.try_clone().expect("clone the notify socket");
        std::thread::spawn(move || {
            let mut buffer = vec![0_u8; 64 * 1024];
            loop {
                let Ok((len, fds)) = receive(std::os::fd::AsFd::as_fd(&socket), &mut buffer) else {
                    return;
                };
                let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
                let _ = self.send(&buffer[..len], &raw);
                // Our copies go now: a barrier is passed once systemd has
                // closed its copy, and the command's own is closed.
                drop(fds);
            }
        });
    }
}

fn receive(socket: BorrowedFd<'_>, buffer: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    use std::os::fd::FromRawFd;
    let mut iov = [std::io::IoSliceMut::new(buffer)];
    let mut control = nix::cmsg_space!([RawFd; 16]);
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        receive_flags(),
    )?;
    let mut fds = Vec::new();
    for control in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = control {
            // SAFETY: descriptors the kernel just installed for us alone.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((message.bytes, fds))
}

/// Descriptors received close-on-exec where the system can; elsewhere the
/// relay closes them as soon as they are passed on, and pidfile starts no
/// program once the relay runs.
fn receive_flags() -> MsgFlags {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    return MsgFlags::MSG_CMSG_CLOEXEC;
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    )))]
    return MsgFlags::empty();
}

/// `/path` or `@abstract`, as systemd writes `NOTIFY_SOCKET`.
fn address(name: &OsString) -> std::io::Result<UnixAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    let address = match bytes.first() {
        Some(b'/') => UnixAddr::new(PathBuf::from(name).as_path()),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => UnixAddr::new_abstract(&bytes[1..]),
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("NOTIFY_SOCKET={name:?} is neither a path nor an abstract name"),
            ))
        }
    };
    address.map_err(std::io::Error::from)
}

/// A socket of pidfile's own for the command: an abstract name on Linux,
/// which leaves no file behind.
fn bind_own() -> std::io::Result<(UnixDatagram, OsString)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        let name = format!("pidfile-notify-{}-{}", std::process::id(), nonce());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let socket = UnixDatagram::bind_addr(&address)?;
        Ok((socket, OsString::from(format!("@{name}"))))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let dir =
            std::env::temp_dir().join(format!("pidfile-notify-{}-{}", std::process::id(), nonce()));
        let socket = UnixDatagram::bind(&dir)?;
        Ok((socket, dir.into_os_string()))
    }
}

fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// The descriptor s6 (`notification-fd`) and OpenRC (`notify=fd:N`) read:
/// a newline on it says the service is ready.
pub(crate) fn write_ready_to_fd(fd: RawFd) -> std::io::Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: the service manager opened this descriptor for us to write
    // and close; nothing else in pidfile uses it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    std::io::Write::write_all(&mut &file, b"\n")
}

/// Keeps the command from inheriting `fd` (pidfile writes on it alone).
pub(crate) fn keep_from_command(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: F_SETFD on a descriptor number; a wrong one fails with EBADF.
    let set = unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC) };
    nix::errno::Errno::result(set)
        .map(drop)
        .map_err(std::io::Error::from)
}

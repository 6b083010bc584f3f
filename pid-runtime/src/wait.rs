//! Waiting for a pidfile to change hands without polling: on Linux an
//! inotify watch on its directory wakes the waiter when the file is removed,
//! replaced, created or closed; elsewhere, and should a change slip between
//! two looks, short sleeps.

use std::path::Path;
use std::time::{Duration, Instant};

/// The longest sleep between two looks: what a change that no event
/// announced can cost, and the pace of looks where there is no inotify.
const LONGEST_PAUSE: Duration = Duration::from_millis(25);

/// Wakes its owner when something happens at a path. Used by one thread.
pub(crate) struct Watch {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    watched: Option<inotify::Watched>,
    /// The next pause when there are no events to wait for.
    pause: Duration,
}

impl Watch {
    /// Watches `path`; without inotify (or a directory to watch), waits by
    /// sleeping.
    pub(crate) fn new(path: &Path) -> Watch {
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = path;
        Watch {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            watched: inotify::Watched::new(path),
            pause: Duration::from_millis(1),
        }
    }

    /// Forgets what happened so far, such as the opening and closing that
    /// the owner's own look just made.
    pub(crate) fn forget(&mut self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(watched) = &self.watched {
            watched.forget();
        }
    }

    /// Waits for something to happen to the file, for at most the time left
    /// before `deadline` (for ever when `None`) and at most
    /// [`LONGEST_PAUSE`]. False when the deadline has passed.
    pub(crate) fn wait(&mut self, deadline: Option<Instant>) -> bool {
        let left = match deadline {
            None => Duration::MAX,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return false,
            },
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(watched) = &self.watched {
            watched.wait(left.min(LONGEST_PAUSE));
            return true;
        }
        let pause = self.pause.min(left);
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        std::thread::sleep(pause);
        true
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod inotify {
    use std::cell::RefCell;
    use std::ffi::OsString;
    use std::os::fd::AsFd;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

    thread_local! {
        /// One inotify instance per thread, kept for the thread's life:
        /// closing one waits for the kernel's grace period (some 10 ms),
        /// which would land on every handoff; removing a watch does not.
        static INOTIFY: RefCell<Option<Inotify>> = RefCell::new(
            Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok(),
        );
    }

    /// A watch of this thread's inotify on a pidfile's directory, removed
    /// when dropped.
    pub(super) struct Watched {
        watch: WatchDescriptor,
        name: OsString,
    }

    impl Watched {
        pub(super) fn new(path: &Path) -> Option<Watched> {
            let dir = path.parent()?;
            // A release unlinks the file (this library, Python pid) or
            // closes the last descriptor (flock(1), a holder that died); a
            // new holder creates or renames one. Opening and reading are not
            // watched: every look makes them.
            let changes = AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_ATTRIB
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_CLOSE_NOWRITE
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF
                | AddWatchFlags::IN_ONLYDIR;
            let watch = with(|inotify| inotify.add_watch(dir, changes).ok())??;
            let watched = Watched {
                watch,
                name: path.file_name()?.to_os_string(),
            };
            // What came before this watch (the last one's leftovers).
            watched.forget();
            Some(watched)
        }

        pub(super) fn forget(&self) {
            with(|inotify| while inotify.read_events().is_ok_and(|events| !events.is_empty()) {});
        }

        /// Waits at most `most` for an event about the file.
        pub(super) fn wait(&self, most: Duration) {
            let deadline = Instant::now() + most;
            with(|inotify| loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let timeout =
                    PollTimeout::try_from(left.as_millis().max(1)).unwrap_or(PollTimeout::MAX);
                let mut ready = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
                match poll(&mut ready, timeout) {
                    Ok(0) => return,
                    Ok(_) => {
                        let events = inotify.read_events().unwrap_or_default();
                        if events.iter().any(|event| {
                            event.wd == self.watch
                                && event.name.as_deref().is_none_or(|name| name == self.name)
                        }) {
                            return;
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return,
                }
                if Instant::now() >= deadline {
                    return;
                }
            });
        }
    }

    impl Drop for Watched {
        fn drop(&mut self) {
            with(|inotify| {
                let _ = inotify.rm_watch(self.watch);
            });
        }
    }

    fn with<T>(work: impl FnOnce(&Inotify) -> T) -> Option<T> {
        INOTIFY
            .try_with(|inotify| inotify.borrow().as_ref().map(work))
            .ok()
            .flatten()
    }
}

//! Removing held pidfiles when the process ends without dropping its guards:
//! on `exit` (an `atexit` handler) and on SIGTERM (a signal handler).
//!
//! A SIGTERM that arrives while a thread is between creating a file and
//! registering it, or between unregistering a file and unlinking it, is
//! deferred until the last such thread is done, and `exit` waits for such
//! threads, so no file is ever left behind by a well-timed SIGTERM or
//! `exit` (see [`Critical`]).
//!
//! Held files are kept in a lock-free table of slots, so the signal handler can
//! walk it without taking a lock or allocating. A slot holds a pointer to an
//! [`Entry`]; whoever takes the pointer out of the slot (the guard releasing,
//! or a handler at the end) owns the entry, so it is never read after it is
//! freed and never cleaned up twice.

use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use nix::libc;

use crate::{Pid, TermSignal};

/// A held pidfile, as the handlers need it: a ready C path and the identity
/// of the locked inode, so that a file someone put in its place is spared.
pub(crate) struct Entry {
    pub(crate) path: CString,
    pub(crate) dev: libc::dev_t,
    pub(crate) ino: libc::ino_t,
    /// The process that holds it; a forked child must not remove it.
    pub(crate) pid: Pid,
}

const SLOTS_PER_CHUNK: usize = 16;

struct Chunk {
    slots: [AtomicPtr<Entry>; SLOTS_PER_CHUNK],
    /// Chunks are added when all slots are taken and never freed.
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    const fn new() -> Chunk {
        Chunk {
            slots: [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS_PER_CHUNK],
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn next(&self) -> Option<&'static Chunk> {
        // SAFETY: a non-null `next` points at a leaked, never freed Chunk.
        unsafe { self.next.load(Ordering::Acquire).as_ref() }
    }
}

static TABLE: Chunk = Chunk::new();

/// A held pidfile's place in the table.
pub(crate) struct Registration {
    slot: &'static AtomicPtr<Entry>,
    entry: *mut Entry,
}

// SAFETY: `entry` is only dereferenced by whoever takes it out of `slot`,
// which happens once; the pointer itself is just an identity to compare.
unsafe impl Send for Registration {}
// SAFETY: as above; `&Registration` gives no access to the entry.
unsafe impl Sync for Registration {}

impl Registration {
    /// Takes the entry back from the table. `None` when a handler at process
    /// end has taken it and is removing the file: then the caller must leave
    /// the file and its descriptor alone.
    pub(crate) fn unregister(self) -> Option<Box<Entry>> {
        let entry = self
            .slot
            .compare_exchange(
                self.entry,
                ptr::null_mut(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .ok()
            // SAFETY: we took the pointer out of the slot, so no one else
            // holds it; it came from Box::into_raw in `register`.
            .map(|entry| unsafe { Box::from_raw(entry) })?;
        let held = HeldFile {
            dev: entry.dev,
            ino: entry.ino,
            pid: entry.pid,
        };
        let mut held_here = held_here();
        if let Some(index) = held_here.iter().position(|file| *file == held) {
            held_here.swap_remove(index);
        }
        drop(held_here);
        Some(entry)
    }
}

/// The identity of a file that this process holds through a guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeldFile {
    dev: libc::dev_t,
    ino: libc::ino_t,
    pid: Pid,
}

/// The files this process holds, for telling its own holdings from another
/// process's that happens to have the same pid (in another pid namespace).
/// Outside signal handlers only.
static HELD_HERE: Mutex<Vec<HeldFile>> = Mutex::new(Vec::new());

fn held_here() -> std::sync::MutexGuard<'static, Vec<HeldFile>> {
    HELD_HERE
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

/// Whether this very process holds the file through one of its guards.
pub(crate) fn holds(dev: libc::dev_t, ino: libc::ino_t, pid: Pid) -> bool {
    held_here().contains(&HeldFile { dev, ino, pid })
}

/// Puts `entry` in the table, so the file is removed if the process calls
/// `exit` or dies of SIGTERM while holding it.
pub(crate) fn register(entry: Entry, term_signal: TermSignal) -> Registration {
    install_handlers(term_signal);
    held_here().push(HeldFile {
        dev: entry.dev,
        ino: entry.ino,
        pid: entry.pid,
    });
    let entry = Box::into_raw(Box::new(entry));
    let mut chunk: &'static Chunk = &TABLE;
    loop {
        for slot in &chunk.slots {
            if slot
                .compare_exchange(ptr::null_mut(), entry, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return Registration { slot, entry };
            }
        }
        chunk = match chunk.next() {
            Some(next) => next,
            None => {
                let new: &'static Chunk = Box::leak(Box::new(Chunk::new()));
                match chunk.next.compare_exchange(
                    ptr::null_mut(),
                    ptr::from_ref(new).cast_mut(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => new,
                    // Another thread added one first; this one stays unused.
                    Err(other) => {
                        // SAFETY: `other` is a leaked Chunk, as above.
                        unsafe { &*other }
                    }
                }
            }
        };
    }
}

/// Removes the file of `entry` if it is still the inode that was locked.
/// Async-signal-safe: two system calls on a ready C string.
pub(crate) fn remove_if_same(entry: &Entry) -> Result<bool, nix::Error> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid C string and a buffer of the right size.
    if unsafe { libc::lstat(entry.path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return match nix::Error::last() {
            nix::Error::ENOENT => Ok(false),
            error => Err(error),
        };
    }
    // SAFETY: lstat succeeded and filled the buffer.
    let stat = unsafe { stat.assume_init() };
    if stat.st_dev != entry.dev || stat.st_ino != entry.ino {
        return Ok(false);
    }
    // SAFETY: a valid C string.
    if unsafe { libc::unlink(entry.path.as_ptr()) } != 0 {
        return match nix::Error::last() {
            nix::Error::ENOENT => Ok(false),
            error => Err(error),
        };
    }
    Ok(true)
}

/// Takes every entry out of the table and removes the files this process
/// holds. Async-signal-safe: atomics, `getpid`, `lstat`, `unlink`.
fn remove_all() {
    // SAFETY: getpid has no preconditions. The cached id is not used: a
    // child made by a raw clone would otherwise remove its parent's files.
    let me = Pid::from_raw(unsafe { libc::getpid() } as u32);
    let mut chunk = Some(&TABLE);
    while let Some(current) = chunk {
        for slot in &current.slots {
            let entry = slot.swap(ptr::null_mut(), Ordering::SeqCst);
            // SAFETY: taken out of the slot, so ours alone; never freed here,
            // as the process is ending and a guard may still compare it.
            if let Some(entry) = unsafe { entry.as_ref() } {
                if entry.pid == me {
                    let _ = remove_if_same(entry);
                }
            }
        }
        chunk = current.next();
    }
}

/// How long `exit` waits for acquisitions and releases under way in other
/// threads; each takes microseconds unless the system stalls it.
const EXIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

extern "C" fn remove_all_at_exit() {
    // Other threads go on running until the process ends: hold off new
    // acquisitions and releases, and let those under way finish, so that
    // no file is created after the table was emptied.
    EXITING.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + EXIT_PATIENCE;
    while in_flight(STRETCHES.load(Ordering::SeqCst)) > 0 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    remove_all();
}

/// How many threads are now between creating a file and registering it, or
/// between unregistering it and unlinking it, and, in [`TERMINATING`], whether
/// the SIGTERM handler ran. One word, so that whoever brings the count to
/// zero after the handler, or the handler finding it zero, knows it in the
/// same atomic step: with two, a thread could count itself out, be
/// interrupted by the handler while others came in, and then read the flag
/// and remove files from under them.
static STRETCHES: AtomicUsize = AtomicUsize::new(0);
/// The bit of [`STRETCHES`] the SIGTERM handler sets.
const TERMINATING: usize = 1 << (usize::BITS - 1);

fn in_flight(stretches: usize) -> usize {
    stretches & !TERMINATING
}

/// Set by whoever removes the files and raises SIGTERM, which happens once.
static FINISHING: AtomicBool = AtomicBool::new(false);
/// Set by the `exit` handler: the process is ending.
static EXITING: AtomicBool = AtomicBool::new(false);

/// A stretch of an acquisition or a release during which the table does not
/// yet, or no longer, know a file that exists. A SIGTERM handled meanwhile
/// is finished by the last thread to leave such a stretch, once the file is
/// registered (and is removed) or unlinked; `exit` waits for the stretches
/// under way, and a stretch that would start after either waits for the
/// process to end. Costs three atomic operations.
pub(crate) struct Critical(());

impl Critical {
    pub(crate) fn enter() -> Critical {
        let before = STRETCHES.fetch_add(1, Ordering::SeqCst);
        if before & TERMINATING != 0 || EXITING.load(Ordering::SeqCst) {
            // A handler may have seen no one in flight and be removing
            // files now: touch nothing, and wait for the process to end.
            leave();
            loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            }
        }
        Critical(())
    }
}

impl Drop for Critical {
    fn drop(&mut self) {
        leave();
    }
}

fn leave() {
    if STRETCHES.fetch_sub(1, Ordering::SeqCst) == TERMINATING | 1 {
        finish_termination();
    }
}

/// Removes the held files and dies of SIGTERM. Async-signal-safe.
fn finish_termination() {
    if FINISHING.swap(true, Ordering::SeqCst) {
        return;
    }
    remove_all();
    // SAFETY: signal, pthread_sigmask and raise are async-signal-safe.
    // SIGTERM is unblocked in this thread (in the handler, or in a thread
    // that blocks it), so the raised one is delivered at once with its
    // default action: the process dies of SIGTERM, as its parent expects.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        let mut term: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut term);
        libc::sigaddset(&mut term, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &term, ptr::null_mut());
        libc::raise(libc::SIGTERM);
    }
}

extern "C" fn remove_all_on_sigterm(_signal: libc::c_int) {
    if !is_installed() {
        // The program installed its own handler over ours and calls us as
        // its previous one: the shutdown is the program's, and its guards
        // remove the files as they drop.
        return;
    }
    if in_flight(STRETCHES.fetch_or(TERMINATING, Ordering::SeqCst)) == 0 {
        finish_termination();
    }
}

/// Whether SIGTERM's disposition is still our handler.
fn is_installed() -> bool {
    // SAFETY: sigaction only reads the disposition into a zeroed struct.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above; a null new action changes nothing.
    let read = unsafe { libc::sigaction(libc::SIGTERM, ptr::null(), &mut current) };
    read == 0 && current.sa_sigaction == handler_address()
}

fn handler_address() -> libc::sighandler_t {
    remove_all_on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t
}

const HANDLER_UNDECIDED: u8 = 0;
const HANDLER_INSTALLED: u8 = 1;
const HANDLER_DECLINED: u8 = 2;

static SIGTERM_HANDLER: AtomicU8 = AtomicU8::new(HANDLER_UNDECIDED);
static SIGTERM_INSTALL: Mutex<()> = Mutex::new(());
static ATEXIT: Once = Once::new();

fn install_handlers(term_signal: TermSignal) {
    ATEXIT.call_once(|| {
        // SAFETY: registers a function that only touches the table. If it
        // cannot be registered, files are still removed by their guards.
        unsafe { libc::atexit(remove_all_at_exit) };
    });
    let replace = match term_signal {
        TermSignal::Never => return,
        TermSignal::Auto => false,
        TermSignal::Always => true,
    };
    let settled = |state| state == HANDLER_INSTALLED || (state == HANDLER_DECLINED && !replace);
    // After the first decision this is one atomic load per acquisition.
    if settled(SIGTERM_HANDLER.load(Ordering::Acquire)) {
        return;
    }
    let _lock = SIGTERM_INSTALL
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    if settled(SIGTERM_HANDLER.load(Ordering::Acquire)) {
        return;
    }
    let state = if install_sigterm_handler(replace) {
        HANDLER_INSTALLED
    } else {
        HANDLER_DECLINED
    };
    SIGTERM_HANDLER.store(state, Ordering::Release);
}

/// Installs the handler when SIGTERM has its default action, or always when
/// `replace` says so. True when installed.
fn install_sigterm_handler(replace: bool) -> bool {
    // SAFETY: sigaction with a zeroed struct and a valid handler address; the
    // handler is async-signal-safe.
    unsafe {
        if !replace {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGTERM, ptr::null(), &mut current) != 0
                || current.sa_sigaction != libc::SIG_DFL
            {
                return false;
            }
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler_address();
        // A SIGTERM deferred past an acquisition returns to the program:
        // its system calls go on rather than fail with EINTR.
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, ptr::null_mut()) == 0
    }
}

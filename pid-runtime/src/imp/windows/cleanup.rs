//! Removing held pidfiles when the process ends without dropping its guards:
//! at `exit` (a TLS callback, which Windows runs as the process ends) and on
//! console events (Ctrl+C, Ctrl+Break, closing the console, log-off and
//! shutdown), where Windows lets a process clean up before it is ended.
//!
//! One table, behind one lock, lists the files this process holds. An
//! acquisition keeps the lock from opening the file until it is listed, and
//! a release from unlisting it until it is removed, so a console event that
//! arrives meanwhile waits, then finds every file it must remove.

use std::ffi::c_void;
use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::windows::io::{FromRawHandle, IntoRawHandle, RawHandle};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
use windows_sys::Win32::System::SystemServices::DLL_PROCESS_DETACH;

use super::file;
use crate::{Error, Pid, TermSignal};

/// A file this process holds, as the handlers need it.
struct Entry {
    path: PathBuf,
    /// The held handle, which stays open while it is listed.
    handle: usize,
    /// Whether a console event removes it ([`TermSignal::Never`] says no).
    on_console: bool,
}

/// The files this process holds.
pub(crate) struct Table(Vec<Entry>);

static TABLE: Mutex<Table> = Mutex::new(Table(Vec::new()));

/// Takes the table's lock, for an acquisition's whole attempt.
pub(crate) fn table() -> MutexGuard<'static, Table> {
    TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Table {
    /// Whether this process already holds the file `info` describes.
    pub(crate) fn holds(&self, info: &file::Info) -> bool {
        self.0.iter().any(|entry| {
            let held = borrowed(entry.handle);
            file::Info::of(&held).is_ok_and(|held| held.same_file(info))
        })
    }

    /// Lists a file this process now holds.
    pub(crate) fn register(&mut self, path: &Path, file: File, term_signal: TermSignal) -> Held {
        if term_signal != TermSignal::Never {
            install_console_handler();
        }
        let handle = file.into_raw_handle() as usize;
        self.0.push(Entry {
            path: path.to_path_buf(),
            handle,
            on_console: term_signal != TermSignal::Never,
        });
        Held { handle }
    }
}

/// The handle of `entry`, not closed when dropped.
fn borrowed(handle: usize) -> ManuallyDrop<File> {
    // SAFETY: a listed handle stays open until it is unlisted.
    ManuallyDrop::new(unsafe { File::from_raw_handle(handle as RawHandle) })
}

/// What a guard holds on Windows: the open, locked file, listed in the table.
#[derive(Debug)]
pub(crate) struct Held {
    handle: usize,
}

impl Held {
    /// Records `pid` in the file.
    pub(crate) fn write_pid(&mut self, path: &Path, pid: Pid) -> Result<(), Error> {
        file::write_pid(&borrowed(self.handle), pid)
            .map_err(|error| Error::io(path, "write", error))
    }

    /// Removes the file, then closes it.
    pub(crate) fn release(self, path: &Path) -> Result<(), Error> {
        let mut table = table();
        let Some(index) = table.0.iter().position(|entry| entry.handle == self.handle) else {
            // A console handler took it and removes the file; the process
            // is ending.
            return Ok(());
        };
        let entry = table.0.swap_remove(index);
        // SAFETY: the handle was listed, so it is open and ours to close.
        let held = unsafe { File::from_raw_handle(entry.handle as RawHandle) };
        // Removed before it is closed: while it is locked, nobody else can
        // have put a file at this path.
        let removed = file::remove(path, &held).map_err(|error| Error::io(path, "remove", error));
        drop(held);
        removed.map(drop)
    }
}

/// Removes every listed file that `which` selects, leaving the handles open:
/// the process is ending.
fn remove_all(table: &mut Table, which: impl Fn(&Entry) -> bool) {
    table.0.retain(|entry| {
        if !which(entry) {
            return true;
        }
        let _ = file::remove(&entry.path, &borrowed(entry.handle));
        false
    });
}

fn install_console_handler() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: the handler is a plain function that lives for ever.
        unsafe { SetConsoleCtrlHandler(Some(on_console_event), 1) };
    });
}

/// Runs in a thread of its own when a console event arrives. Handlers
/// installed later run first, and one that handles the event (a program's
/// own shutdown) keeps this one from running at all.
unsafe extern "system" fn on_console_event(_event: u32) -> i32 {
    remove_all(&mut table(), |entry| entry.on_console);
    // Not handled: the next handler, or the default one, ends the process.
    0
}

/// Windows calls this with `DLL_PROCESS_DETACH` when the process ends by
/// `exit` (other threads are gone by then), but not when it is terminated.
unsafe extern "system" fn on_tls_event(_module: *mut c_void, reason: u32, _reserved: *mut c_void) {
    if reason == DLL_PROCESS_DETACH {
        // A thread that was ended while it held the lock left it locked.
        if let Ok(mut table) = TABLE.try_lock() {
            remove_all(&mut table, |_| true);
        }
    }
}

#[used]
#[link_section = ".CRT$XLP"]
static ON_PROCESS_END: unsafe extern "system" fn(*mut c_void, u32, *mut c_void) = on_tls_event;

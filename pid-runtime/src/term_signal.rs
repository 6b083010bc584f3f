//! What happens to held pidfiles when the process is asked to terminate.

/// Whether a SIGTERM handler removes held pidfiles before the process dies.
///
/// The handler removes the files this process holds, restores SIGTERM's
/// default action and raises it again, so the process still dies of SIGTERM
/// as its parent expects. It is installed once per process, at the first
/// acquisition that asks for it.
///
/// A program or runtime that installs its own SIGTERM handler later
/// (`tokio::signal`, signal-hook, ctrlc) takes over: when that handler calls
/// ours as "the previous handler", ours does nothing, the program's own
/// shutdown runs, and its guards remove the files as they drop.
///
/// # Windows
///
/// Windows has no SIGTERM; the handler is a console control handler, which
/// removes the files on Ctrl+C, Ctrl+Break, closing the console, log-off and
/// shutdown, then lets the process end as it would have. Console handlers
/// chain by themselves: one that a program installs later runs first, and
/// when it handles the event, the program's own shutdown runs and its
/// guards remove the files. So [`Auto`](TermSignal::Auto) and
/// [`Always`](TermSignal::Always) both install it, and
/// [`Never`](TermSignal::Never) leaves the files to the guards.
/// `TerminateProcess` (`taskkill /F`) ends a process with no handler at all:
/// the file stays, unlocked, and is taken over as stale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TermSignal {
    /// Install the handler only when SIGTERM has its default action, so a
    /// program (or runtime) that handles SIGTERM itself keeps its handler.
    #[default]
    Auto,
    /// Install the handler in place of any other.
    Always,
    /// Leave SIGTERM alone.
    Never,
}

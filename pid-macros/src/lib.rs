//! The `#[pidfile]` attribute of [`pid-runtime`](https://docs.rs/pid-runtime).
//!
//! Use it through `pid-runtime`, which re-exports it as
//! `pid_runtime::pidfile`; the documentation is there.
#![deny(missing_docs)]

extern crate proc_macro;

mod args;
mod expand;

use proc_macro::TokenStream;

/// Holds a pidfile for as long as the function runs.
///
/// See `pid_runtime::pidfile` for the arguments and what the expansion does.
#[proc_macro_attribute]
pub fn pidfile(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::pidfile(args.into(), item.into()).into()
}

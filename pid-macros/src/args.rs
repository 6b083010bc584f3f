//! The attribute's arguments: parsed, checked, and gathered into [`Args`].

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Path};

/// A value and where it was written, for errors about it.
pub(crate) struct WithSpan<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

#[derive(Clone, Copy)]
pub(crate) enum TermSignal {
    Auto,
    Always,
    Never,
}

/// What a function does when its cluster lock is lost.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLost {
    Exit,
    Cancel,
}

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<Expr>,
    pub(crate) dir: Option<Expr>,
    pub(crate) mode: Option<u32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) allow_same_pid: Option<bool>,
    pub(crate) force_tmpdir: Option<bool>,
    pub(crate) enforce_pid_suffix: Option<bool>,
    pub(crate) term_signal: Option<TermSignal>,
    pub(crate) exit_code: Option<WithSpan<u8>>,
    pub(crate) entry: Option<WithSpan<bool>>,
    pub(crate) daemonize: Option<WithSpan<bool>>,
    pub(crate) krate: Option<Path>,
    pub(crate) cluster: Option<WithSpan<Expr>>,
    /// Milliseconds.
    pub(crate) ttl: Option<WithSpan<u64>>,
    pub(crate) bind: Option<syn::Ident>,
    pub(crate) on_lost: Option<WithSpan<OnLost>>,
    pub(crate) lost_exit_code: Option<WithSpan<u8>>,
    pub(crate) local: Option<WithSpan<bool>>,
    /// The arguments that configure the local pidfile, where they were
    /// written: `local = false` leaves nothing for them to configure.
    pub(crate) local_keys: Vec<(String, Span)>,
    /// The arguments that configure the cluster lock, where they were
    /// written: without `cluster`, there is none.
    pub(crate) cluster_keys: Vec<(String, Span)>,
}

impl Args {
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Args> {
        let mut args = Args::default();
        syn::meta::parser(|meta| args.set(&meta)).parse2(tokens)?;
        Ok(args)
    }

    fn set(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let Some(example) = example(&key) else {
            return Err(syn::Error::new_spanned(
                &meta.path,
                format!(
                    "unknown argument `{}`; expected one of {}",
                    path_text(&meta.path),
                    listing()
                ),
            ));
        };
        if !meta.input.peek(syn::Token![=]) {
            return Err(syn::Error::new_spanned(
                &meta.path,
                format!("`{key}` takes a value, like `{key} = {example}`"),
            ));
        }
        let span = meta.path.span();
        let value: Expr = meta.value()?.parse()?;
        if LOCAL_KEYS.contains(&key.as_str()) {
            self.local_keys.push((key.clone(), span));
        }
        if CLUSTER_KEYS.contains(&key.as_str()) {
            self.cluster_keys.push((key.clone(), span));
        }
        match key.as_str() {
            "name" => set_once(&mut self.name, &key, span, name(value)?),
            "dir" => set_once(&mut self.dir, &key, span, dir(value)?),
            "mode" => set_once(&mut self.mode, &key, span, mode(&value)?),
            "uid" => set_once(&mut self.uid, &key, span, id(&key, &value)?),
            "gid" => set_once(&mut self.gid, &key, span, id(&key, &value)?),
            "allow_same_pid" => {
                set_once(&mut self.allow_same_pid, &key, span, boolean(&key, &value)?)
            }
            "force_tmpdir" => set_once(&mut self.force_tmpdir, &key, span, boolean(&key, &value)?),
            "enforce_pid_suffix" => set_once(
                &mut self.enforce_pid_suffix,
                &key,
                span,
                boolean(&key, &value)?,
            ),
            "term_signal" => set_once(&mut self.term_signal, &key, span, term_signal(&value)?),
            "exit_code" => set_once(&mut self.exit_code, &key, span, exit_code(&key, &value)?),
            "entry" => {
                let value = WithSpan {
                    value: boolean(&key, &value)?,
                    span,
                };
                set_once(&mut self.entry, &key, span, value)
            }
            "daemonize" => {
                let value = WithSpan {
                    value: boolean(&key, &value)?,
                    span,
                };
                set_once(&mut self.daemonize, &key, span, value)
            }
            "crate" => set_once(&mut self.krate, &key, span, crate_path(&value)?),
            "cluster" => set_once(&mut self.cluster, &key, span, WithSpan { value, span }),
            "ttl" => set_once(&mut self.ttl, &key, span, ttl(&value)?),
            "bind" => set_once(&mut self.bind, &key, span, bind(&value)?),
            "on_lost" => set_once(&mut self.on_lost, &key, span, on_lost(&value, span)?),
            "lost_exit_code" => {
                let code = exit_code("lost_exit_code", &value)?;
                if code.value == 0 {
                    return Err(syn::Error::new_spanned(
                        &value,
                        "`lost_exit_code = 0` would report a run that lost its cluster lock as a success",
                    ));
                }
                set_once(&mut self.lost_exit_code, &key, span, code)
            }
            "local" => {
                let value = WithSpan {
                    value: boolean(&key, &value)?,
                    span,
                };
                set_once(&mut self.local, &key, span, value)
            }
            _ => unreachable!("every key of KEYS_AND_EXAMPLES has its arm"),
        }
    }
}

/// The arguments that configure the local pidfile.
const LOCAL_KEYS: [&str; 9] = [
    "dir",
    "mode",
    "uid",
    "gid",
    "allow_same_pid",
    "force_tmpdir",
    "enforce_pid_suffix",
    "term_signal",
    "daemonize",
];

/// The arguments that configure the cluster lock, beside `cluster`.
const CLUSTER_KEYS: [&str; 5] = ["ttl", "bind", "on_lost", "lost_exit_code", "local"];

/// The arguments, with an example value each for error messages.
const KEYS_AND_EXAMPLES: [(&str, &str); 19] = [
    ("name", "\"worker\""),
    ("dir", "\"/run/worker\""),
    ("mode", "0o644"),
    ("uid", "1000"),
    ("gid", "1000"),
    ("allow_same_pid", "true"),
    ("force_tmpdir", "true"),
    ("enforce_pid_suffix", "false"),
    ("term_signal", "\"never\""),
    ("exit_code", "1"),
    ("entry", "false"),
    ("daemonize", "true"),
    ("crate", "\"::pid_runtime\""),
    ("cluster", "Etcd::from_env()"),
    ("ttl", "\"10s\""),
    ("bind", "lease"),
    ("on_lost", "\"cancel\""),
    ("lost_exit_code", "75"),
    ("local", "false"),
];

fn example(key: &str) -> Option<&'static str> {
    KEYS_AND_EXAMPLES
        .iter()
        .find(|(known, _)| *known == key)
        .map(|(_, example)| *example)
}

fn listing() -> String {
    let keys: Vec<String> = KEYS_AND_EXAMPLES
        .iter()
        .map(|(key, _)| format!("`{key}`"))
        .collect();
    keys.join(", ")
}

fn set_once<T>(slot: &mut Option<T>, key: &str, span: Span, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(span, format!("duplicate argument `{key}`")));
    }
    *slot = Some(value);
    Ok(())
}

fn path_text(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

fn string_literal(value: &Expr) -> Option<&LitStr> {
    match literal(value)? {
        Lit::Str(text) => Some(text),
        _ => None,
    }
}

/// Any expression; a string literal is checked now, so a typo is a compile
/// error rather than a failure in production.
fn name(value: Expr) -> syn::Result<Expr> {
    if let Some(text) = string_literal(&value) {
        let reason = match text.value().as_str() {
            "" => Some("the pidfile name is empty"),
            "." | ".." => Some("the pidfile name names a directory"),
            name if name.contains('/') => {
                Some("the pidfile name contains `/`; give the directory with `dir`")
            }
            name if name.contains('\0') => Some("the pidfile name contains a NUL byte"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(syn::Error::new_spanned(text, reason));
        }
    }
    Ok(value)
}

fn dir(value: Expr) -> syn::Result<Expr> {
    if let Some(text) = string_literal(&value) {
        let reason = match text.value().as_str() {
            "" => Some("the pidfile directory is empty"),
            dir if dir.contains('\0') => Some("the pidfile directory contains a NUL byte"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(syn::Error::new_spanned(text, reason));
        }
    }
    Ok(value)
}

fn integer<T>(key: &str, value: &Expr) -> syn::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match literal(value) {
        Some(Lit::Int(int)) => int.base10_parse(),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` takes an integer literal, like `{key} = {}`",
                example(key).unwrap_or("1")
            ),
        )),
    }
}

fn mode(value: &Expr) -> syn::Result<u32> {
    let mode: u32 = integer("mode", value)?;
    if let Some(Lit::Int(int)) = literal(value) {
        let digits = int.to_string();
        if mode != 0 && !digits.starts_with("0o") {
            let decimal = !digits.starts_with("0x") && !digits.starts_with("0b");
            let as_octal = match u32::from_str_radix(int.base10_digits(), 8) {
                Ok(meant) if decimal => format!(
                    "; `{}` is decimal, mode {mode:#o}: write `{meant:#o}`",
                    int.base10_digits()
                ),
                _ => String::new(),
            };
            return Err(syn::Error::new_spanned(
                int,
                format!("`mode` takes permission bits in octal, like `mode = 0o644`{as_octal}"),
            ));
        }
    }
    if mode > 0o7777 {
        return Err(syn::Error::new_spanned(
            value,
            "`mode` takes permission bits, at most 0o7777",
        ));
    }
    Ok(mode)
}

fn id(key: &str, value: &Expr) -> syn::Result<u32> {
    integer(key, value)
}

fn exit_code(key: &str, value: &Expr) -> syn::Result<WithSpan<u8>> {
    let code: u64 = integer(key, value)?;
    match u8::try_from(code) {
        Ok(code) => Ok(WithSpan {
            value: code,
            span: value.span(),
        }),
        Err(_) => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` must be between 0 and 255"),
        )),
    }
}

/// `"10s"`, `"1500ms"`, `"2m"`, `"1h"`: at least a second, since a lease
/// lives whole seconds.
fn ttl(value: &Expr) -> syn::Result<WithSpan<u64>> {
    const USAGE: &str =
        "`ttl` takes a duration as a string, like `ttl = \"10s\"` (units: ms, s, m, h)";
    let Some(text) = string_literal(value) else {
        return Err(syn::Error::new_spanned(value, USAGE));
    };
    let written = text.value();
    let digits_end = written
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(written.len());
    let (number, unit) = written.split_at(digits_end);
    let per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(syn::Error::new_spanned(text, USAGE)),
    };
    let millis = number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(per_unit));
    match millis {
        Some(millis) if millis >= 1_000 => Ok(WithSpan {
            value: millis,
            span: text.span(),
        }),
        Some(_) => Err(syn::Error::new_spanned(
            text,
            "`ttl` must be at least 1 s: a lease lives whole seconds",
        )),
        None => Err(syn::Error::new_spanned(text, USAGE)),
    }
}

fn bind(value: &Expr) -> syn::Result<syn::Ident> {
    match value {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            match path.path.get_ident() {
                Some(ident) => Ok(ident.clone()),
                None => Err(syn::Error::new_spanned(
                    value,
                    "`bind` takes the name the body uses for the cluster guard, like `bind = lease`",
                )),
            }
        }
        Expr::Group(group) => bind(&group.expr),
        _ => Err(syn::Error::new_spanned(
            value,
            "`bind` takes the name the body uses for the cluster guard, like `bind = lease`",
        )),
    }
}

fn on_lost(value: &Expr, span: Span) -> syn::Result<WithSpan<OnLost>> {
    let policy = string_literal(value).map(LitStr::value);
    let value = match policy.as_deref() {
        Some("exit") => OnLost::Exit,
        Some("cancel") => OnLost::Cancel,
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                "`on_lost` takes \"exit\" or \"cancel\"",
            ))
        }
    };
    Ok(WithSpan { value, span })
}

fn boolean(key: &str, value: &Expr) -> syn::Result<bool> {
    match literal(value) {
        Some(Lit::Bool(flag)) => Ok(flag.value),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` takes `true` or `false`"),
        )),
    }
}

fn term_signal(value: &Expr) -> syn::Result<TermSignal> {
    let policy = string_literal(value).map(LitStr::value);
    match policy.as_deref() {
        Some("auto") => Ok(TermSignal::Auto),
        Some("always") => Ok(TermSignal::Always),
        Some("never") => Ok(TermSignal::Never),
        _ => Err(syn::Error::new_spanned(
            value,
            "`term_signal` takes \"auto\", \"always\" or \"never\"",
        )),
    }
}

fn crate_path(value: &Expr) -> syn::Result<Path> {
    match string_literal(value) {
        Some(path) => path.parse(),
        None => Err(syn::Error::new_spanned(
            value,
            "`crate` takes the path as a string, like `crate = \"::pid_runtime\"`",
        )),
    }
}

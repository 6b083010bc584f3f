//! What `#[pidfile]` turns a function into.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, ItemFn, ReturnType, Stmt, Type};

use crate::args::{Args, TermSignal};

pub(crate) fn pidfile(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            return with_item(
                syn::Error::new(
                    Span::call_site(),
                    "#[pidfile] applies to functions with a body",
                ),
                item,
            )
        }
    };
    match Args::parse(args).and_then(|args| guard(function, &args)) {
        Ok(function) => quote!(#function),
        Err(error) => with_item(error, item),
    }
}

/// The error next to the untouched item, so the user sees one error and not
/// a cascade of others about a missing `main`.
fn with_item(error: syn::Error, item: TokenStream) -> TokenStream {
    let mut tokens = error.to_compile_error();
    tokens.extend(item);
    tokens
}

fn guard(mut function: ItemFn, args: &Args) -> syn::Result<ItemFn> {
    if let Some(constness) = &function.sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "#[pidfile] cannot apply to a `const fn`: the pidfile is taken at run time",
        ));
    }
    let is_main = is_entry(&function, args)?;
    if !is_main {
        if let Some(exit_code) = &args.exit_code {
            return Err(syn::Error::new(
                exit_code.span,
                "`exit_code` applies only to `main`; other functions return the error",
            ));
        }
        if !returns_result(&function.sig.output) {
            let message = "#[pidfile] on a function other than the program's `main` needs it to \
                           return a `Result`, so a refused pidfile can be returned as the error; \
                           the return type is recognized by its name: write `Result<T, E>`, \
                           `io::Result<T>`, or an alias whose name ends in `Result`";
            return Err(match &function.sig.output {
                ReturnType::Type(_, ty) => syn::Error::new_spanned(ty, message),
                ReturnType::Default => syn::Error::new_spanned(&function.sig.ident, message),
            });
        }
    }
    if let Some(daemonize) = args.daemonize.as_ref().filter(|daemonize| daemonize.value) {
        if !is_main || function.sig.asyncness.is_some() {
            return Err(syn::Error::new(
                daemonize.span,
                "`daemonize` applies only to the program's `main`, and not to an `async fn`: \
                 a daemon is forked before any runtime starts its threads",
            ));
        }
    }
    let acquire = acquisition(args, is_main, &function.sig.output);
    let statements: Vec<Stmt> = syn::parse::Parser::parse2(syn::Block::parse_within, acquire)?;
    function.block.stmts.splice(0..0, statements);
    Ok(function)
}

/// Whether the function is the program's entry, which exits on refusal: a
/// free `fn main` without receiver, parameters or generics, unless
/// `entry = false` says it is a `main` in a module or an associated function.
fn is_entry(function: &ItemFn, args: &Args) -> syn::Result<bool> {
    let sig = &function.sig;
    let looks_like_entry =
        sig.ident == "main" && sig.inputs.is_empty() && sig.generics.params.is_empty();
    match &args.entry {
        None => Ok(looks_like_entry),
        Some(entry) if entry.value && !looks_like_entry => Err(syn::Error::new(
            entry.span,
            "`entry = true` applies to a `fn main` without receiver, parameters or generics",
        )),
        Some(entry) => Ok(entry.value),
    }
}

/// `Result`, `io::Result`, `anyhow::Result`...: any path ending in `Result`.
fn returns_result(output: &ReturnType) -> bool {
    fn is_result(ty: &Type) -> bool {
        match ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            Type::Group(group) => is_result(&group.elem),
            Type::Paren(paren) => is_result(&paren.elem),
            _ => false,
        }
    }
    match output {
        ReturnType::Type(_, ty) => is_result(ty),
        ReturnType::Default => false,
    }
}

/// `let <guard> = match <builder>.acquire() { .. };` with a binding the
/// function's body cannot name.
fn acquisition(args: &Args, is_main: bool, output: &ReturnType) -> TokenStream {
    let site = Span::mixed_site();
    let private = match &args.krate {
        Some(krate) => quote!(#krate::__private),
        None => quote!(::pid_runtime::__private),
    };
    let mut builder = match &args.name {
        Some(name) => quote!(#private::PidFile::new(#name)),
        None => quote!(#private::PidFile::for_program()),
    };
    if let Some(dir) = &args.dir {
        builder = quote!(#builder.dir(#dir));
    }
    if let Some(mode) = args.mode {
        let mode = Literal::u32_suffixed(mode);
        builder = quote!(#builder.mode(#mode));
    }
    if args.uid.is_some() || args.gid.is_some() {
        let uid = optional(args.uid);
        let gid = optional(args.gid);
        builder = quote!(#builder.owner(#uid, #gid));
    }
    for (setter, flag) in [
        ("allow_same_pid", args.allow_same_pid),
        ("force_tmpdir", args.force_tmpdir),
        ("enforce_pid_suffix", args.enforce_pid_suffix),
    ] {
        if let Some(flag) = flag {
            let setter = Ident::new(setter, site);
            builder = quote!(#builder.#setter(#flag));
        }
    }
    if let Some(policy) = args.term_signal {
        let policy = Ident::new(
            match policy {
                TermSignal::Auto => "Auto",
                TermSignal::Always => "Always",
                TermSignal::Never => "Never",
            },
            site,
        );
        builder = quote!(#builder.term_signal(#private::TermSignal::#policy));
    }

    let guard = Ident::new("__pidfile_guard", site);
    let error = Ident::new("__pidfile_error", site);
    let refused = if is_main {
        let code =
            Literal::i32_suffixed(args.exit_code.as_ref().map_or(1, |code| code.value.into()));
        quote_spanned!(site=> #private::exit_refused(&#error, #code))
    } else {
        // Spanned at the return type, so an error type that cannot hold a
        // refusal is reported there, with the hint of `IntoRefusal`.
        let at_output = match output {
            ReturnType::Type(_, ty) => syn::spanned::Spanned::span(&**ty),
            ReturnType::Default => Span::call_site(),
        };
        let private = respanned(private.clone(), at_output);
        let convert = quote_spanned!(at_output=> #private::IntoRefusal::into_refusal(#error));
        quote_spanned!(site=> return ::core::result::Result::Err(#convert))
    };
    let daemonize = if args
        .daemonize
        .as_ref()
        .is_some_and(|daemonize| daemonize.value)
    {
        quote_spanned! {site=>
            let #guard = match #private::daemonize_at_start_of_main(#guard) {
                ::core::result::Result::Ok(#guard) => #guard,
                ::core::result::Result::Err(#error) => #refused,
            };
        }
    } else {
        TokenStream::new()
    };
    quote_spanned! {site=>
        let #guard = match #builder.acquire() {
            ::core::result::Result::Ok(#guard) => #guard,
            ::core::result::Result::Err(#error) => #refused,
        };
        #daemonize
    }
}

/// `tokens`, every one of them placed at `span`.
fn respanned(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respanned(group.stream(), span));
                inner.set_span(span);
                token = proc_macro2::TokenTree::Group(inner);
            }
            token.set_span(span);
            token
        })
        .collect()
}

fn optional(id: Option<u32>) -> TokenStream {
    match id {
        Some(id) => {
            let id = Literal::u32_suffixed(id);
            quote!(::core::option::Option::Some(#id))
        }
        None => quote!(::core::option::Option::None),
    }
}

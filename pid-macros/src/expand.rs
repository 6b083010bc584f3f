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
    let is_main = function.sig.ident == "main";
    if !is_main {
        if let Some(exit_code) = &args.exit_code {
            return Err(syn::Error::new(
                exit_code.span,
                "`exit_code` applies only to `main`; other functions return the error",
            ));
        }
        if !returns_result(&function.sig.output) {
            let message = "#[pidfile] on a function other than `main` needs it to return a \
                           `Result`, so a refused pidfile can be returned as the error";
            return Err(match &function.sig.output {
                ReturnType::Type(_, ty) => syn::Error::new_spanned(ty, message),
                ReturnType::Default => syn::Error::new_spanned(&function.sig.ident, message),
            });
        }
    }
    let acquire = acquisition(args, is_main);
    function
        .block
        .stmts
        .insert(0, syn::parse2::<Stmt>(acquire)?);
    Ok(function)
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
fn acquisition(args: &Args, is_main: bool) -> TokenStream {
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
        let uid = optional(args.uid, &quote!(#private::Uid));
        let gid = optional(args.gid, &quote!(#private::Gid));
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
        quote_spanned!(site=> return ::core::result::Result::Err(::core::convert::From::from(#error)))
    };
    quote_spanned! {site=>
        let #guard = match #builder.acquire() {
            ::core::result::Result::Ok(#guard) => #guard,
            ::core::result::Result::Err(#error) => #refused,
        };
    }
}

fn optional(id: Option<u32>, ty: &TokenStream) -> TokenStream {
    match id {
        Some(id) => quote!(::core::option::Option::Some(#ty::from_raw(#id))),
        None => quote!(::core::option::Option::None),
    }
}

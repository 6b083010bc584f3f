//! What `#[pidfile]` turns a function into.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, ItemFn, ReturnType, Stmt, Type};

use crate::args::{Args, OnLost, TermSignal};

/// `on_lost = "exit"`'s status when `lost_exit_code` does not say:
/// `EX_TEMPFAIL`, so a scheduler that retries tries again.
const LOST_EXIT_CODE: u8 = 75;

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
    if args.cluster.is_some() {
        return clustered(function, args, is_main);
    }
    if let Some((key, span)) = args.cluster_keys.first() {
        return Err(syn::Error::new(
            *span,
            format!("`{key}` applies only with a cluster lock: add `cluster = Etcd::from_env()`"),
        ));
    }
    let acquire = acquisition(args, args.name.as_ref(), is_main, &function.sig.output);
    let statements: Vec<Stmt> = syn::parse::Parser::parse2(syn::Block::parse_within, acquire)?;
    function.block.stmts.splice(0..0, statements);
    Ok(function)
}

/// `#[pidfile(cluster = ..)]`: the local pidfile (unless `local = false`),
/// then the cluster lock, then the body, whose result counts only if the
/// lock was held throughout; the guards drop in the opposite order.
fn clustered(mut function: ItemFn, args: &Args, is_main: bool) -> syn::Result<ItemFn> {
    let site = Span::mixed_site();
    let local = args.local.as_ref().is_none_or(|local| local.value);
    if !local {
        if let Some((key, span)) = args.local_keys.first() {
            return Err(syn::Error::new(
                *span,
                format!("`{key}` configures the local pidfile, which `local = false` leaves out"),
            ));
        }
    }
    let on_lost = args.on_lost.as_ref().map_or(
        if is_main {
            OnLost::Exit
        } else {
            OnLost::Cancel
        },
        |on_lost| on_lost.value,
    );
    if on_lost == OnLost::Cancel {
        if let Some(code) = &args.lost_exit_code {
            return Err(syn::Error::new(
                code.span,
                "`lost_exit_code` applies with `on_lost = \"exit\"`; with \"cancel\" the function \
                 returns the loss as its error",
            ));
        }
        if !returns_result(&function.sig.output) {
            let span = args
                .on_lost
                .as_ref()
                .map_or_else(|| function.sig.ident.span(), |on_lost| on_lost.span);
            return Err(syn::Error::new(
                span,
                "`on_lost = \"cancel\"` returns a lost cluster lock as the function's error: the \
                 function must return a `Result`",
            ));
        }
    }
    let output = match &function.sig.output {
        ReturnType::Type(_, ty) => {
            if contains_impl_trait(ty) {
                return Err(syn::Error::new_spanned(
                    ty,
                    "#[pidfile(cluster = ..)] names the return type to check the result against \
                     the lock, and cannot name `impl Trait`: write the type",
                ));
            }
            quote!(#ty)
        }
        ReturnType::Default => quote!(()),
    };
    let private = private_path(args);
    let is_async = function.sig.asyncness.is_some();

    let name = Ident::new("__pidfile_name", site);
    // The name is evaluated once, for the pidfile and the lock.
    let (name_statement, name_argument, local_name) = match &args.name {
        Some(given) => (
            quote_spanned! {site=>
                let #name: ::std::ffi::OsString = ::core::convert::Into::into(#given);
            },
            quote_spanned!(site=> ::core::option::Option::Some(#name.clone())),
            Some(syn::parse2::<syn::Expr>(
                quote_spanned!(site=> #name.clone()),
            )?),
        ),
        None => (
            TokenStream::new(),
            quote!(::core::option::Option::None),
            None,
        ),
    };
    let local_statements = if local {
        acquisition(args, local_name.as_ref(), is_main, &function.sig.output)
    } else {
        TokenStream::new()
    };

    let error = Ident::new("__pidfile_error", site);
    let lost = Ident::new("__pidfile_lost", site);
    let lock = Ident::new("__pidfile_lock", site);
    let guard = Ident::new("__pidfile_cluster", site);
    let result = Ident::new("__pidfile_result", site);
    let at_output = output_span(&function.sig.output);
    let private_at_output = respanned(private.clone(), at_output);
    let refused = if is_main {
        let code =
            Literal::i32_suffixed(args.exit_code.as_ref().map_or(1, |code| code.value.into()));
        quote_spanned!(site=> #private::exit_refused(&#error, #code))
    } else {
        let convert = quote_spanned!(at_output=>
            #private_at_output::cluster::IntoClusterError::from_refusal(#error));
        quote_spanned!(site=> return ::core::result::Result::Err(#convert))
    };
    let lost_code = Literal::i32_suffixed(
        args.lost_exit_code
            .as_ref()
            .map_or(LOST_EXIT_CODE, |code| code.value)
            .into(),
    );
    let exit_on_loss = match on_lost {
        OnLost::Exit => quote!(::core::option::Option::Some(#lost_code)),
        OnLost::Cancel => quote!(::core::option::Option::None),
    };
    let ttl = match &args.ttl {
        Some(ttl) => {
            let millis = Literal::u64_suffixed(ttl.value);
            quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#millis)))
        }
        None => quote!(::core::option::Option::None),
    };
    let backend = &args.cluster.as_ref().expect("a cluster argument").value;
    let backend = quote_spanned!(syn::spanned::Spanned::span(backend)=> #private::cluster::Backend::into_backend(#backend));
    let acquire = if is_async {
        quote_spanned!(site=> #private::cluster::acquire_async(&#lock, #exit_on_loss).await)
    } else {
        quote_spanned!(site=> #private::cluster::acquire(&#lock, #exit_on_loss))
    };
    let bind = args
        .bind
        .as_ref()
        .map(|bind| quote_spanned!(site=> let #bind = &#guard;));

    let statements = &function.block.stmts;
    // The body's own `return`s and `?`s end the closure or async block, so
    // its result is checked against the lock whichever way it ends.
    // A body that never returns (a worker's loop, ended by the loss) leaves
    // the end of the block unreachable: that is the user's design.
    let body = quote!({
        #[allow(unreachable_code)]
        let #result: #output = { #(#statements)* };
        #[allow(unreachable_code)]
        return #result;
    });
    let from_lost = quote_spanned!(at_output=>
        #private_at_output::cluster::IntoClusterError::from_lost(#lost));
    let run = match (is_async, on_lost) {
        (true, OnLost::Cancel) => quote_spanned! {site=>
            let #result = match #private::cluster::until_lost(&#guard, async #body).await {
                ::core::result::Result::Ok(#result) => #result,
                ::core::result::Result::Err(#lost) => return ::core::result::Result::Err(#from_lost),
            };
        },
        (true, OnLost::Exit) => quote_spanned!(site=> let #result = async #body.await;),
        (false, _) => quote_spanned!(site=> let #result = (|| #body)();),
    };
    let after = match on_lost {
        OnLost::Exit => {
            quote_spanned!(site=> #private::cluster::exit_if_lost(&#guard, #lost_code);)
        }
        OnLost::Cancel => quote_spanned! {site=>
            if let ::core::result::Result::Err(#lost) = #private::cluster::held_throughout(&#guard) {
                return ::core::result::Result::Err(#from_lost);
            }
        },
    };
    let expanded = quote_spanned! {site=>
        #private::cluster_body! {
            #name_statement
            #local_statements
            let #lock = #private::cluster::lock(#name_argument, #backend, #ttl);
            let #guard = match #acquire {
                ::core::result::Result::Ok(#guard) => #guard,
                ::core::result::Result::Err(#error) => #refused,
            };
            #bind
            #run
            #after
            #result
        }
    };
    function.block = Box::new(syn::parse2(quote!({ #expanded }))?);
    Ok(function)
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
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

/// `::pid_runtime::__private`, or its path under the `crate` argument.
fn private_path(args: &Args) -> TokenStream {
    match &args.krate {
        Some(krate) => quote!(#krate::__private),
        None => quote!(::pid_runtime::__private),
    }
}

/// Where the return type is written, for errors about the error type.
fn output_span(output: &ReturnType) -> Span {
    match output {
        ReturnType::Type(_, ty) => syn::spanned::Spanned::span(&**ty),
        ReturnType::Default => Span::call_site(),
    }
}

/// `let <guard> = match <builder>.acquire() { .. };` with a binding the
/// function's body cannot name; the pidfile is called `name`, or after the
/// program.
fn acquisition(
    args: &Args,
    name: Option<&syn::Expr>,
    is_main: bool,
    output: &ReturnType,
) -> TokenStream {
    let site = Span::mixed_site();
    let private = private_path(args);
    let mut builder = match name {
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
        let at_output = output_span(output);
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

//! `#[both_hosts]` turns one async test body that takes the host into a test per host:
//!
//! ```ignore
//! #[sluice_e2e::both_hosts]
//! async fn aliases_are_rewritten(host: Host) { ... }
//! ```
//!
//! keeps the function as written and adds, beside it, a module of the same name (modules and
//! functions live in different namespaces) with `#[tokio::test] async fn wasm()` and
//! `async fn native()` calling it with `Host::Wasm` and `Host::Native`: the tests are named
//! `aliases_are_rewritten::wasm` and `aliases_are_rewritten::native`, so `cargo test native`
//! runs one host. The attribute's arguments go to `tokio::test` as they are
//! (`#[both_hosts(flavor = "multi_thread", worker_threads = 4)]`).
//!
//! Written on `proc_macro` alone: all it needs from the item is the function's name, and the
//! item itself passes through untouched (so rustfmt and the compiler see ordinary code).

use proc_macro::{TokenStream, TokenTree};

#[proc_macro_attribute]
pub fn both_hosts(args: TokenStream, item: TokenStream) -> TokenStream {
    let Some(name) = function_name(item.clone()) else {
        return r##"compile_error!("#[both_hosts] goes on an `async fn <name>(host: Host)`");"##
            .parse()
            .unwrap_or_default();
    };
    let tokio_args = args.to_string();
    let tests: String = [("wasm", "Wasm"), ("native", "Native")]
        .iter()
        .map(|(test, variant)| {
            format!(
                "#[::tokio::test({tokio_args})] async fn {test}() {{ \
                 super::{name}(::sluice_e2e::host::Host::{variant}).await \
                 }}"
            )
        })
        .collect();
    let module: TokenStream = match format!("mod {name} {{ {tests} }}").parse() {
        Ok(module) => module,
        Err(_) => {
            return r##"compile_error!("#[both_hosts]: bad arguments for tokio::test");"##
                .parse()
                .unwrap_or_default();
        }
    };
    let mut out = item;
    out.extend(module);
    out
}

/// The identifier after the item's top-level `fn` (attributes and doc comments are single
/// bracketed groups, so a `fn` inside them is not seen).
fn function_name(item: TokenStream) -> Option<String> {
    let mut tokens = item.into_iter();
    while let Some(token) = tokens.next() {
        if matches!(&token, TokenTree::Ident(ident) if ident.to_string() == "fn") {
            return match tokens.next() {
                Some(TokenTree::Ident(name)) => Some(name.to_string()),
                _ => None,
            };
        }
    }
    None
}

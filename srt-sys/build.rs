//! Finds the system libsrt with pkg-config and generates bindings for
//! `<srt/srt.h>`, keeping only `srt_*` functions and `SRT*` types/constants.

use std::path::PathBuf;

fn main() {
    let library = match pkg_config::probe_library("srt") {
        Ok(library) => library,
        Err(e) => {
            eprintln!("libsrt not found by pkg-config (install libsrt-gnutls-dev): {e}");
            std::process::exit(1);
        }
    };
    let mut builder = bindgen::Builder::default()
        .header_contents("wrapper.h", "#include <srt/srt.h>\n")
        .allowlist_function("srt_.*")
        .allowlist_type("SRT.*")
        .allowlist_type("srt_.*")
        .allowlist_var("SRT.*")
        .allowlist_type("sockaddr.*")
        .allowlist_type("sa_family_t")
        .allowlist_type("in_addr")
        .allowlist_var("AF_INET.*")
        .rustified_non_exhaustive_enum("SRT_SOCKOPT")
        .prepend_enum_name(false)
        .layout_tests(false)
        .derive_default(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for path in &library.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bindgen failed on <srt/srt.h>: {e}");
            std::process::exit(1);
        }
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("bindings.rs");
    if let Err(e) = bindings.write_to_file(&out) {
        eprintln!("cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}

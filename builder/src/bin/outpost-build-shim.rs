//! The shim builds run under (see `builder::egress`), as a program of its
//! own: the coordinator binary is the shim too (it dispatches
//! `__outpost-build-shim` first thing), this is for the builder's own
//! tests and for hosts that run builders apart.

fn main() {
    if std::env::args().nth(1).as_deref() == Some(builder::egress::SHIM_ARG) {
        builder::egress::shim_main();
    }
    eprintln!(
        "usage: outpost-build-shim {} <listen addr> <proxy socket> -- <command…>",
        builder::egress::SHIM_ARG
    );
    std::process::exit(2);
}

//! Links the image with its linker script; host builds (an empty `main`) are left alone.

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{manifest}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    }
}

//! The Unisock image: x86_64 entry, platform bring-up, and the per-core start that links every layer.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("unisock-boot builds the bootable image: run `cargo xtask build`");
}

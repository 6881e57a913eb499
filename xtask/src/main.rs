//! `cargo xtask`: build the image, boot it, run the tests and the benchmarks.

fn main() {
    eprintln!("usage: cargo xtask <build|image|run|test>");
    std::process::exit(2);
}

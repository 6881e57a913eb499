//! Replays every kept fuzz input (the seed corpora in `fuzz/corpus/` and every crash or hang
//! AFL++ found, in `fuzz/regressions/`) through its target, so that an ordinary `cargo test`
//! (and CI, without AFL++) fails if one of them fails again.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An input that takes longer than this is a hang (AFL++'s own limit is 1 s per run; a debug
/// build is slower, hence the margin).
const HANG: Duration = Duration::from_secs(10);

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            if path.is_file() && path.file_name().is_some_and(|name| name != "README") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no inputs for {target}");
    for path in &files {
        let data = fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} fails {target} again", path.display());
        assert!(
            started.elapsed() < HANG,
            "{} took {:?} in {target}",
            path.display(),
            started.elapsed()
        );
    }
    println!("{target}: {} inputs replayed", files.len());
}

#[test]
fn every_kept_frame_input_passes() {
    replay("frames", unisock_fuzz::frames);
}

#[test]
fn every_kept_http_input_passes() {
    replay("http", unisock_fuzz::http);
}

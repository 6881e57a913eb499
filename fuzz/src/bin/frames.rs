//! AFL++ entry point of the frame-path target ([`unisock_fuzz::frames`]).

fn main() {
    afl::fuzz!(|data: &[u8]| unisock_fuzz::frames(data));
}

//! AFL++ entry point of the HTTP parsing target ([`unisock_fuzz::http`]).

fn main() {
    afl::fuzz!(|data: &[u8]| unisock_fuzz::http(data));
}

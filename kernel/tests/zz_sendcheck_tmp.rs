fn assert_send<T: Send>() {}
#[test]
fn t() { assert_send::<unisock_kernel::net::tcp::TcpLayer>(); }

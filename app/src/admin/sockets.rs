//! The socket listing of `GET /sockets`: every core's sockets, `ss -tni` style or as JSON, the proxy's client connections joined to the backend connections serving them.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::SocketAddrV4;

use hashbrown::HashMap;
use unisock_kernel::net::tcp::{SocketHandle, SocketInfo};

use crate::control::CoreSockets;

/// What a socket is to the proxy.
#[derive(Clone, Copy)]
enum Leg {
    None,
    /// A client connection; the backend connection serving its request now.
    Client {
        backend: (SocketAddrV4, SocketAddrV4),
    },
    /// A backend connection; the client connection it serves.
    Backend {
        client: (SocketAddrV4, SocketAddrV4),
    },
}

/// One core's legs, joined once per listing (a listing under load has tens of thousands of
/// sockets: looking each one's leg up by a scan would be quadratic).
struct Legs(HashMap<SocketHandle, Leg>);

impl Legs {
    fn of(answer: &CoreSockets) -> Legs {
        let ends: HashMap<SocketHandle, (SocketAddrV4, SocketAddrV4)> = answer
            .sockets
            .iter()
            .filter_map(|socket| Some((socket.handle?, (socket.local, socket.remote))))
            .collect();
        let mut legs = HashMap::new();
        for (client, backend) in &answer.legs {
            if let (Some(client_ends), Some(backend_ends)) = (ends.get(client), ends.get(backend)) {
                legs.insert(
                    *client,
                    Leg::Client {
                        backend: *backend_ends,
                    },
                );
                legs.insert(
                    *backend,
                    Leg::Backend {
                        client: *client_ends,
                    },
                );
            }
        }
        Legs(legs)
    }

    fn of_socket(&self, socket: &SocketInfo) -> Leg {
        socket
            .handle
            .and_then(|handle| self.0.get(&handle).copied())
            .unwrap_or(Leg::None)
    }
}

fn milliseconds(duration: core::time::Duration) -> String {
    alloc::format!(
        "{}.{:03}",
        duration.as_millis(),
        duration.subsec_micros() % 1000
    )
}

/// One line per socket, with a header line.
pub fn write_text(answers: &[CoreSockets], out: &mut String) {
    let _ = writeln!(
        out,
        "core state local remote send_q recv_q srtt_ms rto_ms cwnd retrans leg"
    );
    for answer in answers {
        let legs = Legs::of(answer);
        for socket in &answer.sockets {
            let srtt = socket.smoothed_rtt.map_or(String::from("-"), milliseconds);
            let _ = write!(
                out,
                "{} {} {} {} {} {} {} {} {} {}",
                socket.core.0,
                socket.state.name(),
                socket.local,
                socket.remote,
                socket.send_queue_bytes,
                socket.receive_queue_bytes,
                srtt,
                milliseconds(socket.rto),
                socket.congestion_window,
                socket.retransmissions,
            );
            let _ = match legs.of_socket(socket) {
                Leg::None => writeln!(out, " -"),
                Leg::Client { backend } => {
                    writeln!(out, " client->backend={}->{}", backend.0, backend.1)
                }
                Leg::Backend { client } => {
                    writeln!(out, " backend<-client={}->{}", client.1, client.0)
                }
            };
        }
    }
}

/// `{"sockets":[{...},...]}`; every value is a number or a string of digits, dots, colons and
/// capitals, so nothing needs escaping.
pub fn write_json(answers: &[CoreSockets], out: &mut String) {
    out.push_str("{\"sockets\":[");
    let mut first = true;
    for answer in answers {
        let legs = Legs::of(answer);
        for socket in &answer.sockets {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(
                out,
                "{{\"core\":{},\"state\":\"{}\",\"local\":\"{}\",\"remote\":\"{}\",\
                 \"send_queue_bytes\":{},\"receive_queue_bytes\":{},\"srtt_us\":{},\
                 \"rto_us\":{},\"cwnd\":{},\"retransmissions\":{}",
                socket.core.0,
                socket.state.name(),
                socket.local,
                socket.remote,
                socket.send_queue_bytes,
                socket.receive_queue_bytes,
                socket
                    .smoothed_rtt
                    .map_or(String::from("null"), |rtt| alloc::format!(
                        "{}",
                        rtt.as_micros()
                    )),
                socket.rto.as_micros(),
                socket.congestion_window,
                socket.retransmissions,
            );
            let _ = match legs.of_socket(socket) {
                Leg::None => write!(out, "}}"),
                Leg::Client { backend } => write!(
                    out,
                    ",\"role\":\"client\",\"backend\":{{\"local\":\"{}\",\"remote\":\"{}\"}}}}",
                    backend.0, backend.1
                ),
                Leg::Backend { client } => write!(
                    out,
                    ",\"role\":\"backend\",\"client\":{{\"local\":\"{}\",\"remote\":\"{}\"}}}}",
                    client.0, client.1
                ),
            };
        }
    }
    out.push_str("]}\n");
}

/// The (client remote, backend remote) pairs of the joined legs, for tests and summaries.
pub fn joined_pairs(answers: &[CoreSockets]) -> Vec<(SocketAddrV4, SocketAddrV4)> {
    let mut pairs = Vec::new();
    for answer in answers {
        let legs = Legs::of(answer);
        for socket in &answer.sockets {
            if let Leg::Client { backend } = legs.of_socket(socket) {
                pairs.push((socket.remote, backend.1));
            }
        }
    }
    pairs
}

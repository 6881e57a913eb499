//! The HTTP responder: answers every request with one fixed small response (and `GET /stats`
//! with the appliance's counters), then closes. One request per connection, like the
//! short-lived connections the appliance is built for.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::net::partition::ServedPort;
use unisock_kernel::socket::{SocketError, TcpStream};

use crate::http::{head_length, request_line};
use crate::services::StatisticsReport;

/// The body of the fixed response.
pub const BODY: &str = "Hello from Unisock\n";
/// Longest request head read; a longer one gets `431`.
pub const MAX_HEAD_LENGTH: usize = 8 * 1024;
/// A client that sends no complete head in this time is dropped (a slow client must not hold
/// a connection for ever).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `port` for as long as it is served, one task per connection.
pub async fn serve(port: ServedPort, handle: Handle, report: Option<StatisticsReport>) {
    loop {
        match port.listener().accept().await {
            Ok(stream) => {
                let handle_for_task = handle.clone();
                let report = report.clone();
                handle.spawn(async move {
                    // Errors end the connection; the TCP layer counts their causes.
                    let _ = answer(stream, handle_for_task, report).await;
                });
            }
            // Accept fails only when the listener itself is gone (a stale handle).
            Err(_) => return,
        }
    }
}

/// Reads one request head and writes the response.
async fn answer(
    stream: TcpStream,
    handle: Handle,
    report: Option<StatisticsReport>,
) -> Result<(), SocketError> {
    stream.set_no_delay(true)?;
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let head_end = loop {
        let read = match handle.timeout(HEAD_TIMEOUT, stream.read(&mut buffer)).await {
            Ok(result) => result?,
            Err(_elapsed) => return stream.abort(),
        };
        if read == 0 {
            return stream.close();
        }
        head.extend_from_slice(&buffer[..read]);
        if let Some(end) = head_length(&head) {
            break end;
        }
        if head.len() > MAX_HEAD_LENGTH {
            stream
                .write_all(&response(431, "Request Header Fields Too Large", ""))
                .await?;
            return stream.close();
        }
    };
    let reply = match request_line(&head[..head_end]) {
        None => response(400, "Bad Request", ""),
        Some(line) if line.method == "GET" && line.target == "/stats" => {
            let mut body = String::new();
            match &report {
                Some(report) => report(&mut body),
                None => body.push_str("no statistics\n"),
            }
            response(200, "OK", &body)
        }
        Some(_) => response(200, "OK", BODY),
    };
    stream.write_all(&reply).await?;
    stream.close()
}

/// A complete HTTP/1.1 response that closes the connection.
pub fn response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut text = String::with_capacity(128 + body.len());
    let _ = write!(
        text,
        "HTTP/1.1 {status} {reason}\r\nServer: unisock\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_response_is_well_formed() {
        let bytes = response(200, "OK", BODY);
        let text = core::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", BODY.len())));
        assert!(text.ends_with(&format!("\r\n\r\n{BODY}")));
    }
}

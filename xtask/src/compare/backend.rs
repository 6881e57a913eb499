//! The backend both kinds of proxy forward to: nginx on the namespace side of the tap, run from
//! the same Debian package the Linux guest carries (qemu/linux-guest extracts it), serving a
//! 64-byte body at `/` (the paper's response size) and 16 KiB at `/large`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use super::guest::{BACKEND_PORT, PEER_ADDRESS, process_and_children, processes_cpu};
use crate::Failure;

/// The small body: 64 bytes, like the guest's static page.
pub const SMALL_BODY: &[u8; 64] =
    b"Hello from the backend nginx: a page of exactly sixty-four byte\n";
/// The large body's size.
pub const LARGE_BODY_SIZE: usize = 16 * 1024;

/// A running backend; dropping it stops nginx.
pub struct Backend {
    directory: PathBuf,
    master: u32,
}

impl Backend {
    /// Starts nginx in `namespace` on `PEER_ADDRESS:BACKEND_PORT` with one worker per host
    /// core, tuned like the guest's (reuseport, big backlog).
    pub fn start(namespace: &str, rootfs: &Path, directory: &Path) -> Result<Backend, Failure> {
        let _ = fs::remove_dir_all(directory);
        let pages = directory.join("pages");
        let temporary = directory.join("temporary");
        for folder in [&pages, &temporary] {
            fs::create_dir_all(folder).map_err(|error| Failure(format!("backend: {error}")))?;
        }
        fs::write(pages.join("index.html"), SMALL_BODY)
            .and_then(|()| fs::write(pages.join("large"), vec![b'x'; LARGE_BODY_SIZE]))
            .map_err(|error| Failure(format!("backend pages: {error}")))?;
        let temporary = temporary.display();
        let configuration = format!(
            "# Written by cargo xtask bench compare: the proxies' backend.
worker_processes auto;
worker_rlimit_nofile 65536;
pid {directory}/nginx.pid;
error_log {directory}/error.log error;
events {{ worker_connections 16384; accept_mutex off; multi_accept on; }}
http {{
    access_log off;
    # One segment for head and small body (see qemu/linux-guest's nginx-static).
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    default_type text/plain;
    client_body_temp_path {temporary};
    proxy_temp_path {temporary};
    fastcgi_temp_path {temporary};
    uwsgi_temp_path {temporary};
    scgi_temp_path {temporary};
    server {{
        listen {PEER_ADDRESS}:{BACKEND_PORT} reuseport backlog=65535;
        root {pages};
        location = /large {{ }}
        location / {{ try_files /index.html =404; }}
    }}
}}
",
            directory = directory.display(),
            pages = pages.display(),
        );
        let configuration_path = directory.join("nginx.conf");
        fs::write(&configuration_path, configuration)
            .map_err(|error| Failure(format!("backend configuration: {error}")))?;
        let library_path = format!(
            "{0}/lib/x86_64-linux-gnu:{0}/usr/lib/x86_64-linux-gnu",
            rootfs.display()
        );
        let in_namespace = |arguments: &[&str]| -> Result<(), Failure> {
            let status = Command::new("ip")
                .args(["netns", "exec", namespace])
                .args(arguments)
                .status()
                .map_err(|error| Failure(format!("cannot run ip netns exec: {error}")))?;
            if status.success() {
                Ok(())
            } else {
                Err(Failure(format!(
                    "in {namespace}: {} failed",
                    arguments.join(" ")
                )))
            }
        };
        // The backlog above is capped by the namespace's own somaxconn.
        in_namespace(&["sysctl", "-q", "-w", "net.core.somaxconn=65535"])?;
        let nginx = rootfs.join("usr/sbin/nginx");
        let status = Command::new("ip")
            .args(["netns", "exec", namespace, "env"])
            .arg(format!("LD_LIBRARY_PATH={library_path}"))
            .arg(&nginx)
            .arg("-p")
            .arg(directory)
            .arg("-e")
            .arg(directory.join("error.log"))
            .arg("-c")
            .arg(&configuration_path)
            .status()
            .map_err(|error| Failure(format!("cannot run {}: {error}", nginx.display())))?;
        if !status.success() {
            return Err(Failure(format!(
                "the backend nginx did not start ({status})"
            )));
        }
        let pid_file = directory.join("nginx.pid");
        for _ in 0..50 {
            if let Some(master) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                return Ok(Backend {
                    directory: directory.to_path_buf(),
                    master,
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
        Err(Failure("the backend nginx wrote no pid file".into()))
    }

    /// CPU seconds used so far by the master and its workers.
    pub fn cpu(&self) -> f64 {
        processes_cpu(&process_and_children(self.master))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // nginx's fast shutdown; the workers follow the master.
        let _ = Command::new("kill")
            .args(["-TERM", &self.master.to_string()])
            .status();
        for _ in 0..50 {
            // Gone, or a zombie its new parent has not reaped yet.
            let state = fs::read_to_string(format!("/proc/{}/stat", self.master))
                .ok()
                .and_then(|line| {
                    line.rsplit(')')
                        .next()
                        .map(|rest| rest.trim().starts_with('Z'))
                });
            if state.is_none_or(|zombie| zombie) {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = fs::remove_dir_all(self.directory.join("temporary"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_body_is_the_papers_size() {
        assert_eq!(SMALL_BODY.len(), 64);
    }
}

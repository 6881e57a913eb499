//! Backend servers the end-to-end tests run in the guest's namespace at `PEER`: nginx from Debian, the project's misbehaving Python server, and Python's stock `http.server`; each stopped and its directory removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use super::{Guest, NAMESPACE_COUNTER, NamespaceProcess, PEER};

/// A backend server process inside the guest's namespace; dropping it stops it and removes
/// its directory.
pub struct Backend {
    process: NamespaceProcess,
    directory: PathBuf,
    port: u16,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// A directory of a test's own under the temporary directory, removed with what it holds
/// when dropped, whether the test passed or not.
pub struct ScratchDirectory(PathBuf);

impl std::ops::Deref for ScratchDirectory {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDirectory {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new, empty directory named after `kind`, this process and a counter.
fn new_scratch_path(kind: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!(
        "unisock-e2e-{kind}-{}-{}",
        std::process::id(),
        NAMESPACE_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&directory).expect("cannot create a scratch directory");
    directory
}

impl Backend {
    /// A directory for a test's files (what nginx serves, an upload, a DNS server's
    /// records), removed when the returned guard is dropped.
    pub fn scratch_directory(kind: &str) -> ScratchDirectory {
        ScratchDirectory(new_scratch_path(kind))
    }

    /// nginx on `port`: `/health`, `/` answering `nginx-<port>`, and `files/` from `files`.
    pub fn nginx(guest: &Guest, port: u16, files: &Path) -> Backend {
        Self::nginx_with(guest, port, files, "")
    }

    /// [`Backend::nginx`] with more `location` blocks (nginx's configuration text) in its
    /// server, before its own.
    pub fn nginx_with(guest: &Guest, port: u16, files: &Path, locations: &str) -> Backend {
        let directory = new_scratch_path("nginx");
        let dir = directory.display();
        let configuration = format!(
            "user root;\ndaemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {dir}/access.log;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
               keepalive_requests 100000;\n\
               server {{\n    listen {PEER}:{port} reuseport backlog=4096;\n\
                 {locations}\n\
                 location = /health {{ return 200 \"ok\\n\"; }}\n\
                 location /files/ {{ alias {files}/; }}\n\
                 location / {{ return 200 \"nginx-{port}\\n\"; }}\n  }}\n}}\n",
            files = files.display()
        );
        std::fs::write(directory.join("nginx.conf"), configuration)
            .expect("cannot write nginx.conf");
        let process = NamespaceProcess::spawn(
            Command::new("ip")
                .args(["netns", "exec", &guest.namespace, "nginx", "-p"])
                .arg(&directory)
                .arg("-c")
                .arg(directory.join("nginx.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let backend = Backend {
            process,
            directory,
            port,
        };
        backend.wait_until_listening(guest);
        backend
    }

    /// tests/scripts/http-backend.py on `port` (prints each request to `requests.log`).
    pub fn python(guest: &Guest, port: u16) -> Backend {
        let directory = new_scratch_path("python");
        let log =
            std::fs::File::create(directory.join("requests.log")).expect("cannot create the log");
        Backend {
            process: super::python_backend(guest, port, Stdio::from(log)),
            directory,
            port,
        }
    }

    /// Python's stock `http.server` on `port`, serving an empty directory: what a user
    /// might really put behind a proxy. It answers 501 to the methods it lacks (`DELETE`,
    /// `PUT`, ...), 404 to paths it has no file for, and logs each request to `requests.log`.
    pub fn stock_python(guest: &Guest, port: u16) -> Backend {
        let directory = new_scratch_path("http-server");
        let served = directory.join("served");
        std::fs::create_dir_all(&served).expect("cannot create the served directory");
        let log =
            std::fs::File::create(directory.join("requests.log")).expect("cannot create the log");
        let process = NamespaceProcess::spawn(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &guest.namespace,
                    "python3",
                    "-m",
                    "http.server",
                ])
                .args(["--bind", PEER, "--directory"])
                .arg(&served)
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log)),
        );
        let backend = Backend {
            process,
            directory,
            port,
        };
        backend.wait_until_listening(guest);
        backend
    }

    pub fn wait_until_listening(&self, guest: &Guest) {
        super::wait_for_health(guest, self.port);
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Request lines logged (by nginx, or either Python server) that contain `text`.
    pub fn requests_containing(&self, text: &str) -> usize {
        ["access.log", "requests.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.directory.join(name)).ok())
            .map(|log| log.lines().filter(|line| line.contains(text)).count())
            .sum()
    }

    /// Lines nginx logged (requests that reached it), or the Python server printed.
    /// Requests other than the proxy's health checks (which arrive on their own schedule and
    /// would make counts taken around a client's request race with them).
    pub fn requests_seen(&self) -> usize {
        ["access.log", "requests.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.directory.join(name)).ok())
            .map(|text| {
                text.lines()
                    .filter(|line| !line.contains("/health"))
                    .count()
            })
            .sum()
    }
}

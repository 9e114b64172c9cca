//! A real load balancer in front of several server processes: nginx from Debian's packages
//! (installed by `scripts/nginx.sh`, which `scripts/install-test-deps.sh balancer` runs), as an
//! operator would put it in front of `eenplan-server` instances sharing one PostgreSQL
//! database.
//!
//! Round robin over the instances, one request at a time; WebSockets (`/v1/live`) passed
//! through; an instance that refuses connections is skipped and left alone for a while, as
//! nginx's passive health checks do. A request already sent to an instance that then dies
//! fails (nginx does not resend a POST), and the device retries it: that is the case the
//! tests are about.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx, killed when dropped.
#[derive(Debug)]
pub struct Balancer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
}

/// How long nginx may take to open its port.
const START_PATIENCE: Duration = Duration::from_secs(20);

fn nginx() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".."));
    let script = root.join("scripts/nginx.sh");
    for args in [&["install"][..], &["path"][..]] {
        let out = Command::new(&script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/nginx.sh: {e}"));
        if !out.status.success() {
            panic!(
                "scripts/nginx.sh {args:?} failed; these tests need nginx (Debian's `nginx`, installed by \
                 scripts/install-test-deps.sh balancer):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if args == ["path"] {
            return String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
    }
    unreachable!("the loop returns on `path`")
}

fn config(dir: &Path, port: u16, upstreams: &[String]) -> String {
    let dir = dir.display();
    let servers: String =
        upstreams.iter().map(|u| format!("        server {u} max_fails=1 fail_timeout=60s;\n")).collect();
    format!(
        "daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # A sync request may be as large as the server takes (protocol::sync::MAX_SYNC_REQUEST).
    client_max_body_size {body}m;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream eenplan {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://eenplan;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            # A live socket is quiet between hints; the server pings it every 30 s.
            proxy_read_timeout 1h;
        }}
    }}
}}
",
        body = eenplan_protocol::sync::MAX_SYNC_REQUEST / (1024 * 1024)
    )
}

impl Balancer {
    /// nginx on a free loopback port in front of `upstreams` (`host:port` each), once it
    /// accepts connections.
    pub fn start(upstreams: &[String]) -> Balancer {
        let binary = nginx();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        // nginx's workers run as `nobody` when the tests run as root; they write proxy buffers
        // under this directory.
        set_mode(dir.path(), 0o755);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("no free port: {e}"))
            .port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), port, upstreams))
            .unwrap_or_else(|e| panic!("cannot write nginx.conf: {e}"));
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
        let mut balancer = Balancer { child, url: format!("http://127.0.0.1:{port}"), dir };
        balancer.wait_until_listening(port);
        balancer
    }

    /// nginx says nothing when it is ready, so this tries its port until it answers.
    fn wait_until_listening(&mut self, port: u16) {
        let deadline = Instant::now() + START_PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx ended ({status}) before listening: {}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within {START_PATIENCE:?}: {}",
                self.error_log()
            );
            // A readiness poll with a deadline: there is no event to wait on.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What nginx logged (warnings and errors), for a failing test's message.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // SIGTERM, so that the master stops its workers too (SIGKILL would orphan them).
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !terminated {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

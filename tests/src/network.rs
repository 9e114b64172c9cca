//! A real network for end-to-end tests: an `eenplan-server` process on loopback, an
//! administrator driving the real `eenplan-admin` binary, and devices with real stores.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use eenplan_core::Device;
use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};

/// A workspace binary: next to the running executable (a program in `target/release`), or
/// one directory up (a test in `target/*/deps`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let candidates = [Some(dir.join(name)), dir.parent().map(|p| p.join(name))];
    match candidates.into_iter().flatten().find(|p| p.is_file()) {
        Some(path) => path,
        None => panic!("{name} is not built next to {}; build with `cargo build --workspace`", exe.display()),
    }
}

/// A server process. Killed (SIGKILL) when dropped, unless stopped before.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data: PathBuf,
    /// The bearer token its `/metrics` asks for (`None`: metrics are off).
    pub metrics_token: Option<String>,
}

/// The metrics token of test servers.
const METRICS_TOKEN: &str = "metrics-test-token";

impl Server {
    /// Starts `eenplan-server serve` on a free loopback port and waits for its
    /// `listening on` line.
    pub fn start(data: &Path) -> Server {
        Self::start_on(data, "127.0.0.1:0")
    }

    pub fn start_on(data: &Path, listen: &str) -> Server {
        Self::start_with(data, listen, None)
    }

    /// Starts it on the PostgreSQL database at `database` (`serve --database`) instead of
    /// `server.db` in `data` (which still holds the init secret).
    pub fn start_with(data: &Path, listen: &str, database: Option<&str>) -> Server {
        std::fs::create_dir_all(data).unwrap_or_else(|e| panic!("cannot make {}: {e}", data.display()));
        let token_file = data.join("metrics-token");
        std::fs::write(&token_file, METRICS_TOKEN)
            .unwrap_or_else(|e| panic!("cannot write the metrics token: {e}"));
        let mut command = Command::new(binary("eenplan-server"));
        if let Some(url) = database {
            // Through the environment, as an operator keeps a password out of `ps`.
            command.env("EENPLAN_DATABASE_URL", url);
        }
        let mut child = command
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", listen])
            .arg("--metrics-token-file")
            .arg(&token_file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the server: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        break format!("http://{}", addr.trim());
                    }
                }
                other => panic!("the server stopped before listening: {other:?}"),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, url, data: data.to_path_buf(), metrics_token: Some(METRICS_TOKEN.to_owned()) }
    }

    /// The one-time secret `eenplan-admin init` must carry, while the server has no network.
    pub fn init_secret(&self) -> String {
        let path = self.data.join(eenplan_protocol::api::INIT_SECRET_FILE);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    pub fn address(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The value of the counter `name` on its `/metrics` (a counter without labels).
    pub fn metric(&self, name: &str) -> u64 {
        let token = self.metrics_token.as_deref().unwrap_or_else(|| panic!("the server's metrics are off"));
        let text = ureq::Agent::new_with_defaults()
            .get(format!("{}/metrics", self.url))
            .header("authorization", format!("Bearer {token}"))
            .call()
            .and_then(|mut response| response.body_mut().read_to_string())
            .unwrap_or_else(|e| panic!("cannot read /metrics: {e}"));
        let value = text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' '));
        let value = value.unwrap_or_else(|| panic!("no {name} in {text}"));
        value.trim().parse().unwrap_or_else(|e| panic!("{name} is {value}: {e}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The test administrator's keyring passphrase (strong enough for `eenplan-admin init`).
pub const ADMIN_PASSPHRASE: &str = "admin-test keyring 2026";

/// The administrator, through the real `eenplan-admin` binary.
#[derive(Debug)]
pub struct Admin {
    pub data: PathBuf,
    pub server: String,
}

impl Admin {
    /// A new network on `server`, claimed with its init secret.
    pub fn init(data: &Path, server: &Server) -> Admin {
        let admin = Admin { data: data.to_path_buf(), server: server.url.clone() };
        let secret = server.init_secret();
        admin.run(&["init", "--server", &server.url, "--name", "Beheer", "--init-secret", &secret]);
        admin
    }

    /// Runs a command and returns its stdout; panics with stderr on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.output(args);
        assert!(
            output.status.success(),
            "eenplan-admin {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Runs a command, whatever it ends with.
    pub fn output(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary("eenplan-admin"))
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .env("EENPLAN_ADMIN_PASSPHRASE", ADMIN_PASSPHRASE)
            .env("EENPLAN_INSECURE_FAST_KDF", "1")
            .env("EENPLAN_SERVER", &self.server)
            .output()
            .unwrap_or_else(|e| panic!("cannot run eenplan-admin: {e}"))
    }
}

pub fn device_keystore() -> PassphraseKeyStore {
    PassphraseKeyStore::with_params("device-test", KdfParams::INSECURE_FAST_FOR_TESTS)
}

/// A new device in `dir`, enrolled for `user` and approved by the administrator.
pub fn enrolled_device(admin: &Admin, server: &Server, dir: &Path, user: &str) -> Device {
    enrolled_device_at(admin, &server.url, dir, user)
}

/// The same with the server at `url` (one instance of several, or a load balancer).
pub fn enrolled_device_at(admin: &Admin, url: &str, dir: &Path, user: &str) -> Device {
    let mut device = Device::init(dir, &device_keystore()).unwrap_or_else(|e| panic!("init: {e}"));
    let code = admin.run(&["device", "enrol", "--user", user]);
    // Named after its directory ("wim2"), so each test device's name is its own.
    let name = dir.file_name().map_or_else(|| user.to_owned(), |n| n.to_string_lossy().into_owned());
    device
        .enrol(url, &code, &name, eenplan_core::sync::Platform::Android)
        .unwrap_or_else(|e| panic!("enrol: {e}"));
    admin.run(&["device", "approve", "--code", &code]);
    device.sync().unwrap_or_else(|e| panic!("first sync: {e}"));
    device
}

/// A whole test network: a server, an administrator, and users (name, organisation, role),
/// each organisation created once.
#[derive(Debug)]
pub struct Network {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub admin: Admin,
}

impl Network {
    pub fn start(users: &[(&str, &str, &str)]) -> Network {
        Self::start_with(users, None)
    }

    /// The same on the PostgreSQL database at `database` (see [`Server::start_with`]).
    pub fn start_with(users: &[(&str, &str, &str)], database: Option<&str>) -> Network {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let server = Server::start_with(&dir.path().join("server"), "127.0.0.1:0", database);
        let admin = Admin::init(&dir.path().join("admin"), &server);
        let mut orgs: Vec<&str> = Vec::new();
        for (name, org, role) in users {
            if !orgs.contains(org) {
                admin.run(&["org", "add", org]);
                orgs.push(org);
            }
            admin.run(&["user", "add", "--org", org, "--name", name, "--role", role]);
        }
        Network { dir, server, admin }
    }

    /// A device in its own directory `name`, enrolled for `user` and approved.
    pub fn device(&self, name: &str, user: &str) -> Device {
        enrolled_device(&self.admin, &self.server, &self.dir.path().join(name), user)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stops the server, lets `tamper` change its database behind its back (what a
    /// compromised server could do), and starts it again on the address the devices pinned.
    pub fn tamper_with_server_database(&mut self, tamper: impl FnOnce(&rusqlite::Connection)) {
        self.server.kill();
        let conn = rusqlite::Connection::open(self.server.data.join("server.db"))
            .unwrap_or_else(|e| panic!("cannot open the server's database: {e}"));
        tamper(&conn);
        drop(conn);
        let listen = self.server.address();
        self.server = Server::start_on(&self.server.data.clone(), &listen);
    }
}

/// A session for `device` over plain HTTP, as any client could open one.
pub fn device_session(agent: &ureq::Agent, url: &str, device: &Device) -> String {
    let post = |path: &str, body: serde_json::Value| -> serde_json::Value {
        let mut response = agent
            .post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .send(serde_json::to_vec(&body).unwrap_or_else(|e| panic!("session: {e}")))
            .unwrap_or_else(|e| panic!("session: {e}"));
        serde_json::from_slice(&response.body_mut().read_to_vec().unwrap_or_else(|e| panic!("session: {e}")))
            .unwrap_or_else(|e| panic!("session: {e}"))
    };
    let id = device.device_id().to_string();
    let challenge: eenplan_protocol::api::ChallengeResponse = serde_json::from_value(post(
        eenplan_protocol::api::PATH_AUTH_CHALLENGE,
        serde_json::to_value(eenplan_protocol::api::ChallengeRequest { device_id: id.clone() })
            .unwrap_or_else(|e| panic!("session: {e}")),
    ))
    .unwrap_or_else(|e| panic!("session: {e}"));
    let signature = device.identity().sign(&eenplan_protocol::api::session_message(
        &eenplan_protocol::api::unhex(&challenge.challenge)
            .unwrap_or_else(|| panic!("session: a challenge that is not hex")),
    ));
    let request = eenplan_protocol::api::SessionRequest {
        device_id: id,
        challenge: challenge.challenge,
        signature: eenplan_protocol::api::hex(&signature.to_bytes()),
        wipe_nonce_hash: None,
        name: None,
    };
    let session: eenplan_protocol::api::SessionResponse = serde_json::from_value(post(
        eenplan_protocol::api::PATH_AUTH_SESSION,
        serde_json::to_value(request).unwrap_or_else(|e| panic!("session: {e}")),
    ))
    .unwrap_or_else(|e| panic!("session: {e}"));
    session.token
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The server as a real process on 127.0.0.1:0, driven over HTTP the way the admin CLI and
//! the devices drive it. Each test starts its own server (and database) and waits for its
//! `listening on` line; nothing here sleeps: waits are bounded by read timeouts.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use eenplan_protocol::api::{
    self, Assignment, CertificateInfo, CertificateUpload, ChallengeRequest, ChallengeResponse, DeviceInfo,
    EnrolRequest, EnrolResponse, EnrolmentCode, ErrorBody, InitRequest, MeResponse, NewEnrolment, NewOrg,
    NewUser, OrgInfo, SessionRequest, SessionResponse, UserInfo, hex, unhex,
};
use eenplan_protocol::certificate::{AdminBody, Certificate, DeviceBody, device_id_of};
use eenplan_protocol::sync::{
    self, Blob, EnvelopeUpload, Fixed, MAX_SYNC_REQUEST, SnapshotUpload, SyncRequest, SyncResponse,
};
use eenplan_protocol::{Bundle, BundleHeader, BundleKind, DocumentId, envelope};
use eenplan_server::storage::{DeviceId, SqliteStorage, Storage, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tungstenite::Message;
use tungstenite::stream::MaybeTlsStream;

/// The longest any test waits for something the server should do at once.
const WAIT: Duration = Duration::from_secs(20);
const EPOCH_KEY: [u8; 32] = [9; 32];

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&random())
}

// The server process.

struct Server {
    /// Taken by the test that waits for the process to exit.
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    _stdout: BufReader<ChildStdout>,
    agent: ureq::Agent,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("server.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_eenplan-server"))
            .args(["serve", "--data"])
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            panic!("the server did not start: {line:?}\n{log}");
        };
        let addr = addr.parse().unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Server { child: Some(child), addr, dir, _stdout: stdout, agent }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("data").join("server.db")
    }

    fn get(&self, path: &str, headers: &[(&str, String)]) -> Reply {
        let mut request = self.agent.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Reply::from(request.call().unwrap())
    }

    fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
        let mut request = self.agent.post(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Reply::from(request.send(body).unwrap())
    }

    fn post_json<T: Serialize>(&self, path: &str, body: &T) -> Reply {
        self.post(path, &[("content-type", "application/json".into())], &serde_json::to_vec(body).unwrap())
    }

    fn get_as(&self, path: &str, token: &str) -> Reply {
        self.get(path, &[("authorization", format!("Bearer {token}"))])
    }

    fn post_as<T: Serialize>(&self, path: &str, token: &str, body: &T) -> Reply {
        self.post(
            path,
            &[("authorization", format!("Bearer {token}")), ("content-type", "application/json".into())],
            &serde_json::to_vec(body).unwrap(),
        )
    }

    fn sync_raw(&self, token: &str, body: &[u8]) -> Reply {
        self.post(
            api::PATH_SYNC,
            &[("authorization", format!("Bearer {token}")), ("content-type", "application/cbor".into())],
            body,
        )
    }

    fn sync(&self, device: &Device, request: &SyncRequest) -> SyncResponse {
        let reply = self.sync_raw(device.token(), &sync::encode(request));
        assert_eq!(reply.status, 200, "{}", reply.text());
        sync::decode(&reply.body, usize::MAX).unwrap()
    }

    fn healthy(&self) -> bool {
        let reply = self.get(api::PATH_HEALTH, &[]);
        reply.status == 200 && reply.text() == "ok"
    }

    fn metrics(&self) -> String {
        let reply = self.get(api::PATH_METRICS, &[]);
        assert_eq!(reply.status, 200);
        reply.text()
    }

    /// Sends raw bytes and returns the status code of the response.
    fn raw_status(&self, head: &str, body: &[u8], close_write: bool) -> u16 {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        if close_write {
            stream.shutdown(Shutdown::Write).unwrap();
        }
        let mut response = Vec::new();
        let mut buf = [0u8; 1024];
        while !response.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the connection closed without a response");
            response.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&response);
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// SIGTERM, then the exit status (within [`WAIT`]).
    fn stop(&mut self) -> std::process::ExitStatus {
        self.terminate();
        self.wait_for_exit()
    }

    fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let (done, wait) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait());
        });
        wait.recv_timeout(WAIT).expect("the server did not exit after SIGTERM").unwrap()
    }

    fn terminate(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl From<ureq::http::Response<ureq::Body>> for Reply {
    fn from(response: ureq::http::Response<ureq::Body>) -> Reply {
        let status = response.status().as_u16();
        let body = response.into_body().with_config().limit(64 * 1024 * 1024).read_to_vec().unwrap();
        Reply { status, body }
    }
}

impl Reply {
    fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.text()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of an error response with the expected status.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        self.json::<ErrorBody>().code
    }
}

// The network's keys, as the admin CLI holds them.

struct Network {
    root: SigningKey,
    admin: SigningKey,
    admin_certificate: Certificate,
    escrow_public: Vec<u8>,
}

impl Network {
    fn new() -> Network {
        let root = key();
        let admin = key();
        let admin_certificate = Certificate::sign_admin(
            &AdminBody {
                admin_public: admin.verifying_key().to_bytes(),
                name: "beheer".into(),
                issued_at_ms: 0,
            },
            &root,
        );
        let (_, escrow_public) = envelope::generate_keypair();
        Network { root, admin, admin_certificate, escrow_public }
    }

    fn root_public(&self) -> [u8; 32] {
        self.root.verifying_key().to_bytes()
    }

    fn init_body(&self) -> Vec<u8> {
        serde_json::to_vec(&InitRequest {
            root_public: hex(&self.root_public()),
            escrow_public: hex(&self.escrow_public),
            escrow_signature: hex(&self.root.sign(&api::escrow_message(&self.escrow_public)).to_bytes()),
            admin_certificate: hex(&self.admin_certificate.to_bytes()),
        })
        .unwrap()
    }

    fn headers(
        key: &SigningKey,
        method: &str,
        path: &str,
        time: i64,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let signature = key.sign(&api::admin_request_message(method, path, time, body));
        vec![
            (api::HEADER_ADMIN, hex(key.verifying_key().as_bytes())),
            (api::HEADER_TIME, time.to_string()),
            (api::HEADER_SIGNATURE, hex(&signature.to_bytes())),
            ("content-type", "application/json".into()),
        ]
    }

    fn call(&self, server: &Server, method: &str, path: &str, body: &[u8]) -> Reply {
        let headers = Network::headers(&self.admin, method, path, now_ms(), body);
        match method {
            "GET" => server.get(path, &headers),
            _ => server.post(path, &headers, body),
        }
    }

    fn post<T: Serialize>(&self, server: &Server, path: &str, body: &T) -> Reply {
        self.call(server, "POST", path, &serde_json::to_vec(body).unwrap())
    }

    fn init(&self, server: &Server) -> Reply {
        self.call(server, "POST", api::PATH_ADMIN_INIT, &self.init_body())
    }

    /// A fresh server with this network, one organisation.
    fn start() -> (Server, Network) {
        let server = Server::start();
        let network = Network::new();
        assert_eq!(network.init(&server).status, 204);
        let org = network.post(
            &server,
            api::PATH_ADMIN_ORGS,
            &NewOrg { name: "Wijkteam Noord".into(), lease_hours: 72 },
        );
        assert_eq!(org.status, 201, "{}", org.text());
        (server, network)
    }

    fn add_user(&self, server: &Server, name: &str) -> UserInfo {
        let reply = self.post(
            server,
            api::PATH_ADMIN_USERS,
            &NewUser { org: "Wijkteam Noord".into(), name: name.into(), role: "wijkteam".into() },
        );
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()
    }

    fn code_for(&self, server: &Server, user: &UserInfo) -> EnrolmentCode {
        let code = EnrolmentCode::generate(&self.root_public()).unwrap();
        let reply = self.post(
            server,
            api::PATH_ADMIN_ENROLMENTS,
            &NewEnrolment { user_id: user.id, code_id: hex(&code.id()), expires_at_ms: now_ms() + 3_600_000 },
        );
        assert_eq!(reply.status, 204, "{}", reply.text());
        code
    }

    fn certificate_for(&self, device: &Device, user: &UserInfo) -> Certificate {
        Certificate::sign_device(
            &DeviceBody {
                device_id: device.id,
                user_id: user.id,
                user_name: user.name.clone(),
                organisation: user.org.clone(),
                role: user.role.clone(),
                signing_public: device.key.verifying_key().to_bytes(),
                agreement_public: device.agreement_public.clone(),
                valid_from_ms: now_ms() - 60_000,
                valid_until_ms: now_ms() + 365 * 86_400_000,
                issuer: self.admin.verifying_key().to_bytes(),
            },
            &self.admin,
        )
    }

    fn approve(&self, server: &Server, device: &Device, certificate: &Certificate) -> Reply {
        self.post(
            server,
            &api::device_certificate_path(&device.id),
            &CertificateUpload { certificate: hex(&certificate.to_bytes()) },
        )
    }

    fn assign(&self, server: &Server, plan: [u8; 16], user: &UserInfo) {
        let reply = self.post(
            server,
            &api::admin_participants_path(&plan),
            &Assignment { user_id: user.id, role: "wijkteam".into() },
        );
        assert_eq!(reply.status, 204, "{}", reply.text());
    }

    /// A new user with one approved device holding a session.
    fn member(&self, server: &Server, name: &str) -> (UserInfo, Device) {
        let user = self.add_user(server, name);
        let mut device = Device::new();
        let code = self.code_for(server, &user);
        assert_eq!(device.enrol(server, &code).status, 200);
        let reply = self.approve(server, &device, &self.certificate_for(&device, &user));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let session = device.session(server);
        assert_eq!(session.status, 200, "{}", session.text());
        device.token = Some(session.json::<SessionResponse>().token);
        (user, device)
    }
}

// A device, as the core's sync client will be.

struct Device {
    key: SigningKey,
    agreement_secret: [u8; 32],
    agreement_public: Vec<u8>,
    id: [u8; 16],
    token: Option<String>,
}

impl Device {
    fn new() -> Device {
        let key = key();
        let (secret, agreement_public) = envelope::generate_keypair();
        let id = device_id_of(key.verifying_key().as_bytes());
        Device { key, agreement_secret: *secret, agreement_public, id, token: None }
    }

    fn token(&self) -> &str {
        self.token.as_deref().unwrap()
    }

    fn enrol(&self, server: &Server, code: &EnrolmentCode) -> Reply {
        server.post_json(api::PATH_ENROL, &self.enrol_request(code))
    }

    fn enrol_request(&self, code: &EnrolmentCode) -> EnrolRequest {
        let signing_public = self.key.verifying_key().to_bytes();
        EnrolRequest::new(code, &signing_public, &self.agreement_public, |m| self.key.sign(m).to_bytes())
    }

    fn session(&self, server: &Server) -> Reply {
        let reply =
            server.post_json(api::PATH_AUTH_CHALLENGE, &ChallengeRequest { device_id: hex(&self.id) });
        assert_eq!(reply.status, 200, "{}", reply.text());
        let challenge = reply.json::<ChallengeResponse>().challenge;
        let signature = self.key.sign(&api::session_message(&unhex(&challenge).unwrap()));
        server.post_json(
            api::PATH_AUTH_SESSION,
            &SessionRequest { device_id: hex(&self.id), challenge, signature: hex(&signature.to_bytes()) },
        )
    }

    /// A sealed change bundle for `document`, signed by this device.
    fn bundle(&self, document: DocumentId, payload: &[u8]) -> Vec<u8> {
        self.bundle_as(document, payload, self.id, &self.key, BundleKind::Changes)
    }

    fn bundle_as(
        &self,
        document: DocumentId,
        payload: &[u8],
        author: [u8; 16],
        signer: &SigningKey,
        kind: BundleKind,
    ) -> Vec<u8> {
        let header = BundleHeader { kind, document, epoch: 1, author, bundle_id: random() };
        Bundle::seal(header, &EPOCH_KEY, payload, signer).unwrap().into_bytes()
    }

    fn live(&self, server: &Server) -> tungstenite::WebSocket<MaybeTlsStream<TcpStream>> {
        let url = format!("ws://{}{}?token={}", server.addr, api::PATH_LIVE, self.token());
        let (mut socket, response) = tungstenite::connect(url).unwrap();
        assert_eq!(response.status().as_u16(), 101);
        if let MaybeTlsStream::Plain(stream) = socket.get_mut() {
            stream.set_read_timeout(Some(WAIT)).unwrap();
        }
        socket
    }
}

fn basis(plan: [u8; 16]) -> DocumentId {
    DocumentId::new(plan, 0).unwrap()
}

fn bundle_id(bytes: &[u8]) -> [u8; 16] {
    Bundle::decode(bytes.to_vec()).unwrap().header.bundle_id
}

/// The next text frame, skipping pings; panics on close or after [`WAIT`].
fn next_hint(socket: &mut tungstenite::WebSocket<MaybeTlsStream<TcpStream>>) -> String {
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => return text.to_string(),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("expected a hint, got {other:?}"),
        }
    }
}

/// Reads until the server closes the socket; panics on a hint or after [`WAIT`].
fn expect_close(socket: &mut tungstenite::WebSocket<MaybeTlsStream<TcpStream>>) {
    loop {
        match socket.read() {
            Ok(Message::Close(_))
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                panic!("the socket was not closed within {WAIT:?}")
            }
            Err(_) => return,
            Ok(other) => panic!("expected the socket to close, got {other:?}"),
        }
    }
}

// Administration and enrolment.

#[test]
fn the_network_is_initialised_once_and_a_second_init_is_a_conflict() {
    let server = Server::start();
    let network = Network::new();
    let before = network.call(&server, "GET", api::PATH_ADMIN_ORGS, b"");
    assert_eq!(before.error(409), "not_initialised");
    assert_eq!(network.init(&server).status, 204);
    assert_eq!(network.init(&server).error(409), "already_initialised");
    let other = Network::new();
    assert_eq!(other.init(&server).error(409), "already_initialised");
    let orgs = network.call(&server, "GET", api::PATH_ADMIN_ORGS, b"");
    assert_eq!(orgs.status, 200);
    assert_eq!(orgs.json::<Vec<OrgInfo>>(), vec![]);
}

#[test]
fn an_init_whose_certificate_or_escrow_signature_the_root_did_not_make_is_refused() {
    let server = Server::start();
    let network = Network::new();
    let mut forged = Network::new();
    forged.admin_certificate = network.admin_certificate.clone();
    forged.admin = network.admin.clone();
    // forged.root did not sign the admin certificate.
    assert_eq!(forged.init(&server).error(400), "bad_certificate");
    let mut request: InitRequest = serde_json::from_slice(&network.init_body()).unwrap();
    request.escrow_signature = hex(&[0; 64]);
    let reply = network.call(&server, "POST", api::PATH_ADMIN_INIT, &serde_json::to_vec(&request).unwrap());
    assert_eq!(reply.error(400), "bad_escrow_signature");
    assert_eq!(network.init(&server).status, 204);
}

#[test]
fn admin_requests_with_a_bad_signature_a_replayed_signature_or_a_stale_time_are_refused() {
    let (server, network) = Network::start();
    let path = api::PATH_ADMIN_ORGS;
    let time = now_ms();
    let good = Network::headers(&network.admin, "GET", path, time, b"");
    assert_eq!(server.get(path, &good).status, 200);
    assert_eq!(server.get(path, &good).error(401), "replayed_request");

    let other_path = Network::headers(&network.admin, "GET", api::PATH_ADMIN_USERS, now_ms(), b"");
    assert_eq!(server.get(path, &other_path).error(401), "bad_signature");

    let stale =
        Network::headers(&network.admin, "GET", path, now_ms() - api::ADMIN_CLOCK_SKEW_MS - 60_000, b"");
    assert_eq!(server.get(path, &stale).error(401), "stale_request");
    let future =
        Network::headers(&network.admin, "GET", path, now_ms() + api::ADMIN_CLOCK_SKEW_MS + 60_000, b"");
    assert_eq!(server.get(path, &future).error(401), "stale_request");

    let stranger = Network::headers(&key(), "GET", path, now_ms(), b"");
    assert_eq!(server.get(path, &stranger).error(401), "unknown_admin");
    assert_eq!(server.get(path, &[]).error(401), "missing_signature");

    // The body is signed: a body swapped under a valid signature is refused.
    let signed = serde_json::to_vec(&NewOrg { name: "Echt".into(), lease_hours: 72 }).unwrap();
    let sent = serde_json::to_vec(&NewOrg { name: "Vals".into(), lease_hours: 72 }).unwrap();
    let headers = Network::headers(&network.admin, "POST", path, now_ms(), &signed);
    assert_eq!(server.post(path, &headers, &sent).error(401), "bad_signature");

    // The query is signed too.
    let headers = Network::headers(&network.admin, "GET", "/v1/admin/devices?state=pending", now_ms(), b"");
    assert_eq!(server.get("/v1/admin/devices?state=active", &headers).error(401), "bad_signature");
    assert!(
        server.metrics().lines().any(|l| l.starts_with("eenplan_auth_failures_total ") && !l.ends_with(" 0"))
    );
}

#[test]
fn a_device_enrols_with_a_code_is_approved_and_reads_its_certificate_chain() {
    let (server, network) = Network::start();
    let ann = network.add_user(&server, "Ann");
    let device = Device::new();
    let code = network.code_for(&server, &ann);

    let reply = device.enrol(&server, &code);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let enrolled: EnrolResponse = reply.json();
    assert_eq!(enrolled.device_id, hex(&device.id));
    // What the device checks before it pins anything.
    let root: [u8; 32] = unhex(&enrolled.root_public).unwrap().try_into().unwrap();
    assert!(code.matches_root(&root));
    let escrow_signature: [u8; 64] = unhex(&enrolled.escrow_signature).unwrap().try_into().unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&root)
        .unwrap()
        .verify_strict(
            &api::escrow_message(&unhex(&enrolled.escrow_public).unwrap()),
            &ed25519_dalek::Signature::from_bytes(&escrow_signature),
        )
        .unwrap();
    assert_eq!(Device::new().enrol(&server, &code).error(404), "unknown_code", "a code is used once");

    let pending = network.call(&server, "GET", "/v1/admin/devices?state=pending", b"");
    let pending: Vec<DeviceInfo> = pending.json();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].device_id.as_str(), pending[0].state.as_str()),
        (hex(&device.id).as_str(), "pending")
    );
    assert_eq!(pending[0].user_name, "Ann");
    // The device's MAC over its keys, for the administrator to check with the code's MAC key.
    assert!(api::verify_key_mac(
        &code.mac_key(),
        &device.key.verifying_key().to_bytes(),
        &device.agreement_public,
        &unhex(&pending[0].key_mac).unwrap()
    ));

    // A certificate for other keys, another user, or signed by a stranger is refused.
    let mut wrong_user = ann.clone();
    wrong_user.id += 1;
    let reply = network.approve(&server, &device, &network.certificate_for(&device, &wrong_user));
    assert_eq!(reply.error(400), "certificate_mismatch");
    let reply = network.approve(&server, &device, &network.certificate_for(&Device::new(), &ann));
    assert_eq!(reply.error(400), "certificate_mismatch");
    let rogue = Network { admin: key(), ..Network::new() };
    let reply = network.approve(&server, &device, &rogue.certificate_for(&device, &ann));
    assert_eq!(reply.error(400), "bad_certificate");

    let certificate = network.certificate_for(&device, &ann);
    let reply = network.approve(&server, &device, &certificate);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json::<DeviceInfo>().state, "active");
    assert_eq!(network.approve(&server, &device, &certificate).error(409), "device_not_pending");

    let session = device.session(&server);
    assert_eq!(session.status, 200, "{}", session.text());
    let session: SessionResponse = session.json();
    assert!(session.expires_at_ms > now_ms());
    let me = server.get_as(api::PATH_ME, &session.token);
    assert_eq!(me.status, 200, "{}", me.text());
    let me: MeResponse = me.json();
    assert_eq!(me.lease_hours, 72);
    let certificate = Certificate::from_bytes(&unhex(&me.certificate).unwrap()).unwrap();
    let admin_certificate = Certificate::from_bytes(&unhex(&me.admin_certificate).unwrap()).unwrap();
    let body = certificate.verify_device(&admin_certificate, &network.root_public(), now_ms()).unwrap();
    assert_eq!((body.device_id, body.user_id), (device.id, ann.id));

    assert_eq!(server.get(api::PATH_ME, &[]).error(401), "missing_token");
    assert_eq!(server.get_as(api::PATH_ME, "00ff").error(401), "bad_token");
    let mut forged = unhex(&session.token).unwrap();
    forged[20] ^= 1; // a later expiry
    assert_eq!(server.get_as(api::PATH_ME, &hex(&forged)).error(401), "bad_token");
}

#[test]
fn a_pending_device_cannot_open_a_session() {
    let (server, network) = Network::start();
    let ann = network.add_user(&server, "Ann");
    let device = Device::new();
    assert_eq!(device.enrol(&server, &network.code_for(&server, &ann)).status, 200);
    assert_eq!(device.session(&server).error(403), "device_not_approved");

    // Nor can someone without the device's key, nor a device nobody enrolled.
    let impostor = Device { id: device.id, ..Device::new() };
    assert_eq!(impostor.session(&server).error(401), "bad_signature");
    assert_eq!(Device::new().session(&server).error(401), "unknown_device");
}

#[test]
fn an_expired_or_unknown_code_is_refused() {
    let (server, network) = Network::start();
    let ann = network.add_user(&server, "Ann");
    let expired = EnrolmentCode::generate(&network.root_public()).unwrap();
    // Straight into the server's database: the admin API refuses to create an expired code.
    SqliteStorage::open(server.database())
        .unwrap()
        .create_enrolment(&expired.id(), UserId(ann.id), 1)
        .unwrap();
    assert_eq!(Device::new().enrol(&server, &expired).error(410), "expired_code");
    let unknown = EnrolmentCode::generate(&network.root_public()).unwrap();
    assert_eq!(Device::new().enrol(&server, &unknown).error(404), "unknown_code");

    // A signature that does not prove the key.
    let code = network.code_for(&server, &ann);
    let device = Device::new();
    let request = EnrolRequest {
        signature: hex(&key().sign(b"something else").to_bytes()),
        ..device.enrol_request(&code)
    };
    let reply = server.post_json(api::PATH_ENROL, &request);
    assert_eq!(reply.error(401), "bad_signature");
    // A missing or malformed key MAC, or a code id that is not one.
    for request in [
        EnrolRequest { key_mac: String::new(), ..device.enrol_request(&code) },
        EnrolRequest { key_mac: "00".repeat(31), ..device.enrol_request(&code) },
        EnrolRequest { code_id: code.to_string(), ..device.enrol_request(&code) },
    ] {
        assert_eq!(server.post_json(api::PATH_ENROL, &request).error(400), "malformed", "{request:?}");
    }
    assert_eq!(device.enrol(&server, &code).status, 200, "the code was not used up by the failed try");
}

// Sync.

#[test]
fn a_bundle_reaches_another_user_only_after_they_are_assigned_to_the_plan() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    let bundle = a.bundle(basis(plan), b"first edit");
    let pushed = server.sync(
        &a,
        &SyncRequest { new_plans: vec![Fixed(plan)], push: vec![Blob(bundle.clone())], ..Default::default() },
    );
    assert_eq!(pushed.accepted, vec![Fixed(bundle_id(&bundle))]);
    assert!(pushed.rejected.is_empty());
    assert!(pushed.bundles.is_empty(), "a device never gets its own bundles back");

    let before = server.sync(&b, &SyncRequest::default());
    assert!(before.bundles.is_empty());
    let intruding = b.bundle(basis(plan), b"not mine to write");
    let refused = server.sync(
        &b,
        &SyncRequest { since: before.head, push: vec![Blob(intruding.clone())], ..Default::default() },
    );
    assert_eq!(refused.rejected.len(), 1);
    assert_eq!(
        (refused.rejected[0].bundle_id, refused.rejected[0].reason.as_str()),
        (Fixed(bundle_id(&intruding)), "no_access")
    );
    assert!(refused.accepted.is_empty());

    network.assign(&server, plan, &bob);
    let after = server.sync(&b, &SyncRequest { since: refused.head, ..Default::default() });
    assert_eq!(after.bundles, vec![Blob(bundle.clone())]);
    assert!(after.complete);
    let opened = Bundle::decode(after.bundles[0].0.clone()).unwrap();
    opened.verify(&a.key.verifying_key()).unwrap();
    assert_eq!(opened.open(&EPOCH_KEY).unwrap(), b"first edit");

    // Bob may write now, and Ann hears of it.
    let reply = server.sync(
        &b,
        &SyncRequest { since: after.head, push: vec![Blob(intruding.clone())], ..Default::default() },
    );
    assert_eq!(reply.accepted, vec![Fixed(bundle_id(&intruding))]);
    let ann_pull = server.sync(&a, &SyncRequest { since: pushed.head, ..Default::default() });
    assert_eq!(ann_pull.bundles, vec![Blob(intruding)]);
}

#[test]
fn only_the_plans_regisseur_may_add_participants_from_a_device() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let (cem, c) = network.member(&server, "Cem");
    let plan = random();
    server.sync(
        &a,
        &SyncRequest {
            new_plans: vec![Fixed(plan)],
            push: vec![Blob(a.bundle(basis(plan), b"x"))],
            ..Default::default()
        },
    );

    let directory = server.get_as(api::PATH_USERS, b.token());
    assert_eq!(directory.status, 200);
    assert_eq!(directory.json::<Vec<UserInfo>>().len(), 3);

    let path = api::participants_path(&plan);
    let reply = server.post_as(&path, b.token(), &Assignment { user_id: cem.id, role: "wijkteam".into() });
    assert_eq!(reply.error(403), "not_regisseur");
    let reply = server.post_as(&path, a.token(), &Assignment { user_id: bob.id, role: "wijkteam".into() });
    assert_eq!(reply.status, 204, "{}", reply.text());
    // Bob participates now, but is not the regisseur.
    let reply = server.post_as(&path, b.token(), &Assignment { user_id: cem.id, role: "wijkteam".into() });
    assert_eq!(reply.error(403), "not_regisseur");
    let reply = server.post_as(&path, a.token(), &Assignment { user_id: 9999, role: "wijkteam".into() });
    assert_eq!(reply.error(404), "unknown_user");
    assert_eq!(server.sync(&b, &SyncRequest::default()).bundles.len(), 1);
    assert!(server.sync(&c, &SyncRequest::default()).bundles.is_empty());
}

#[test]
fn a_push_repeated_after_a_lost_response_is_stored_once() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    let bundle = a.bundle(basis(plan), b"once");
    let request =
        SyncRequest { new_plans: vec![Fixed(plan)], push: vec![Blob(bundle.clone())], ..Default::default() };
    let first = server.sync(&a, &request);
    // The response was lost; the device sends the same request again.
    let second = server.sync(&a, &request);
    assert_eq!(first.accepted, second.accepted);
    assert_eq!(first.head, second.head, "the retry appended nothing");
    // Twice in one request is one bundle too.
    let twice = server.sync(
        &a,
        &SyncRequest {
            since: second.head,
            push: vec![Blob(bundle.clone()), Blob(bundle.clone())],
            ..Default::default()
        },
    );
    assert_eq!(twice.accepted.len(), 2);
    assert_eq!(twice.head, first.head);

    network.assign(&server, plan, &bob);
    assert_eq!(server.sync(&b, &SyncRequest::default()).bundles, vec![Blob(bundle)]);
    let metrics = server.metrics();
    assert!(metrics.contains("eenplan_pushes_appended_total 1\n"), "{metrics}");
    assert!(metrics.contains("eenplan_pushes_duplicate_total 3\n"), "{metrics}");
}

#[test]
fn forged_bundles_are_rejected_and_never_delivered() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    let bobs_plan = random();
    server.sync(&a, &SyncRequest { new_plans: vec![Fixed(plan)], ..Default::default() });
    server.sync(&b, &SyncRequest { new_plans: vec![Fixed(bobs_plan)], ..Default::default() });

    let genuine = a.bundle(basis(plan), b"genuine");
    let signed_by_stranger = a.bundle_as(basis(plan), b"forged", a.id, &key(), BundleKind::Changes);
    let claims_bob = a.bundle_as(basis(plan), b"forged", b.id, &a.key, BundleKind::Changes);
    let into_bobs_plan = a.bundle(basis(bobs_plan), b"forged");
    let snapshot_as_change = a.bundle_as(basis(plan), b"forged", a.id, &a.key, BundleKind::Snapshot);
    let mut tampered = a.bundle(basis(plan), b"forged");
    tampered[90] ^= 1;
    let garbage = vec![1u8; 40];
    let reply = server.sync(
        &a,
        &SyncRequest {
            push: [
                &genuine,
                &signed_by_stranger,
                &claims_bob,
                &into_bobs_plan,
                &snapshot_as_change,
                &tampered,
                &garbage,
            ]
            .into_iter()
            .map(|b| Blob(b.clone()))
            .collect(),
            // A change where a snapshot belongs.
            snapshots: vec![SnapshotUpload { covers: 1, bundle: Blob(a.bundle(basis(plan), b"forged")) }],
            ..Default::default()
        },
    );
    assert_eq!(reply.accepted, vec![Fixed(bundle_id(&genuine))]);
    let reasons: Vec<&str> = reply.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "bad_signature",
            "wrong_author",
            "no_access",
            "wrong_kind",
            "bad_signature",
            "malformed",
            "wrong_kind"
        ]
    );
    assert_eq!(reply.rejected[0].bundle_id, Fixed(bundle_id(&signed_by_stranger)));

    network.assign(&server, plan, &bob);
    let pulled = server.sync(&b, &SyncRequest::default());
    assert_eq!(pulled.bundles, vec![Blob(genuine)], "only the genuine bundle is ever delivered");
    assert!(server.metrics().contains("eenplan_pushes_rejected_total 7\n"));
}

#[test]
fn a_snapshot_upload_is_stored_and_sent_to_a_new_participant() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    let changes: Vec<Vec<u8>> = (0..3).map(|i| a.bundle(basis(plan), &[i])).collect();
    let pushed = server.sync(
        &a,
        &SyncRequest {
            new_plans: vec![Fixed(plan)],
            push: changes.iter().cloned().map(Blob).collect(),
            ..Default::default()
        },
    );
    assert_eq!(pushed.accepted.len(), 3);
    let snapshot = a.bundle_as(basis(plan), b"everything", a.id, &a.key, BundleKind::Snapshot);
    let reply = server.sync(
        &a,
        &SyncRequest {
            since: pushed.head,
            snapshots: vec![SnapshotUpload { covers: pushed.head, bundle: Blob(snapshot.clone()) }],
            ..Default::default()
        },
    );
    assert_eq!(reply.accepted, vec![Fixed(bundle_id(&snapshot))]);
    network.assign(&server, plan, &bob);
    assert_eq!(server.sync(&b, &SyncRequest::default()).bundles, vec![Blob(snapshot)]);
}

#[test]
fn key_envelopes_reach_their_recipient_and_key_requests_name_devices_without_one() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let (_, c) = network.member(&server, "Cem");
    let plan = random();
    server.sync(&a, &SyncRequest { new_plans: vec![Fixed(plan)], ..Default::default() });
    let quiet = server.sync(&a, &SyncRequest::default());
    assert!(quiet.key_requests.is_empty(), "nobody else may read the plan yet");

    network.assign(&server, plan, &bob);
    let asked = server.sync(&a, &SyncRequest::default());
    assert_eq!(asked.key_requests.len(), 4, "Bob's device lacks the keys of all four compartments");
    let request = &asked.key_requests[0];
    assert_eq!(request.document, Fixed(basis(plan).to_bytes()));
    assert_eq!(request.epoch, 1);
    // The sealer checks whom it seals to, through the pinned root.
    let certificate = Certificate::from_bytes(&request.certificate.0).unwrap();
    let admin_certificate = Certificate::from_bytes(&request.admin_certificate.0).unwrap();
    let body = certificate.verify_device(&admin_certificate, &network.root_public(), now_ms()).unwrap();
    assert_eq!(body.device_id, b.id);

    let sealed = envelope::seal(&body.agreement_public, b.id, basis(plan), 1, &EPOCH_KEY).unwrap();
    let to_cem = envelope::seal(&c.agreement_public, c.id, basis(plan), 1, &EPOCH_KEY).unwrap();
    let to_escrow =
        envelope::seal(&network.escrow_public, api::ESCROW_RECIPIENT, basis(plan), 1, &EPOCH_KEY).unwrap();
    let upload = |recipient: [u8; 16], bytes: &[u8]| EnvelopeUpload {
        recipient: Fixed(recipient),
        document: Fixed(basis(plan).to_bytes()),
        epoch: 1,
        envelope: Blob(bytes.to_vec()),
    };
    let answered = server.sync(
        &a,
        &SyncRequest {
            envelopes: vec![
                upload(b.id, &sealed),
                upload(c.id, &to_cem),
                upload(api::ESCROW_RECIPIENT, &to_escrow),
            ],
            ..Default::default()
        },
    );
    assert_eq!(answered.key_requests.len(), 3, "the basis key is delivered; three compartments to go");

    let received = server.sync(&b, &SyncRequest::default());
    assert_eq!(received.envelopes.len(), 1);
    let delivered = &received.envelopes[0];
    assert_eq!((delivered.document, delivered.epoch), (Fixed(basis(plan).to_bytes()), 1));
    let key = envelope::open(&delivered.envelope.0, &b.agreement_secret, b.id, basis(plan), 1).unwrap();
    assert_eq!(*key, EPOCH_KEY);
    assert!(
        server.sync(&c, &SyncRequest::default()).envelopes.is_empty(),
        "Cem does not take part in the plan"
    );

    // Bob's device can check who wrote a bundle.
    let info = server.get_as(&format!("{}?device={}", api::PATH_CERTIFICATES, hex(&a.id)), b.token());
    assert_eq!(info.status, 200, "{}", info.text());
    // A client may read it as a `MeResponse`.
    assert_eq!(info.json::<MeResponse>().lease_hours, 72);
    let info: CertificateInfo = info.json();
    assert_eq!(info.revoked_at_ms, None);
    let certificate = Certificate::from_bytes(&unhex(&info.certificate).unwrap()).unwrap();
    let admin_certificate = Certificate::from_bytes(&unhex(&info.admin_certificate).unwrap()).unwrap();
    assert_eq!(
        certificate.verify_device(&admin_certificate, &network.root_public(), now_ms()).unwrap().device_id,
        a.id
    );
    let unknown = server.get_as(&format!("{}?device={}", api::PATH_CERTIFICATES, hex(&[7; 16])), b.token());
    assert_eq!(unknown.error(404), "unknown_device");
}

// Bad input.

#[test]
fn malformed_truncated_and_oversized_requests_are_refused_and_the_server_stays_healthy() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let token = a.token().to_string();

    assert_eq!(server.sync_raw(&token, b"\xff\x00 not cbor").error(400), "malformed");
    let whole = sync::encode(&SyncRequest {
        push: vec![Blob(a.bundle(basis(random()), b"x"))],
        ..Default::default()
    });
    assert_eq!(server.sync_raw(&token, &whole[..whole.len() / 2]).error(400), "malformed");
    assert_eq!(server.sync_raw("nonsense", &whole).error(401), "bad_token");

    // Declared larger than the limit: refused before a byte of the body is read.
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/cbor\r\ncontent-length: {}\r\n\r\n",
        MAX_SYNC_REQUEST + 1
    );
    assert_eq!(server.raw_status(&head, b"", false), 413);
    // A body that ends before its declared length.
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n"
    );
    assert_eq!(server.raw_status(&head, &whole[..10], true), 400);
    // Chunked, without a declared length, and too long. The client stops just past the limit
    // and waits: everything it sent is read, so the server's close is orderly and the answer
    // arrives (unread bytes at a close would turn it into a reset).
    let head = "POST /v1/enrol HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n";
    let mut chunked = format!("{:x}\r\n", 100_000).into_bytes();
    chunked.extend_from_slice(&[b' '; 64 * 1024 + 100]);
    assert_eq!(server.raw_status(head, &chunked, false), 413);
    // The same for JSON with a declared length.
    let head = "POST /v1/enrol HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 70000\r\n\r\n";
    assert_eq!(server.raw_status(head, b"", false), 413);

    assert_eq!(server.post(api::PATH_ENROL, &[], b"{not json").error(400), "malformed");
    assert_eq!(server.post(api::PATH_AUTH_CHALLENGE, &[], b"{\"device_id\": 5}").error(400), "malformed");
    assert_eq!(
        server.post(api::PATH_AUTH_CHALLENGE, &[], b"{\"device_id\": \"abc\"}").error(400),
        "malformed"
    );
    let almost = [b' '; 60 * 1024];
    assert_eq!(server.post(api::PATH_ENROL, &[], &almost).error(400), "malformed", "under the limit: read");
    assert_eq!(network.call(&server, "POST", api::PATH_ADMIN_ORGS, b"[1,2").error(400), "malformed");
    assert_eq!(server.get("/v1/nothing-here", &[]).error(404), "no_route");
    assert!(server.healthy());
    assert!(server.sync(&a, &SyncRequest::default()).bundles.is_empty(), "and it still syncs");
}

#[test]
fn the_metrics_endpoint_lists_the_counters() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let plan = random();
    server.sync(
        &a,
        &SyncRequest {
            new_plans: vec![Fixed(plan)],
            push: vec![Blob(a.bundle(basis(plan), b"x"))],
            ..Default::default()
        },
    );
    let metrics = server.metrics();
    for expected in [
        "eenplan_requests_total{class=\"sync\"} 1\n",
        "eenplan_requests_total{class=\"admin\"} ",
        "eenplan_responses_total{status=\"2xx\"} ",
        "eenplan_pushes_appended_total 1\n",
        "eenplan_pushes_duplicate_total 0\n",
        "eenplan_group_commit_batches_total 1\n",
        "eenplan_group_commit_bundles_total 1\n",
        "eenplan_live_connections 0\n",
        "# TYPE eenplan_live_connections gauge\n",
        "eenplan_auth_failures_total 0\n",
        "eenplan_sync_bytes_in_total ",
    ] {
        assert!(metrics.contains(expected), "{expected:?} missing from\n{metrics}");
    }
    let bytes_out: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("eenplan_sync_bytes_out_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes_out > 0);
}

// Live hints.

#[test]
fn a_live_socket_hears_of_another_devices_push() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    let elsewhere = random();
    server.sync(&a, &SyncRequest { new_plans: vec![Fixed(plan), Fixed(elsewhere)], ..Default::default() });
    network.assign(&server, plan, &bob);

    let mut socket = b.live(&server);
    assert!(server.metrics().contains("eenplan_live_connections 1\n"));
    // First a push Bob may not read, then one he may: the first hint he hears is the second.
    server.sync(
        &a,
        &SyncRequest { push: vec![Blob(a.bundle(basis(elsewhere), b"private"))], ..Default::default() },
    );
    let document = DocumentId::new(plan, 2).unwrap();
    server.sync(&a, &SyncRequest { push: vec![Blob(a.bundle(document, b"for bob"))], ..Default::default() });
    assert_eq!(next_hint(&mut socket), hex(&document.to_bytes()));
    assert_eq!(server.sync(&b, &SyncRequest::default()).bundles.len(), 1);

    // The token may also travel in the Authorization header.
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}{}",
        server.addr,
        api::PATH_LIVE
    ))
    .unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", b.token()).parse().unwrap());
    let (mut second, _) = tungstenite::connect(request).unwrap();
    if let MaybeTlsStream::Plain(stream) = second.get_mut() {
        stream.set_read_timeout(Some(WAIT)).unwrap();
    }
    server.sync(&a, &SyncRequest { push: vec![Blob(a.bundle(basis(plan), b"again"))], ..Default::default() });
    assert_eq!(next_hint(&mut second), hex(&basis(plan).to_bytes()));
    assert_eq!(next_hint(&mut socket), hex(&basis(plan).to_bytes()));

    let refused = tungstenite::connect(format!("ws://{}{}?token=00", server.addr, api::PATH_LIVE));
    assert!(matches!(refused, Err(tungstenite::Error::Http(response)) if response.status().as_u16() == 401));
}

#[test]
fn a_live_socket_hears_when_its_user_is_added_to_a_plan() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    server.sync(
        &a,
        &SyncRequest {
            new_plans: vec![Fixed(plan)],
            push: vec![Blob(a.bundle(basis(plan), b"x"))],
            ..Default::default()
        },
    );
    let mut socket = b.live(&server);
    network.assign(&server, plan, &bob);
    assert_eq!(next_hint(&mut socket), hex(&basis(plan).to_bytes()));
    assert_eq!(server.sync(&b, &SyncRequest::default()).bundles.len(), 1);
}

#[test]
fn a_live_socket_is_closed_when_its_device_is_revoked() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    server.sync(&a, &SyncRequest { new_plans: vec![Fixed(plan)], ..Default::default() });
    network.assign(&server, plan, &bob);
    let mut socket = b.live(&server);

    // There is no revocation endpoint yet; revoke in the database, as it will.
    SqliteStorage::open(server.database()).unwrap().revoke_device(DeviceId(b.id), now_ms()).unwrap();
    server.sync(
        &a,
        &SyncRequest { push: vec![Blob(a.bundle(basis(plan), b"after revocation"))], ..Default::default() },
    );
    expect_close(&mut socket);
    assert_eq!(server.get_as(api::PATH_ME, b.token()).error(403), "device_revoked");
    assert_eq!(
        server.sync_raw(b.token(), &sync::encode(&SyncRequest::default())).error(403),
        "device_revoked"
    );
    assert_eq!(b.session(&server).error(403), "device_revoked");
    // Its certificate stays readable, marked revoked, so receivers can judge its old bundles.
    let info = server.get_as(&format!("{}?device={}", api::PATH_CERTIFICATES, hex(&b.id)), a.token());
    assert!(info.json::<CertificateInfo>().revoked_at_ms.is_some());
}

// The process.

#[test]
fn sigterm_stops_the_server_cleanly_with_status_zero() {
    let (mut server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let plan = random();
    server.sync(
        &a,
        &SyncRequest {
            new_plans: vec![Fixed(plan)],
            push: vec![Blob(a.bundle(basis(plan), b"x"))],
            ..Default::default()
        },
    );
    let mut socket = a.live(&server);

    server.terminate();
    expect_close(&mut socket);
    let status = server.wait_for_exit();
    assert!(status.success(), "{status:?}");

    // What was acknowledged is on disk.
    let storage = SqliteStorage::open(server.database()).unwrap();
    assert_eq!(storage.head().unwrap(), 2, "the plan's grant and the pushed bundle");
    let log = std::fs::read_to_string(server.dir.path().join("server.log")).unwrap();
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn the_server_speaks_https_with_the_certificate_it_is_given() {
    // A self-signed certificate for 127.0.0.1 made for this test (openssl, valid 100 years);
    // its key protects nothing.
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut server = Server::start_with(&[
        "--tls-cert",
        &format!("{data}/tls-cert.pem"),
        "--tls-key",
        &format!("{data}/tls-key.pem"),
    ]);
    let certificate = ureq::tls::Certificate::from_pem(include_bytes!("data/tls-cert.pem")).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[certificate]))
                .build(),
        )
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let reply =
        Reply::from(agent.get(format!("https://{}{}", server.addr, api::PATH_HEALTH)).call().unwrap());
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"));
    assert!(server.stop().success());
}

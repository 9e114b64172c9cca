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

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use eenplan_protocol::api::{
    self, Assignment, AuditKeyUpload, AuditUploadPage, CertificateInfo, CertificateUpload, ChallengeRequest,
    ChallengeResponse, DeviceInfo, EnrolRequest, EnrolResponse, EnrolmentCode, ErrorBody, InitRequest,
    MeResponse, NewEnrolment, NewOrg, NewUser, OrgInfo, PolicyInfo, PolicyUpload, RevocationListStored,
    RevokeRequest, RoleChangeRequest, RotationsQueued, ServerAuditKey, ServerEventPage, SessionRequest,
    SessionResponse, UserInfo, UserPlans, WipeOrderRequest, WipeOrderResponse, WipeReportUpload, hex, unhex,
};
use eenplan_protocol::audit::{
    self, Actor, AuditAction, AuditEvent, AuditKey, AuditRefusal, AuditResult, AuditUpload, ChainReport,
    SignedAuditKey, SignedEvent, verify_chain,
};
use eenplan_protocol::certificate::{AdminBody, Certificate, DeviceBody, device_id_of};
use eenplan_protocol::device_name::{Platform, SignedDeviceName};
use eenplan_protocol::epoch::{Commitment, Minter, SignedCommitment};
use eenplan_protocol::policy::{Access, Policy, SignedPolicy};
use eenplan_protocol::rekey::{
    MAX_REKEY_REQUEST, RekeyAnswer, RekeyBatch, RekeyEnvelope, RekeyResult, RekeyStatus, RekeyTask,
    RekeyTasks,
};
use eenplan_protocol::revocation::{MAX_REVOCATION_LIST_LEN, RevocationList, RevokedDevice};
use eenplan_protocol::sync::{
    self, Blob, EnvelopeUpload, Fixed, MAX_SYNC_REQUEST, SyncRequest, SyncResponse,
};
use eenplan_protocol::wipe::{self, RevocationReason, WipeCause, WipeOrder, WipeReport};
use eenplan_protocol::{Bundle, BundleKind, DocumentId, NewBundle, envelope};
use eenplan_server::storage::{DeviceId, SqliteStorage, Storage, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tungstenite::Message;
use tungstenite::stream::MaybeTlsStream;

/// The longest any test waits for something the server should do at once.
const WAIT: Duration = Duration::from_secs(20);
/// The bearer token the test servers' `/metrics` asks for.
const METRICS_TOKEN: &str = "metrics-test-token";
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
        Server::start_in(tempfile::tempdir().unwrap(), extra)
    }

    /// SIGTERM, then a new process on the same data directory (another port).
    fn restart(mut self) -> Server {
        assert!(self.stop().success());
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Server::start_in(dir, &[])
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let log = File::options().create(true).append(true).open(dir.path().join("server.log")).unwrap();
        std::fs::write(dir.path().join("metrics-token"), METRICS_TOKEN).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_eenplan-server"))
            .args(["serve", "--data"])
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--metrics-token-file")
            .arg(dir.path().join("metrics-token"))
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

    /// The origin administrators address this server by.
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The one-time secret its init must carry, from its data directory.
    fn init_secret(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data").join(api::INIT_SECRET_FILE))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
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
        let reply = self.get(api::PATH_METRICS, &[("authorization", format!("Bearer {METRICS_TOKEN}"))]);
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
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl From<ureq::http::Response<ureq::Body>> for Reply {
    fn from(response: ureq::http::Response<ureq::Body>) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().with_config().limit(64 * 1024 * 1024).read_to_vec().unwrap();
        Reply { status, headers, body }
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
                organisation: None,
            },
            &root,
        );
        let (_, escrow_public) = envelope::generate_keypair();
        Network { root, admin, admin_certificate, escrow_public }
    }

    fn root_public(&self) -> [u8; 32] {
        self.root.verifying_key().to_bytes()
    }

    fn init_body(&self, server: &Server) -> Vec<u8> {
        serde_json::to_vec(&InitRequest {
            init_secret: server.init_secret(),
            root_public: hex(&self.root_public()),
            escrow_public: hex(&self.escrow_public),
            escrow_signature: hex(&self.root.sign(&api::escrow_message(&self.escrow_public)).to_bytes()),
            admin_certificate: hex(&self.admin_certificate.to_bytes()),
            policy: hex(&self.sign_policy(&test_policy(1)).to_bytes()),
        })
        .unwrap()
    }

    fn sign_policy(&self, policy: &Policy) -> SignedPolicy {
        policy.sign(&self.root).unwrap()
    }

    fn upload_policy(&self, server: &Server, signed: &SignedPolicy) -> Reply {
        self.post(server, api::PATH_ADMIN_POLICY, &PolicyUpload { policy: hex(&signed.to_bytes()) })
    }

    /// A wipe order for `device`, signed by this network's administrator.
    fn wipe_order(&self, device: &Device, reason: RevocationReason) -> wipe::Signed {
        WipeOrder {
            device: Fixed(device.id),
            reason,
            issued_at_ms: now_ms(),
            admin_certificate: self.admin_certificate.to_bytes(),
        }
        .sign(&self.admin)
    }

    /// The newest revocation list the server holds (verified), or none.
    fn revocations(&self, server: &Server) -> RevocationList {
        let reply = self.call(server, "GET", api::PATH_ADMIN_REVOCATIONS, b"");
        if reply.status == 404 {
            assert_eq!(reply.error(404), "no_revocation_list");
            return RevocationList::none();
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
        RevocationList::verify(&reply.body, &self.root_public()).unwrap()
    }

    /// Revokes `device` as the CLI does: the signed list naming it first, then the revocation.
    fn revoke(&self, server: &Server, device: &Device) -> Reply {
        let current = self.revocations(server);
        if current.is_revoked(&device.id).is_none() {
            let entry = RevokedDevice::sign(
                device.id,
                now_ms(),
                RevocationReason::Stolen,
                "Wijkteam Noord",
                &self.admin,
            );
            let next = current.next(&[entry], self.admin_certificate.to_bytes(), now_ms()).unwrap();
            let listed =
                self.call(server, "POST", api::PATH_ADMIN_REVOCATIONS, &next.sign(&self.admin).to_bytes());
            assert_eq!(listed.status, 200, "{}", listed.text());
        }
        let order = self.wipe_order(device, RevocationReason::Stolen);
        self.post(
            server,
            &api::admin_revoke_path(&device.id),
            &RevokeRequest { reason: "stolen".into(), wipe_order: hex(&order.to_bytes()) },
        )
    }

    fn rekey_tasks(&self, server: &Server) -> RekeyTasks {
        let reply = self.call(server, "GET", &format!("{}?limit=50", api::PATH_ADMIN_REKEY), b"");
        assert_eq!(reply.status, 200, "{}", reply.text());
        sync::decode(&reply.body, MAX_REKEY_REQUEST).unwrap()
    }

    /// Posts `results` as one batch; the server's answer.
    fn rekey(&self, server: &Server, results: Vec<RekeyResult>) -> RekeyAnswer {
        let reply = self.call(server, "POST", api::PATH_ADMIN_REKEY, &RekeyBatch { results }.to_bytes());
        assert_eq!(reply.status, 200, "{}", reply.text());
        sync::decode(&reply.body, MAX_REKEY_REQUEST).unwrap()
    }

    /// What became of a single result.
    fn rekey_one(&self, server: &Server, result: &RekeyResult) -> RekeyStatus {
        let answer = self.rekey(server, vec![result.clone()]);
        assert_eq!(answer.outcomes.len(), 1);
        answer.outcomes[0].status
    }

    /// The administrator's commitment to `key` as `document`'s key of `epoch`.
    fn commit(&self, document: DocumentId, epoch: u32, key: &[u8; 32]) -> SignedCommitment {
        let minter = Minter::Admin { certificate: self.admin_certificate.to_bytes() };
        Commitment::new(document, epoch, key, minter, now_ms()).sign(&self.admin)
    }

    /// The next epoch of a task's document, sealed to every recipient and escrow.
    fn rekey_result(&self, tasks: &RekeyTasks, task: &RekeyTask, key: &[u8; 32]) -> RekeyResult {
        let document = DocumentId::from_bytes(&task.document.0).unwrap();
        let epoch = task.current_epoch + 1;
        let seal = |recipient: [u8; 16], public: &[u8]| RekeyEnvelope {
            recipient: Fixed(recipient),
            epoch,
            envelope: Blob(envelope::seal(public, recipient, document, epoch, key).unwrap()),
        };
        let mut envelopes: Vec<RekeyEnvelope> = task
            .recipients
            .iter()
            .map(|r| {
                let listed = tasks.devices.iter().find(|d| d.device == r.device).unwrap();
                let certificate = Certificate::from_bytes(&listed.certificate.0).unwrap();
                let admin = tasks.admin_certificates[listed.admin_certificate as usize].clone();
                let admin = Certificate::from_bytes(&admin.0).unwrap();
                let body = certificate.verify_device(&admin, &self.root_public(), now_ms()).unwrap();
                seal(body.device_id, &body.agreement_public)
            })
            .collect();
        envelopes.push(seal(api::ESCROW_RECIPIENT, &self.escrow_public));
        RekeyResult {
            document: task.document,
            new_epoch: epoch,
            commitment: Blob(self.commit(document, epoch, key).to_bytes()),
            envelopes,
        }
    }

    /// The headers of an admin request signed by `key` for this network and `server`.
    fn headers(
        &self,
        server: &Server,
        key: &SigningKey,
        method: &str,
        path: &str,
        time: i64,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        self.headers_for(&self.root_public(), &server.origin(), key, method, path, time, body)
    }

    /// The headers of an admin request signed for `root` and `origin`.
    #[allow(clippy::too_many_arguments)]
    fn headers_for(
        &self,
        root: &[u8; 32],
        origin: &str,
        key: &SigningKey,
        method: &str,
        path: &str,
        time: i64,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let audience = api::AdminAudience { root_public: root, origin };
        let signature = key.sign(&api::admin_request_message(audience, method, path, time, body));
        vec![
            (api::HEADER_ADMIN, hex(key.verifying_key().as_bytes())),
            (api::HEADER_TIME, time.to_string()),
            (api::HEADER_ORIGIN, origin.to_string()),
            (api::HEADER_SIGNATURE, hex(&signature.to_bytes())),
            ("content-type", "application/json".into()),
        ]
    }

    fn call(&self, server: &Server, method: &str, path: &str, body: &[u8]) -> Reply {
        let headers = self.headers(server, &self.admin, method, path, now_ms(), body);
        match method {
            "GET" => server.get(path, &headers),
            _ => server.post(path, &headers, body),
        }
    }

    fn post<T: Serialize>(&self, server: &Server, path: &str, body: &T) -> Reply {
        self.call(server, "POST", path, &serde_json::to_vec(body).unwrap())
    }

    fn init(&self, server: &Server) -> Reply {
        self.call(server, "POST", api::PATH_ADMIN_INIT, &self.init_body(server))
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
        self.add_user_as(server, name, "wijkteam")
    }

    fn add_user_as(&self, server: &Server, name: &str, role: &str) -> UserInfo {
        let reply = self.post(
            server,
            api::PATH_ADMIN_USERS,
            &NewUser { org: "Wijkteam Noord".into(), name: name.into(), role: role.into() },
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

    /// A new wijkteam user with one approved device holding a session.
    fn member(&self, server: &Server, name: &str) -> (UserInfo, Device) {
        self.member_as(server, name, "wijkteam")
    }

    /// A new user with `role` and one approved device holding a session.
    fn member_as(&self, server: &Server, name: &str, role: &str) -> (UserInfo, Device) {
        let user = self.add_user_as(server, name, role);
        let device = self.device_of(server, &user);
        (user, device)
    }

    /// Another approved device, holding a session, for `user`.
    fn device_of(&self, server: &Server, user: &UserInfo) -> Device {
        let mut device = Device::new();
        let code = self.code_for(server, user);
        assert_eq!(device.enrol(server, &code).status, 200);
        let reply = self.approve(server, &device, &self.certificate_for(&device, user));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let session = device.session(server);
        assert_eq!(session.status, 200, "{}", session.text());
        device.token = Some(session.json::<SessionResponse>().token);
        device
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
        self.session_registering(server, None)
    }

    /// A session that registers the hash of the nonce `nonce`, as a device that keeps a
    /// self-wipe report does.
    fn session_registering(&self, server: &Server, nonce: Option<&[u8; 32]>) -> Reply {
        let reply =
            server.post_json(api::PATH_AUTH_CHALLENGE, &ChallengeRequest { device_id: hex(&self.id) });
        if reply.status != 200 {
            return reply;
        }
        let challenge = reply.json::<ChallengeResponse>().challenge;
        let bytes = unhex(&challenge).unwrap();
        let hash = nonce.map(wipe::wipe_nonce_hash);
        let message = match &hash {
            Some(hash) => api::session_message_with_wipe_nonce(&bytes, hash),
            None => api::session_message(&bytes),
        };
        server.post_json(
            api::PATH_AUTH_SESSION,
            &SessionRequest {
                device_id: hex(&self.id),
                challenge,
                signature: hex(&self.key.sign(&message).to_bytes()),
                wipe_nonce_hash: hash.map(|h| hex(&h)),
                name: None,
            },
        )
    }

    /// This device's name and platform, signed by `signer` (its own key, or another's).
    fn name_signed_by(&self, signer: &SigningKey, label: &str) -> SignedDeviceName {
        // Built by hand so a name the rules refuse can be signed too.
        let message =
            [b"eenplan/device-name/v1\n".as_slice(), &self.id, b"android\n", label.as_bytes()].concat();
        SignedDeviceName {
            label: label.into(),
            platform: Platform::Android,
            signature: hex(&signer.sign(&message).to_bytes()),
        }
    }

    /// A session that reports `name`.
    fn session_named(&self, server: &Server, name: SignedDeviceName) -> Reply {
        let reply =
            server.post_json(api::PATH_AUTH_CHALLENGE, &ChallengeRequest { device_id: hex(&self.id) });
        let challenge = reply.json::<ChallengeResponse>().challenge;
        let message = api::session_message(&unhex(&challenge).unwrap());
        server.post_json(
            api::PATH_AUTH_SESSION,
            &SessionRequest {
                device_id: hex(&self.id),
                challenge,
                signature: hex(&self.key.sign(&message).to_bytes()),
                wipe_nonce_hash: None,
                name: Some(name),
            },
        )
    }

    /// The self-wipe report this device keeps beside its store for `nonce`, as uploaded.
    fn self_wipe_report(&self, nonce: &[u8; 32]) -> WipeReportUpload {
        let report = WipeReport {
            device: Fixed(self.id),
            cause: WipeCause::FailedUnlocks,
            signed_at_ms: now_ms(),
            nonce: Some(Fixed(*nonce)),
        };
        WipeReportUpload { report: hex(&report.sign(&self.key).to_bytes()) }
    }

    /// A sealed change bundle for `document`, signed by this device.
    fn bundle(&self, document: DocumentId, payload: &[u8]) -> Vec<u8> {
        self.bundle_as(document, payload, self.id, &self.key, BundleKind::Changes)
    }

    /// A change bundle sealed under `epoch`.
    fn bundle_at(&self, document: DocumentId, epoch: u32, payload: &[u8]) -> Vec<u8> {
        let header = NewBundle { kind: BundleKind::Changes, document, epoch, author: self.id };
        Bundle::seal(header, &EPOCH_KEY, payload, &self.key).unwrap().into_bytes()
    }

    /// This device's commitment to [`EPOCH_KEY`] as `document`'s key of `epoch`, under the
    /// network's first policy.
    fn commitment(&self, document: DocumentId, epoch: u32) -> Blob {
        self.commitment_under(document, epoch, 1)
    }

    /// The same, naming `policy_version`.
    fn commitment_under(&self, document: DocumentId, epoch: u32, policy_version: u32) -> Blob {
        let minter = Minter::Device(Fixed(self.id));
        let commitment =
            Commitment::new(document, epoch, &EPOCH_KEY, minter, now_ms()).under_policy(policy_version);
        Blob(commitment.sign(&self.key).to_bytes())
    }

    /// `key` sealed to `recipient` (whose public key is `public`) and signed by this device,
    /// as it travels.
    fn seal_for(
        &self,
        recipient: [u8; 16],
        public: &[u8],
        document: DocumentId,
        epoch: u32,
        key: &[u8; 32],
    ) -> Vec<u8> {
        let sealed = envelope::seal(public, recipient, document, epoch, key).unwrap();
        envelope::sign(sealed, self.id, &self.key, document, epoch, recipient)
    }

    /// Epoch 1 of every compartment of `plans`, made by this device (the server keeps those
    /// its role may read).
    fn mint(&self, plans: &[[u8; 16]]) -> Vec<Blob> {
        plans
            .iter()
            .flat_map(|plan| (0..4).map(|c| self.commitment(DocumentId::new(*plan, c).unwrap(), 1)))
            .collect()
    }

    fn bundle_as(
        &self,
        document: DocumentId,
        payload: &[u8],
        author: [u8; 16],
        signer: &SigningKey,
        kind: BundleKind,
    ) -> Vec<u8> {
        let header = NewBundle { kind, document, epoch: 1, author };
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

fn zorg(plan: [u8; 16]) -> DocumentId {
    DocumentId::new(plan, 1).unwrap()
}

fn justitie(plan: [u8; 16]) -> DocumentId {
    DocumentId::new(plan, 3).unwrap()
}

/// The roles the tests use, as the default policy has them.
fn test_policy(version: u32) -> Policy {
    let access = |list: &[&str]| Access {
        read: list.iter().map(|c| c.to_string()).collect(),
        write: list.iter().map(|c| c.to_string()).collect(),
    };
    Policy {
        version,
        roles: [
            ("wijkteam", access(&["basis", "zorg", "veiligheid"])),
            ("ggz", access(&["basis", "zorg"])),
            ("politie", access(&["basis", "veiligheid", "justitie"])),
        ]
        .into_iter()
        .map(|(role, access)| (role.to_string(), access))
        .collect(),
        levels: Default::default(),
        retention: None,
    }
}

fn bundle_id(bytes: &[u8]) -> [u8; 16] {
    Bundle::decode(bytes.to_vec()).unwrap().header.bundle_id
}

/// The ids of `pushed` that an answer says are stored, as a device reads it.
fn taken(answer: &SyncResponse, pushed: &[&[u8]]) -> Vec<Fixed<16>> {
    let ids: Vec<[u8; 16]> = pushed.iter().map(|b| bundle_id(b)).collect();
    answer.stored(&ids).into_iter().map(Fixed).collect()
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
    let mut request: InitRequest = serde_json::from_slice(&network.init_body(&server)).unwrap();
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
    let good = network.headers(&server, &network.admin, "GET", path, time, b"");
    assert_eq!(server.get(path, &good).status, 200);
    assert_eq!(server.get(path, &good).error(401), "replayed_request");
    // Not even by a new process on the same database (a restart, or another instance).
    let server = server.restart();
    assert_eq!(server.get(path, &good).error(401), "replayed_request");

    let other_path = network.headers(&server, &network.admin, "GET", api::PATH_ADMIN_USERS, now_ms(), b"");
    assert_eq!(server.get(path, &other_path).error(401), "bad_signature");

    let stale = network.headers(
        &server,
        &network.admin,
        "GET",
        path,
        now_ms() - api::ADMIN_CLOCK_SKEW_MS - 60_000,
        b"",
    );
    assert_eq!(server.get(path, &stale).error(401), "stale_request");
    let future = network.headers(
        &server,
        &network.admin,
        "GET",
        path,
        now_ms() + api::ADMIN_CLOCK_SKEW_MS + 60_000,
        b"",
    );
    assert_eq!(server.get(path, &future).error(401), "stale_request");

    let stranger = network.headers(&server, &key(), "GET", path, now_ms(), b"");
    assert_eq!(server.get(path, &stranger).error(401), "unknown_admin");
    assert_eq!(server.get(path, &[]).error(401), "missing_signature");

    // The body is signed: a body swapped under a valid signature is refused.
    let signed = serde_json::to_vec(&NewOrg { name: "Echt".into(), lease_hours: 72 }).unwrap();
    let sent = serde_json::to_vec(&NewOrg { name: "Vals".into(), lease_hours: 72 }).unwrap();
    let headers = network.headers(&server, &network.admin, "POST", path, now_ms(), &signed);
    assert_eq!(server.post(path, &headers, &sent).error(401), "bad_signature");

    // The query is signed too.
    let headers =
        network.headers(&server, &network.admin, "GET", "/v1/admin/devices?state=pending", now_ms(), b"");
    assert_eq!(server.get("/v1/admin/devices?state=active", &headers).error(401), "bad_signature");
    assert!(
        server.metrics().lines().any(|l| l.starts_with("eenplan_auth_failures_total ") && !l.ends_with(" 0"))
    );
}

#[test]
fn a_device_name_is_kept_only_when_valid_and_signed_by_the_device_itself() {
    let (server, network) = Network::start();
    let ann = network.add_user(&server, "Ann");
    let device = Device::new();
    let code = network.code_for(&server, &ann);
    let with_name = |name: SignedDeviceName| EnrolRequest { name: Some(name), ..device.enrol_request(&code) };
    let long = "a".repeat(65);
    for bad in ["", "   ", long.as_str(), "Ann\n", "Ann\u{202E}diordnA", " Ann"] {
        let reply = server.post_json(api::PATH_ENROL, &with_name(device.name_signed_by(&device.key, bad)));
        assert_eq!(reply.error(400), "invalid_device_label", "{bad:?}");
    }
    let stranger = key();
    let reply =
        server.post_json(api::PATH_ENROL, &with_name(device.name_signed_by(&stranger, "Ann's Android")));
    assert_eq!(reply.error(401), "bad_signature", "a name the device did not sign");
    // None of them used the code.
    let reply =
        server.post_json(api::PATH_ENROL, &with_name(device.name_signed_by(&device.key, "Ann's Android")));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let listed = |network: &Network| -> DeviceInfo {
        let devices: Vec<DeviceInfo> = network.call(&server, "GET", api::PATH_ADMIN_DEVICES, b"").json();
        devices.into_iter().find(|d| d.device_id == hex(&device.id)).unwrap()
    };
    let pending = listed(&network);
    assert_eq!((pending.label.as_str(), pending.platform), ("Ann's Android", Some(Platform::Android)));
    assert_eq!((pending.last_seen_ms, pending.enrolled_at_ms), (None, pending.created_at_ms));
    assert!(pending.enrolled_at_ms > 0);

    let reply = network.approve(&server, &device, &network.certificate_for(&device, &ann));
    assert_eq!(reply.status, 200, "{}", reply.text());
    // A session renames it; one with a bad name or another's signature changes nothing.
    assert_eq!(
        device.session_named(&server, device.name_signed_by(&device.key, "Ann\u{0}")).error(400),
        "invalid_device_label"
    );
    assert_eq!(
        device.session_named(&server, device.name_signed_by(&stranger, "Werktelefoon")).error(401),
        "bad_signature"
    );
    assert_eq!(listed(&network).label, "Ann's Android");
    let reply = device.session_named(&server, device.name_signed_by(&device.key, "Werktelefoon Ann"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let active = listed(&network);
    assert_eq!(active.label, "Werktelefoon Ann");
    assert!(active.last_seen_ms.is_some_and(|at| at >= pending.enrolled_at_ms), "a session is a sighting");
    let name = SignedDeviceName {
        label: active.label,
        platform: Platform::Android,
        signature: active.label_signature,
    };
    assert!(
        name.verify(&device.id, device.key.verifying_key().as_bytes()).is_ok(),
        "the listing carries the device's own signature"
    );
}

#[test]
fn a_users_plans_are_listed_for_offboarding() {
    let (server, network) = Network::start();
    let (ann, _) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    let registered = server.sync(
        &b,
        &SyncRequest { new_plans: vec![Fixed(plan)], commitments: b.mint(&[plan]), ..Default::default() },
    );
    assert!(registered.rejected.is_empty());
    let before: UserPlans = network.call(&server, "GET", &api::admin_user_plans_path(ann.id), b"").json();
    assert_eq!(before.plans, vec![]);
    network.assign(&server, plan, &ann);
    let listed: UserPlans = network.call(&server, "GET", &api::admin_user_plans_path(ann.id), b"").json();
    assert_eq!(listed.plans.len(), 1);
    assert_eq!((listed.plans[0].plan.as_str(), listed.plans[0].chained), (hex(&plan).as_str(), false));
    assert_eq!(listed.plans[0].plan_role, "wijkteam");
    assert_eq!(
        network.call(&server, "GET", &api::admin_user_plans_path(bob.id + 100), b"").error(404),
        "unknown_user"
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
        &SyncRequest {
            new_plans: vec![Fixed(plan)],
            commitments: a.mint(&[plan]),
            push: vec![Blob(bundle.clone())],
            ..Default::default()
        },
    );
    assert_eq!(taken(&pushed, &[&bundle]), vec![Fixed(bundle_id(&bundle))]);
    assert!(pushed.all_accepted && pushed.accepted.is_empty(), "a flag, not the ids");
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
    assert!(refused.accepted.is_empty() && !refused.all_accepted);

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
    assert_eq!(taken(&reply, &[&intruding]), vec![Fixed(bundle_id(&intruding))]);
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
            commitments: a.mint(&[plan]),
            push: vec![Blob(a.bundle(basis(plan), b"x"))],
            ..Default::default()
        },
    );

    // No device lists the directory; it looks up the name it was given.
    assert_eq!(server.get_as(api::PATH_USERS, b.token()).error(410), api::code::DIRECTORY_REMOVED);

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
    let request = SyncRequest {
        new_plans: vec![Fixed(plan)],
        commitments: a.mint(&[plan]),
        push: vec![Blob(bundle.clone())],
        ..Default::default()
    };
    let first = server.sync(&a, &request);
    // The response was lost; the device sends the same request again.
    let second = server.sync(&a, &request);
    assert!(first.all_accepted && second.all_accepted);
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
    assert!(twice.all_accepted && twice.rejected.is_empty());
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
    server.sync(
        &a,
        &SyncRequest { new_plans: vec![Fixed(plan)], commitments: a.mint(&[plan]), ..Default::default() },
    );
    server.sync(
        &b,
        &SyncRequest {
            new_plans: vec![Fixed(bobs_plan)],
            commitments: b.mint(&[bobs_plan]),
            ..Default::default()
        },
    );

    let genuine = a.bundle(basis(plan), b"genuine");
    let signed_by_stranger = a.bundle_as(basis(plan), b"forged", a.id, &key(), BundleKind::Changes);
    let claims_bob = a.bundle_as(basis(plan), b"forged", b.id, &a.key, BundleKind::Changes);
    let into_bobs_plan = a.bundle(basis(bobs_plan), b"forged");
    let snapshot_as_change =
        a.bundle_as(basis(plan), b"forged", a.id, &a.key, BundleKind::Snapshot { covers: 1 });
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
            snapshots: vec![Blob(a.bundle(basis(plan), b"forged"))],
            ..Default::default()
        },
    );
    assert_eq!(taken(&reply, &[&genuine]), vec![Fixed(bundle_id(&genuine))]);
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

/// The server asks for a snapshot of a document with more change bytes than this after its
/// newest snapshot (and than half that snapshot).
const COMPACT_AFTER_BYTES: usize = eenplan_server::storage::COMPACT_AFTER_BYTES as usize;

/// Pushes `count` change bundles with `payload` bytes each to `document`, in requests of 200,
/// and returns them with the last answer.
fn push_many(
    server: &Server,
    device: &Device,
    document: DocumentId,
    count: usize,
    payload: usize,
) -> (Vec<Vec<u8>>, SyncResponse) {
    let bundles: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut bytes = vec![0u8; payload];
            bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
            device.bundle(document, &bytes)
        })
        .collect();
    let mut last = SyncResponse::default();
    for chunk in bundles.chunks(200) {
        last = server.sync(
            device,
            &SyncRequest { push: chunk.iter().cloned().map(Blob).collect(), ..Default::default() },
        );
        assert!(last.all_accepted, "{:?}", last.rejected);
    }
    (bundles, last)
}

fn snapshot_of(device: &Device, document: DocumentId, covers: u64) -> Vec<u8> {
    device.bundle_as(document, b"the whole document", device.id, &device.key, BundleKind::Snapshot { covers })
}

#[test]
fn a_snapshot_is_accepted_only_when_the_server_asked_its_device_for_exactly_that_position_and_once() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let (carol, c) = network.member(&server, "Carol");
    let plan = shared_plan(&server, &network, &a, &bob);
    let unrequested = |reply: &SyncResponse| reasons(reply) == [sync::REJECT_UNREQUESTED_SNAPSHOT];

    // Nobody asked: a writer cannot plant a snapshot that hides the log from later joiners.
    let (_, short) = push_many(&server, &a, basis(plan), 3, 10);
    let planted = snapshot_of(&a, basis(plan), short.head);
    let reply = server.sync(&a, &SyncRequest { snapshots: vec![Blob(planted)], ..Default::default() });
    assert!(unrequested(&reply), "{:?}", reply.rejected);

    // A long log: the answer that completes the pull asks Ann's device, covering its head.
    let (changes, asked) = push_many(&server, &a, basis(plan), 20, COMPACT_AFTER_BYTES / 16);
    assert!(asked.complete);
    assert_eq!(asked.compact, vec![Fixed(basis(plan).to_bytes())]);
    let covers = asked.head;
    // Another position, or another device (Bob may write basis too), is refused.
    let elsewhere = snapshot_of(&a, basis(plan), covers - 1);
    let reply = server
        .sync(&a, &SyncRequest { since: covers, snapshots: vec![Blob(elsewhere)], ..Default::default() });
    assert!(unrequested(&reply), "{:?}", reply.rejected);
    assert_eq!(
        (reply.compact.clone(), reply.head),
        (asked.compact.clone(), covers),
        "asked again, same head"
    );
    let bobs = snapshot_of(&b, basis(plan), covers);
    let reply =
        server.sync(&b, &SyncRequest { since: covers, snapshots: vec![Blob(bobs)], ..Default::default() });
    assert!(unrequested(&reply), "{:?}", reply.rejected);
    assert!(reply.compact.is_empty(), "Bob holds no key (and Ann was asked moments ago)");

    // The requested snapshot is accepted, once; a retry of it is found.
    let snapshot = snapshot_of(&a, basis(plan), covers);
    let stored = server.sync(
        &a,
        &SyncRequest { since: covers, snapshots: vec![Blob(snapshot.clone())], ..Default::default() },
    );
    assert!(stored.all_accepted, "{:?}", stored.rejected);
    assert!(stored.compact.is_empty(), "the log is short again");
    let second = snapshot_of(&a, basis(plan), covers);
    let reply =
        server.sync(&a, &SyncRequest { since: covers, snapshots: vec![Blob(second)], ..Default::default() });
    assert!(unrequested(&reply), "{:?}", reply.rejected);
    let retry = server.sync(
        &a,
        &SyncRequest { since: covers, snapshots: vec![Blob(snapshot.clone())], ..Default::default() },
    );
    assert!(retry.all_accepted, "{:?}", retry.rejected);

    // A new participant gets the snapshot with its witness (Ann's newest change it covers),
    // never the planted one.
    let tail = a.bundle(basis(plan), b"after the snapshot");
    server.sync(&a, &SyncRequest { since: covers, push: vec![Blob(tail.clone())], ..Default::default() });
    network.assign(&server, plan, &carol);
    let joined = server.sync(&c, &SyncRequest::default());
    assert_eq!(joined.bundles, vec![Blob(snapshot), Blob(tail)]);
    assert_eq!(joined.witnesses, vec![Blob(changes.last().unwrap().clone())]);
}

#[test]
fn a_big_history_block_is_split_across_pages_by_a_small_max_bytes_and_loses_and_repeats_nothing() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    server.sync(
        &a,
        &SyncRequest { new_plans: vec![Fixed(plan)], commitments: a.mint(&[plan]), ..Default::default() },
    );
    let (basis_log, _) = push_many(&server, &a, basis(plan), 40, 2_000);
    let (zorg_log, _) = push_many(&server, &a, zorg(plan), 40, 2_000);
    network.assign(&server, plan, &bob);

    // The whole plan is one block at Bob's grant; 16 KiB pages split it.
    let (mut since, mut got, mut pages) = (0, Vec::new(), 0);
    loop {
        let page =
            server.sync(&b, &SyncRequest { since, max_bytes: sync::MIN_PAGE_BYTES, ..Default::default() });
        let bytes: usize = page.bundles.iter().map(|b| b.0.len()).sum();
        assert!(bytes <= sync::MIN_PAGE_BYTES as usize, "a page of {bytes} bytes");
        assert!(!page.bundles.is_empty());
        got.extend(page.bundles.into_iter().map(|b| b.0));
        pages += 1;
        since = page.head;
        if page.complete {
            break;
        }
        assert!(page.compact.is_empty(), "no compaction asked of an incomplete answer");
    }
    assert!(pages >= 5, "{pages} pages");
    assert!(!sync::is_resume_token(since), "a complete answer's head is a log position");
    let want: Vec<Vec<u8>> = basis_log.into_iter().chain(zorg_log).collect();
    assert_eq!(got, want, "every bundle once, in order");

    // A page size below the minimum is raised to it: more than one bundle per page.
    let first = server.sync(&b, &SyncRequest { since: 0, max_bytes: 1, ..Default::default() });
    assert!(first.bundles.len() > 1 && !first.complete);
}

#[test]
fn history_requests_page_a_documents_whole_log_and_serve_only_what_the_device_may_read() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member_as(&server, "Bob", "ggz");
    let plan = shared_plan(&server, &network, &a, &bob);
    let theirs = random();
    server.sync(
        &a,
        &SyncRequest { new_plans: vec![Fixed(theirs)], commitments: a.mint(&[theirs]), ..Default::default() },
    );
    let (mut log, _) = push_many(&server, &a, basis(plan), 20, 2_000);
    let own = b.bundle(basis(plan), b"Bob's own change");
    let pushed = server.sync(&b, &SyncRequest { push: vec![Blob(own.clone())], ..Default::default() });
    assert!(pushed.all_accepted);
    log.push(own);
    push_many(&server, &a, zorg(plan), 2, 10);
    // Veiligheid is not Bob's to read (ggz), nor is a plan he does not take part in.
    push_many(&server, &a, DocumentId::new(plan, 2).unwrap(), 2, 10);
    push_many(&server, &a, basis(theirs), 2, 10);
    let mut head = 0;
    loop {
        let page = server.sync(&b, &SyncRequest { since: head, ..Default::default() });
        head = page.head;
        if page.complete {
            break;
        }
    }

    // Bob's device refused a snapshot, say: it asks for basis from the beginning.
    let asked = |after: u64| SyncRequest {
        since: head,
        max_bytes: sync::MIN_PAGE_BYTES,
        history: [DocumentId::new(plan, 2).unwrap(), basis(theirs), basis(plan)]
            .into_iter()
            .map(|d| sync::HistoryRequest { document: Fixed(d.to_bytes()), after })
            .collect(),
        ..Default::default()
    };
    let (mut after, mut got, mut pages) = (0, Vec::new(), 0);
    loop {
        let reply = server.sync(&b, &asked(after));
        assert_eq!(reply.history.len(), 1, "no page of what Bob may not read");
        let page = &reply.history[0];
        assert_eq!(page.document, Fixed(basis(plan).to_bytes()));
        let bytes: usize = page.bundles.iter().map(|b| b.0.len()).sum();
        assert!(bytes <= sync::MIN_PAGE_BYTES as usize);
        got.extend(page.bundles.iter().map(|b| b.0.clone()));
        after = page.through;
        pages += 1;
        assert_eq!(reply.complete, page.complete, "an unfinished history makes the answer incomplete");
        if page.complete {
            break;
        }
    }
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(got, log, "every change of basis once, in order, Bob's own included");

    // More history requests than one sync request may carry: refused whole.
    let document = Fixed(basis(plan).to_bytes());
    let oversized = SyncRequest {
        since: head,
        history: vec![sync::HistoryRequest { document, after: 0 }; sync::MAX_HISTORY_REQUESTS + 1],
        ..Default::default()
    };
    let reply = server.sync_raw(b.token(), &sync::encode(&oversized));
    assert_eq!(reply.error(400), "too_many_history_requests");
    let fits = SyncRequest { history: oversized.history[..sync::MAX_HISTORY_REQUESTS].to_vec(), ..oversized };
    assert_eq!(server.sync(&b, &fits).history.len(), 1);
}

#[test]
fn key_requests_and_envelopes_are_paged_and_each_envelope_arrives_once() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    // 100 plans of three compartments a wijkteam reads: 300 keys Bob's device lacks.
    const KEYS: usize = 300;
    let plans: Vec<[u8; 16]> = (0..KEYS / 3).map(|_| random()).collect();
    let created = server.sync(
        &a,
        &SyncRequest {
            new_plans: plans.iter().map(|p| Fixed(*p)).collect(),
            commitments: a.mint(&plans),
            ..Default::default()
        },
    );
    assert!(created.mint.is_empty());
    for plan in &plans {
        network.assign(&server, *plan, &bob);
    }

    let requested = |reply: &SyncResponse| -> Vec<(Fixed<17>, u32)> {
        reply.key_requests.iter().map(|r| (r.document, r.epoch)).collect()
    };
    // Ann answers none of them: each answer lists the next ones, until the round is over.
    let mut answers = Vec::new();
    loop {
        let reply = server.sync(&a, &SyncRequest::default());
        let bytes: usize =
            reply.key_requests.iter().map(|r| r.certificate.0.len() + r.admin_certificate.0.len()).sum();
        assert!(reply.key_requests.len() <= sync::MAX_KEY_REQUESTS_PER_ANSWER);
        assert!(bytes <= sync::MAX_KEY_REQUEST_BYTES_PER_ANSWER);
        assert!(!reply.key_requests.is_empty());
        let complete = reply.complete;
        answers.push(requested(&reply));
        if complete {
            break;
        }
        assert!(answers.len() < KEYS);
    }
    assert!(answers.len() >= 2, "{KEYS} requests do not fit one answer");
    let all: Vec<_> = answers.concat();
    assert_eq!(all.len(), KEYS);
    assert_eq!(
        all.iter().collect::<std::collections::BTreeSet<_>>().len(),
        KEYS,
        "every request once in the round"
    );
    // The next sync starts a new round.
    assert_eq!(requested(&server.sync(&a, &SyncRequest::default())), answers[0]);

    // Ann seals every key for Bob's device, round after round.
    let mut rounds = 0;
    let mut reply = server.sync(&a, &SyncRequest::default());
    while !reply.key_requests.is_empty() {
        rounds += 1;
        assert!(rounds < 10);
        let envelopes = reply
            .key_requests
            .iter()
            .map(|request| {
                let document = DocumentId::from_bytes(&request.document.0).unwrap();
                EnvelopeUpload {
                    recipient: Fixed(b.id),
                    document: request.document,
                    epoch: request.epoch,
                    envelope: Blob(a.seal_for(b.id, &b.agreement_public, document, 1, &EPOCH_KEY)),
                }
            })
            .collect();
        reply = server.sync(&a, &SyncRequest { since: reply.head, envelopes, ..Default::default() });
    }

    // Bob's device pulls 300 envelopes of 1.2 KB in pages of 16 KiB: each exactly once.
    let (mut since, mut mailbox, mut delivered, mut commitments, mut pages) = (0, 0, Vec::new(), 0, 0);
    loop {
        assert!(pages < KEYS, "the mailbox must move on");
        let page = server.sync(
            &b,
            &SyncRequest {
                since,
                envelopes_after: Some(mailbox),
                max_bytes: sync::MIN_PAGE_BYTES,
                ..Default::default()
            },
        );
        mailbox = page.envelopes_through;
        let bytes: usize = page.envelopes.iter().map(|e| e.envelope.0.len()).sum();
        assert!(bytes <= sync::MIN_PAGE_BYTES as usize);
        commitments += page.commitments.len();
        assert_eq!(page.commitments.len(), page.envelopes.len(), "each key with its commitment");
        delivered.extend(page.envelopes.into_iter().map(|e| (e.document, e.epoch)));
        pages += 1;
        since = page.head;
        if page.complete {
            break;
        }
    }
    assert!(pages >= 20, "{pages} pages");
    assert_eq!((delivered.len(), commitments), (KEYS, KEYS));
    assert_eq!(delivered.iter().collect::<std::collections::BTreeSet<_>>().len(), KEYS, "nothing twice");
    assert!(
        server
            .sync(&b, &SyncRequest { since, envelopes_after: Some(mailbox), ..Default::default() })
            .envelopes
            .is_empty()
    );
    // An older device sends no mailbox cursor: its log cursor stands for it, so it is not
    // sent every key again.
    assert!(server.sync(&b, &SyncRequest { since, ..Default::default() }).envelopes.is_empty());
    // A mailbox cursor beyond the log (a server's earlier lie) starts the mailbox over.
    let over = SyncRequest {
        since,
        envelopes_after: Some(u64::MAX),
        max_bytes: sync::MIN_PAGE_BYTES,
        ..Default::default()
    };
    assert!(!server.sync(&b, &over).envelopes.is_empty());
}

#[test]
fn key_envelopes_reach_their_recipient_and_key_requests_name_devices_without_one() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let (_, c) = network.member(&server, "Cem");
    let plan = random();
    server.sync(
        &a,
        &SyncRequest { new_plans: vec![Fixed(plan)], commitments: a.mint(&[plan]), ..Default::default() },
    );
    let quiet = server.sync(&a, &SyncRequest::default());
    assert!(quiet.key_requests.is_empty(), "nobody else may read the plan yet");

    network.assign(&server, plan, &bob);
    let asked = server.sync(&a, &SyncRequest::default());
    assert_eq!(asked.key_requests.len(), 3, "Bob's device lacks the keys of the three a wijkteam reads");
    let request = &asked.key_requests[0];
    assert_eq!(request.document, Fixed(basis(plan).to_bytes()));
    assert_eq!(request.epoch, 1);
    // The sealer checks whom it seals to, through the pinned root.
    let certificate = Certificate::from_bytes(&request.certificate.0).unwrap();
    let admin_certificate = Certificate::from_bytes(&request.admin_certificate.0).unwrap();
    let body = certificate.verify_device(&admin_certificate, &network.root_public(), now_ms()).unwrap();
    assert_eq!(body.device_id, b.id);

    let sealed = a.seal_for(b.id, &body.agreement_public, basis(plan), 1, &EPOCH_KEY);
    let to_cem = a.seal_for(c.id, &c.agreement_public, basis(plan), 1, &EPOCH_KEY);
    let to_escrow = a.seal_for(api::ESCROW_RECIPIENT, &network.escrow_public, basis(plan), 1, &EPOCH_KEY);
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
    assert_eq!(answered.key_requests.len(), 2, "the basis key is delivered; two compartments to go");

    let received = server.sync(&b, &SyncRequest::default());
    assert_eq!(received.envelopes.len(), 1);
    // The key travels with the commitment of its maker, which the receiver checks it against.
    assert_eq!(received.commitments.len(), 1);
    let commitment = SignedCommitment::from_bytes(&received.commitments[0].0).unwrap();
    let commitment = commitment.verify(a.key.verifying_key().as_bytes()).unwrap();
    assert_eq!((commitment.document, commitment.epoch), (Fixed(basis(plan).to_bytes()), 1));
    commitment.matches(&EPOCH_KEY).unwrap();
    let delivered = &received.envelopes[0];
    assert_eq!((delivered.document, delivered.epoch), (Fixed(basis(plan).to_bytes()), 1));
    let (sealed, sealer, _) = envelope::split_signed(&delivered.envelope.0).unwrap();
    assert_eq!(sealer, a.id);
    let key = envelope::open(sealed, &b.agreement_secret, b.id, basis(plan), 1).unwrap();
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
    // A forged token is refused before a byte of the body is read: the client sends none
    // and waits for the answer.
    let head = "POST /v1/sync HTTP/1.1\r\nhost: x\r\nauthorization: Bearer nonsense\r\ncontent-type: application/cbor\r\ncontent-length: 1000\r\n\r\n";
    assert_eq!(server.raw_status(head, b"", false), 401);

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
            commitments: a.mint(&[plan]),
            push: vec![Blob(a.bundle(basis(plan), b"x"))],
            ..Default::default()
        },
    );
    let metrics = server.metrics();
    let remembered = |metrics: &str, labels: &str| -> u64 {
        let name = format!("eenplan_remembered_reads_total{{{labels}}} ");
        metrics.lines().find_map(|l| l.strip_prefix(name.as_str())).unwrap().parse().unwrap()
    };
    let access = |outcome: &str| format!("cache=\"access\",outcome=\"{outcome}\"");
    let keys = |outcome: &str| format!("cache=\"missing_keys\",outcome=\"{outcome}\"");
    let held = |outcome: &str| format!("cache=\"held_keys\",outcome=\"{outcome}\"");
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
    // The first sync read Ann's access and her missing-key list; two syncs with nothing new
    // are served what the server remembers.
    let (read, keys_read) = (remembered(&metrics, &access("read")), remembered(&metrics, &keys("read")));
    assert!(read >= 1 && keys_read >= 1, "{metrics}");
    server.sync(&a, &SyncRequest::default());
    server.sync(&a, &SyncRequest::default());
    let metrics = server.metrics();
    assert!(remembered(&metrics, &access("served")) >= 2, "{metrics}");
    assert!(remembered(&metrics, &keys("served")) >= 2, "{metrics}");
    assert!(remembered(&metrics, &held("read")) >= 1, "{metrics}");
    assert!(remembered(&metrics, &held("served")) >= 1, "{metrics}");
}

// Live hints.

#[test]
fn a_live_socket_hears_of_another_devices_push() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = random();
    let elsewhere = random();
    server.sync(
        &a,
        &SyncRequest {
            new_plans: vec![Fixed(plan), Fixed(elsewhere)],
            commitments: a.mint(&[plan, elsewhere]),
            ..Default::default()
        },
    );
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
            commitments: a.mint(&[plan]),
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
    server.sync(
        &a,
        &SyncRequest { new_plans: vec![Fixed(plan)], commitments: a.mint(&[plan]), ..Default::default() },
    );
    network.assign(&server, plan, &bob);
    let mut socket = b.live(&server);

    // No push, no hint: the revocation alone closes the socket.
    assert_eq!(network.revoke(&server, &b).status, 200);
    expect_close(&mut socket);
    assert_eq!(server.get_as(api::PATH_ME, b.token()).error(403), "revoked");
    assert_eq!(server.sync_raw(b.token(), &sync::encode(&SyncRequest::default())).error(403), "revoked");
    // Its body is decoded before its device is read (with the access it pushes under), and
    // refused before anything of it is kept.
    let other = random();
    let (_, key, signed) = network.audit_key(1);
    assert_eq!(network.post_audit_key(&server, &signed).status, 201);
    let uploads = SyncRequest {
        new_plans: vec![Fixed(other)],
        commitments: b.mint(&[other]),
        audit: vec![b.audit_upload(&key, 1, &b.audit_events(&bob, plan, 1, 2))],
        ..Default::default()
    };
    assert_eq!(server.sync_raw(b.token(), &sync::encode(&uploads)).error(403), "revoked");
    assert!(network.audit_uploads(&server).uploads.is_empty(), "no access log kept");
    let storage = SqliteStorage::open(server.database()).unwrap();
    assert!(!storage.plans_of_user(UserId(bob.id)).unwrap().contains(&other), "no plan registered");
    assert_eq!(storage.commitment(basis(other), 1).unwrap(), None, "no key committed to");
    assert_eq!(b.session(&server).error(403), "revoked");
    // Its certificate stays readable, marked revoked, so receivers can judge its old bundles.
    let info = server.get_as(&format!("{}?device={}", api::PATH_CERTIFICATES, hex(&b.id)), a.token());
    assert!(info.json::<CertificateInfo>().revoked_at_ms.is_some());
}

// Revocation, wipe, policy, epochs.

/// A plan of `a`'s with `b`'s user assigned, and the epoch-1 keys `a` made.
fn shared_plan(server: &Server, network: &Network, a: &Device, bob: &UserInfo) -> [u8; 16] {
    let plan = random();
    let created = server.sync(
        a,
        &SyncRequest { new_plans: vec![Fixed(plan)], commitments: a.mint(&[plan]), ..Default::default() },
    );
    assert!(created.mint.is_empty(), "the creator made every key its role may read: {:?}", created.mint);
    network.assign(server, plan, bob);
    plan
}

/// `sealer` answers every key request it gets with [`EPOCH_KEY`] (and escrow's copy).
fn answer_key_requests(server: &Server, network: &Network, sealer: &Device) {
    let asked = server.sync(sealer, &SyncRequest::default());
    let mut uploads = Vec::new();
    for request in &asked.key_requests {
        let certificate = Certificate::from_bytes(&request.certificate.0).unwrap();
        let admin = Certificate::from_bytes(&request.admin_certificate.0).unwrap();
        let body = certificate.verify_device(&admin, &network.root_public(), now_ms()).unwrap();
        let document = DocumentId::from_bytes(&request.document.0).unwrap();
        for (recipient, public) in [
            (body.device_id, body.agreement_public.clone()),
            (api::ESCROW_RECIPIENT, network.escrow_public.clone()),
        ] {
            uploads.push(EnvelopeUpload {
                recipient: Fixed(recipient),
                document: request.document,
                epoch: request.epoch,
                envelope: Blob(sealer.seal_for(recipient, &public, document, request.epoch, &EPOCH_KEY)),
            });
        }
    }
    server.sync(sealer, &SyncRequest { since: asked.head, envelopes: uploads, ..Default::default() });
}

fn reasons(response: &SyncResponse) -> Vec<&str> {
    response.rejected.iter().map(|r| r.reason.as_str()).collect()
}

#[test]
fn a_revoked_device_loses_its_session_token_socket_and_envelopes_and_its_wipe_order_waits() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = shared_plan(&server, &network, &a, &bob);
    answer_key_requests(&server, &network, &a);
    let storage = || SqliteStorage::open(server.database()).unwrap();
    assert_eq!(storage().envelopes_for(DeviceId(b.id), 0).unwrap().len(), 3);
    let mut socket = b.live(&server);

    // A wipe order the administrator did not sign, or for another device, is refused.
    let mut forged = network.wipe_order(&b, RevocationReason::Stolen);
    forged.signature = key().sign(&forged.body).to_bytes().to_vec();
    let other = network.wipe_order(&a, RevocationReason::Stolen);
    for order in [forged, other] {
        let reply = network.post(
            &server,
            &api::admin_revoke_path(&b.id),
            &RevokeRequest { reason: "stolen".into(), wipe_order: hex(&order.to_bytes()) },
        );
        assert_eq!(reply.error(400), "bad_wipe_order");
    }
    assert_eq!(server.get_as(api::PATH_ME, b.token()).status, 200, "nothing happened yet");

    let revoked = network.revoke(&server, &b);
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert_eq!(revoked.json::<RotationsQueued>().pending, 3, "every document Bob's device could read");
    expect_close(&mut socket);
    assert_eq!(server.get_as(api::PATH_ME, b.token()).error(403), "revoked", "the token is refused");
    assert_eq!(server.sync_raw(b.token(), &sync::encode(&SyncRequest::default())).error(403), "revoked");
    assert_eq!(b.session(&server).error(403), "revoked", "no new session");
    let challenge = server.post_json(api::PATH_AUTH_CHALLENGE, &ChallengeRequest { device_id: hex(&b.id) });
    assert_eq!(challenge.error(403), "revoked");
    assert!(storage().envelopes_for(DeviceId(b.id), 0).unwrap().is_empty(), "its envelopes are gone");
    assert_eq!(
        network.revoke(&server, &b).json::<RotationsQueued>().pending,
        3,
        "revoking again changes nothing"
    );

    let order = server.post_json(api::PATH_WIPE_ORDER, &WipeOrderRequest { device_id: hex(&b.id) });
    let order: WipeOrderResponse = order.json();
    let order = wipe::Signed::from_bytes(&unhex(&order.order.unwrap()).unwrap()).unwrap();
    let order = WipeOrder::verify(&order, network.admin.verifying_key().as_bytes()).unwrap();
    assert_eq!((order.device, order.reason), (Fixed(b.id), RevocationReason::Stolen));
    let none = server.post_json(api::PATH_WIPE_ORDER, &WipeOrderRequest { device_id: hex(&a.id) });
    assert_eq!(none.json::<WipeOrderResponse>().order, None, "no order for an active device");
    let _ = plan;
}

#[test]
fn a_wipe_report_counts_only_when_the_device_itself_signed_it() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    assert_eq!(network.revoke(&server, &a).status, 200);
    let report =
        WipeReport { device: Fixed(a.id), cause: WipeCause::Ordered, signed_at_ms: now_ms(), nonce: None };
    let forged = report.sign(&key());
    let reply =
        server.post_json(api::PATH_WIPE_REPORT, &WipeReportUpload { report: hex(&forged.to_bytes()) });
    assert_eq!(reply.error(403), "bad_wipe_report");
    let listed = |server: &Server| {
        let devices: Vec<DeviceInfo> = network.call(server, "GET", api::PATH_ADMIN_DEVICES, b"").json();
        devices.into_iter().find(|d| d.device_id == hex(&a.id)).unwrap().state
    };
    assert_eq!(listed(&server), "revoked");
    let genuine = report.sign(&a.key);
    let reply =
        server.post_json(api::PATH_WIPE_REPORT, &WipeReportUpload { report: hex(&genuine.to_bytes()) });
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(listed(&server), "wiped");
    assert_eq!(
        server.post_json(api::PATH_WIPE_REPORT, &WipeReportUpload { report: "zz".into() }).error(400),
        "malformed"
    );
}

#[test]
fn a_policy_upload_must_be_newer_and_signed_by_the_root_and_devices_receive_it() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    // Two different policies of the held version (the same request twice within one
    // millisecond would carry the same deterministic signature, and be refused as a replay).
    for retention in [None, Some(eenplan_protocol::policy::Retention::default())] {
        let mut policy = test_policy(1);
        policy.retention = retention;
        assert_eq!(
            network.upload_policy(&server, &network.sign_policy(&policy)).error(409),
            "policy_not_newer"
        );
    }
    let stranger = test_policy(2).sign(&key()).unwrap();
    assert_eq!(network.upload_policy(&server, &stranger).error(403), "bad_policy_signature");

    let first = server.sync(&a, &SyncRequest::default());
    let delivered = SignedPolicy::from_bytes(&first.policy.unwrap().0).unwrap();
    assert_eq!(delivered.verify(&network.root_public()).unwrap(), test_policy(1));
    assert_eq!(server.sync(&a, &SyncRequest { policy_version: 1, ..Default::default() }).policy, None);

    let newer = network.sign_policy(&test_policy(2));
    let reply = network.upload_policy(&server, &newer);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json::<RotationsQueued>().pending, 0);
    let shown: PolicyInfo = network.call(&server, "GET", api::PATH_ADMIN_POLICY, b"").json();
    assert_eq!(shown.policy, hex(&newer.to_bytes()));
    let fetched: PolicyInfo = server.get_as(api::PATH_POLICY, a.token()).json();
    assert_eq!(fetched.policy, hex(&newer.to_bytes()));
    let synced = server.sync(&a, &SyncRequest { policy_version: 1, ..Default::default() });
    assert_eq!(synced.policy, Some(Blob(newer.to_bytes())));
}

#[test]
fn a_politie_device_never_pulls_zorg_and_its_push_to_zorg_is_rejected_no_write() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (piet, p) = network.member_as(&server, "Piet", "politie");
    let plan = shared_plan(&server, &network, &a, &piet);
    server.sync(
        &a,
        &SyncRequest {
            push: vec![Blob(a.bundle(basis(plan), b"goals")), Blob(a.bundle(zorg(plan), b"ggz notes"))],
            ..Default::default()
        },
    );
    let pulled = server.sync(&p, &SyncRequest::default());
    let documents: Vec<DocumentId> =
        pulled.bundles.iter().map(|b| Bundle::decode(b.0.clone()).unwrap().header.document).collect();
    assert_eq!(documents, [basis(plan)], "never a zorg document");
    assert_eq!(
        pulled.mint,
        vec![Fixed(justitie(plan).to_bytes())],
        "justitie: Piet's role makes its first key"
    );
    let asked = server.sync(&a, &SyncRequest::default());
    assert!(
        !asked.key_requests.iter().any(|r| r.document == Fixed(zorg(plan).to_bytes())),
        "nobody is asked to seal zorg to a politie device"
    );

    let pushed = server
        .sync(&p, &SyncRequest { push: vec![Blob(p.bundle(zorg(plan), b"forged"))], ..Default::default() });
    assert_eq!(reasons(&pushed), ["no_write"]);
    // And a wijkteam device's write to justitie is refused the same way.
    let pushed = server.sync(
        &a,
        &SyncRequest { push: vec![Blob(a.bundle(justitie(plan), b"forged"))], ..Default::default() },
    );
    assert_eq!(reasons(&pushed), ["no_write"]);
}

#[test]
fn a_ggz_user_gets_nothing_of_justitie() {
    let (server, network) = Network::start();
    let (piet, p) = network.member_as(&server, "Piet", "politie");
    let (gert, g) = network.member_as(&server, "Gert", "ggz");
    let plan = random();
    server.sync(
        &p,
        &SyncRequest { new_plans: vec![Fixed(plan)], commitments: p.mint(&[plan]), ..Default::default() },
    );
    server.sync(&p, &SyncRequest { push: vec![Blob(p.bundle(justitie(plan), b"OM"))], ..Default::default() });
    network.assign(&server, plan, &gert);
    let _ = piet;
    let pulled = server.sync(&g, &SyncRequest::default());
    assert!(pulled.bundles.is_empty(), "nothing of justitie");
    assert!(!pulled.mint.contains(&Fixed(justitie(plan).to_bytes())));
    // Piet holds the justitie key; he is never asked to seal it to Gert's device.
    let asked = server.sync(&p, &SyncRequest::default());
    assert!(asked.key_requests.iter().all(|r| r.document != Fixed(justitie(plan).to_bytes())));
    // An envelope Piet seals to Gert anyway is dropped.
    let sealed = p.seal_for(g.id, &g.agreement_public, justitie(plan), 1, &EPOCH_KEY);
    server.sync(
        &p,
        &SyncRequest {
            envelopes: vec![EnvelopeUpload {
                recipient: Fixed(g.id),
                document: Fixed(justitie(plan).to_bytes()),
                epoch: 1,
                envelope: Blob(sealed),
            }],
            ..Default::default()
        },
    );
    assert!(server.sync(&g, &SyncRequest::default()).envelopes.is_empty());
}

#[test]
fn a_key_commitment_is_first_writer_wins_and_a_device_cannot_mint_for_an_unreadable_compartment_or_epoch_2() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let (piet, p) = network.member_as(&server, "Piet", "politie");
    let plan = random();
    server.sync(
        &a,
        &SyncRequest {
            new_plans: vec![Fixed(plan)],
            commitments: vec![a.commitment(basis(plan), 1)],
            ..Default::default()
        },
    );
    network.assign(&server, plan, &bob);
    network.assign(&server, plan, &piet);
    let storage = || SqliteStorage::open(server.database()).unwrap();
    let minter = |document| storage().commitment(document, 1).unwrap().map(|c| c.minter_device);

    let told = server
        .sync(&b, &SyncRequest { commitments: vec![b.commitment(basis(plan), 1)], ..Default::default() });
    assert_eq!(minter(basis(plan)), Some(Some(DeviceId(a.id))), "the first commitment stays");
    assert!(
        told.mint.contains(&Fixed(zorg(plan).to_bytes()))
            && !told.mint.contains(&Fixed(basis(plan).to_bytes()))
    );

    // Piet's role cannot read zorg; and epoch 2 is an administrator's.
    server.sync(
        &p,
        &SyncRequest {
            commitments: vec![p.commitment(zorg(plan), 1), p.commitment(justitie(plan), 2)],
            ..Default::default()
        },
    );
    assert_eq!(minter(zorg(plan)), None);
    assert_eq!(storage().current_epoch(justitie(plan)).unwrap(), 0);
    // Nor can anyone commit in another device's name.
    let claims_bob = {
        let minter = Minter::Device(Fixed(b.id));
        Blob(Commitment::new(zorg(plan), 1, &EPOCH_KEY, minter, now_ms()).sign(&a.key).to_bytes())
    };
    server.sync(&a, &SyncRequest { commitments: vec![claims_bob], ..Default::default() });
    assert_eq!(minter(zorg(plan)), None);
    server.sync(&b, &SyncRequest { commitments: vec![b.commitment(zorg(plan), 1)], ..Default::default() });
    assert_eq!(minter(zorg(plan)), Some(Some(DeviceId(b.id))));

    // Without a commitment a bundle has no epoch to be under.
    let veiligheid = DocumentId::new(plan, 2).unwrap();
    let pushed =
        server.sync(&a, &SyncRequest { push: vec![Blob(a.bundle(veiligheid, b"x"))], ..Default::default() });
    assert_eq!(reasons(&pushed), ["unknown_epoch"]);
}

#[test]
fn a_rotation_needs_a_complete_result_for_the_next_epoch_and_then_the_old_epoch_is_stale() {
    let (server, network) = Network::start();
    let (ann, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let (gert, _g) = network.member_as(&server, "Gert", "ggz");
    let plan = shared_plan(&server, &network, &a, &bob);
    let a2 = network.device_of(&server, &ann);
    answer_key_requests(&server, &network, &a);
    // Gert joins after the keys were handed out: his device lacks epoch 1.
    network.assign(&server, plan, &gert);
    let mut socket = b.live(&server);

    assert_eq!(network.revoke(&server, &a2).json::<RotationsQueued>().pending, 3);
    let pushed = server
        .sync(&b, &SyncRequest { push: vec![Blob(b.bundle(basis(plan), b"during"))], ..Default::default() });
    assert_eq!(reasons(&pushed), ["rotating"], "nothing is written under the revoked key");

    let tasks = network.rekey_tasks(&server);
    assert_eq!(tasks.tasks.len(), 3);
    let veiligheid = DocumentId::new(plan, 2).unwrap();
    let task = tasks.tasks.iter().find(|t| t.document.0 == veiligheid.to_bytes()).unwrap();
    assert_eq!(task.current_epoch, 1);
    let mut recipients: Vec<([u8; 16], Vec<u32>)> =
        task.recipients.iter().map(|r| (r.device.0, r.missing_epochs.clone())).collect();
    recipients.sort();
    let mut want = vec![(a.id, vec![]), (b.id, vec![])];
    want.sort();
    assert_eq!(recipients, want, "not the revoked device, and not Gert's: ggz does not read veiligheid");
    assert_eq!(tasks.devices.len(), 3, "each device's certificate once: Ann's, Bob's and Gert's");
    assert_eq!(tasks.admin_certificates.len(), 1, "and the administrator's once");
    let task = tasks.tasks.iter().find(|t| t.document.0 == basis(plan).to_bytes()).unwrap();
    assert_eq!(task.recipients.len(), 3, "basis: Ann, Bob and Gert's devices");
    let gerts = task.recipients.iter().find(|r| r.device.0 != a.id && r.device.0 != b.id).unwrap();
    assert_eq!(gerts.missing_epochs, [1], "Gert's device never got epoch 1");
    assert_eq!(task.escrow.len(), 1, "escrow's epoch 1, to open for Gert");
    assert_eq!(task.commitments.len(), 1);

    let new_key = [7u8; 32];
    let result = network.rekey_result(&tasks, task, &new_key);
    let incomplete = RekeyResult { envelopes: result.envelopes[1..].to_vec(), ..result.clone() };
    assert_eq!(network.rekey_one(&server, &incomplete), RekeyStatus::Incomplete);
    let no_escrow =
        RekeyResult { envelopes: result.envelopes[..result.envelopes.len() - 1].to_vec(), ..result.clone() };
    assert_eq!(network.rekey_one(&server, &no_escrow), RekeyStatus::Incomplete);
    let too_far = RekeyResult { new_epoch: 3, ..result.clone() };
    assert_eq!(network.rekey_one(&server, &too_far), RekeyStatus::Stale);
    let stranger = Network::new();
    let forged = RekeyResult {
        commitment: Blob(stranger.commit(basis(plan), 2, &new_key).to_bytes()),
        ..result.clone()
    };
    assert_eq!(network.rekey_one(&server, &forged), RekeyStatus::Incomplete);
    let by_device = RekeyResult { commitment: Blob(a.commitment(basis(plan), 2).0), ..result.clone() };
    assert_eq!(network.rekey_one(&server, &by_device), RekeyStatus::Incomplete);

    let answer = network.rekey(&server, vec![result.clone()]);
    assert_eq!(answer.outcomes[0].status, RekeyStatus::Done, "{:?}", answer.outcomes);
    assert_eq!(answer.pending, 2);
    assert_eq!(next_hint(&mut socket), hex(&basis(plan).to_bytes()), "Bob's device hears of its new key");
    assert_eq!(network.rekey_one(&server, &result), RekeyStatus::Stale, "done once");

    let received = server.sync(&b, &SyncRequest { since: pushed.head, ..Default::default() });
    let delivered = received.envelopes.iter().find(|e| e.epoch == 2).unwrap();
    assert_eq!(
        *envelope::open(&delivered.envelope.0, &b.agreement_secret, b.id, basis(plan), 2).unwrap(),
        new_key
    );
    let commitment = SignedCommitment::from_bytes(
        &received
            .commitments
            .iter()
            .find(|c| SignedCommitment::from_bytes(&c.0).unwrap().claimed().unwrap().epoch == 2)
            .unwrap()
            .0,
    )
    .unwrap();
    commitment.verify(network.admin.verifying_key().as_bytes()).unwrap().matches(&new_key).unwrap();

    let old = server
        .sync(&b, &SyncRequest { push: vec![Blob(b.bundle(basis(plan), b"old key"))], ..Default::default() });
    assert_eq!(reasons(&old), ["stale_epoch"]);
    let new = server.sync(
        &b,
        &SyncRequest { push: vec![Blob(b.bundle_at(basis(plan), 2, b"new key"))], ..Default::default() },
    );
    assert_eq!((new.all_accepted, new.rejected.len()), (true, 0));
    let ahead = server.sync(
        &b,
        &SyncRequest { push: vec![Blob(b.bundle_at(basis(plan), 3, b"ahead"))], ..Default::default() },
    );
    assert_eq!(reasons(&ahead), ["unknown_epoch"]);
    assert_eq!(network.rekey_tasks(&server).tasks.len(), 2);
}

#[test]
fn unassigning_a_user_queues_the_plans_documents_and_takes_their_envelopes() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = shared_plan(&server, &network, &a, &bob);
    answer_key_requests(&server, &network, &a);
    let reply = network.post(&server, &api::admin_unassign_path(&plan, bob.id), &());
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json::<RotationsQueued>().pending, 3);
    assert!(
        SqliteStorage::open(server.database()).unwrap().envelopes_for(DeviceId(b.id), 0).unwrap().is_empty()
    );
    let pushed = server
        .sync(&b, &SyncRequest { push: vec![Blob(b.bundle(basis(plan), b"gone"))], ..Default::default() });
    assert_eq!(reasons(&pushed), ["no_access"]);
    let tasks = network.rekey_tasks(&server);
    assert!(tasks.tasks.iter().all(|t| t.recipients.iter().all(|r| r.device.0 == a.id)));
    assert_eq!(network.post(&server, &api::admin_unassign_path(&plan, 9999), &()).error(404), "unknown_user");
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
            commitments: a.mint(&[plan]),
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

#[test]
fn a_role_change_needs_a_valid_certificate_for_every_device_and_ends_their_sessions() {
    let (server, network) = Network::start();
    let (_, ann) = network.member(&server, "Ann");
    let (gert, g1) = network.member_as(&server, "Gert", "ggz");
    let g2 = network.device_of(&server, &gert);
    let path = api::admin_user_role_path(gert.id);
    let police = UserInfo { role: "politie".into(), ..gert.clone() };
    let certificate =
        |device: &Device, user: &UserInfo| hex(&network.certificate_for(device, user).to_bytes());
    let request = |certificates: Vec<String>| RoleChangeRequest {
        role: "politie".into(),
        certificates: certificates.into_iter().map(|certificate| CertificateUpload { certificate }).collect(),
    };
    let not_by_an_admin = {
        let mut body = network.certificate_for(&g2, &police).claimed_device_body().unwrap();
        body.issuer = key().verifying_key().to_bytes();
        hex(&Certificate::sign_device(&body, &key()).to_bytes())
    };
    for (certificates, status, code) in [
        (vec![certificate(&g1, &police)], 400, "incomplete_role_change"),
        (vec![certificate(&g1, &police), certificate(&ann, &police)], 400, "bad_certificate"),
        (vec![certificate(&g1, &police), not_by_an_admin], 400, "bad_certificate"),
        (vec![certificate(&g1, &police), certificate(&g2, &gert)], 400, "certificate_mismatch"),
        (vec![certificate(&g1, &police), "zz".into()], 400, "malformed"),
    ] {
        assert_eq!(network.post(&server, &path, &request(certificates)).error(status), code);
    }
    assert_eq!(server.get_as(api::PATH_ME, g1.token()).status, 200, "nothing changed yet");
    let unknown = network.post(&server, &api::admin_user_role_path(999), &request(vec![]));
    assert_eq!(unknown.error(404), "unknown_user");

    let reply =
        network.post(&server, &path, &request(vec![certificate(&g1, &police), certificate(&g2, &police)]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The sessions opened before end; a new one says the certificate changed, and the device
    // finds its new role at /v1/me, the others find both certificates.
    for device in [&g1, &g2] {
        assert_eq!(server.get_as(api::PATH_ME, device.token()).error(401), "certificate_changed");
        // The sync route reads the device together with its user's access: checked alike.
        let sync = server.sync_raw(device.token(), &sync::encode(&SyncRequest::default()));
        assert_eq!(sync.error(401), "certificate_changed");
    }
    let session: SessionResponse = g1.session(&server).json();
    assert!(session.certified_at_ms > 0);
    let role = |hex_certificate: &str| {
        Certificate::from_bytes(&unhex(hex_certificate).unwrap()).unwrap().claimed_device_body().unwrap().role
    };
    let me: MeResponse = server.get_as(api::PATH_ME, &session.token).json();
    assert_eq!(role(&me.certificate), "politie");
    let info: CertificateInfo =
        server.get_as(&format!("{}?device={}", api::PATH_CERTIFICATES, hex(&g1.id)), ann.token()).json();
    assert_eq!(role(&info.certificate), "politie");
    assert_eq!(info.older.iter().map(|c| role(&c.certificate)).collect::<Vec<_>>(), ["ggz"]);
    let users: Vec<UserInfo> = network.call(&server, "GET", api::PATH_ADMIN_USERS, b"").json();
    assert_eq!(users.iter().find(|u| u.id == gert.id).unwrap().role, "politie");

    // Every policy version stays readable by version, for judging old epochs.
    let first: PolicyInfo = server.get_as(&format!("{}?version=1", api::PATH_POLICY), ann.token()).json();
    let current: PolicyInfo = server.get_as(api::PATH_POLICY, ann.token()).json();
    assert_eq!(first, current);
    let missing = server.get_as(&format!("{}?version=99", api::PATH_POLICY), ann.token());
    assert_eq!(missing.error(404), "unknown_policy_version");
    assert_eq!(
        server.get_as(&format!("{}?version=x", api::PATH_POLICY), ann.token()).error(400),
        "malformed"
    );
}

// Signed revocation lists.

#[test]
fn revocation_lists_are_taken_only_signed_next_and_append_only_and_devices_read_every_version() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (_, b) = network.member(&server, "Bob");
    assert_eq!(server.get_as(api::PATH_REVOCATIONS, a.token()).error(404), "no_revocation_list");
    // Not revoked before a list names it.
    let order = network.wipe_order(&b, RevocationReason::Stolen);
    let revoke = RevokeRequest { reason: "stolen".into(), wipe_order: hex(&order.to_bytes()) };
    assert_eq!(
        network.post(&server, &api::admin_revoke_path(&b.id), &revoke).error(409),
        "not_on_revocation_list"
    );
    assert_eq!(server.get_as(api::PATH_ME, b.token()).status, 200);

    let entry = |device: &Device| {
        RevokedDevice::sign(device.id, now_ms(), RevocationReason::Stolen, "Wijkteam Noord", &network.admin)
    };
    let post = |bytes: &[u8]| network.call(&server, "POST", api::PATH_ADMIN_REVOCATIONS, bytes);
    let v1 =
        RevocationList::none().next(&[entry(&b)], network.admin_certificate.to_bytes(), now_ms()).unwrap();
    let v1_bytes = v1.sign(&network.admin).to_bytes();
    // A list the server's administrators did not sign, or one it cannot read, is refused.
    let stranger = Network::new();
    let foreign = RevocationList { admin_certificate: stranger.admin_certificate.to_bytes(), ..v1.clone() };
    assert_eq!(post(&foreign.sign(&stranger.admin).to_bytes()).error(403), "bad_revocation_signature");
    assert_eq!(post(&v1.sign(&key()).to_bytes()).error(403), "bad_revocation_signature");
    assert_eq!(post(b"\xa1garbage").error(400), "bad_revocation_list");
    assert_eq!(post(&v1_bytes[..v1_bytes.len() - 3]).error(400), "bad_revocation_list");
    let mut two = v1.clone();
    two.version = 2;
    assert_eq!(post(&two.sign(&network.admin).to_bytes()).error(409), "stale_revocation_list", "not next");

    let stored = post(&v1_bytes);
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(stored.json::<RevocationListStored>().version, 1);
    assert_eq!(post(&v1_bytes).status, 200, "a retried upload is the same list");
    assert_eq!(network.revoke(&server, &b).status, 200);

    // Version 2 must keep Bob's entry unchanged.
    let dropped = RevocationList { version: 2, entries: vec![entry(&a)], ..v1.clone() };
    assert_eq!(post(&dropped.sign(&network.admin).to_bytes()).error(400), "bad_revocation_list");
    let changed = RevocationList {
        version: 2,
        entries: vec![RevokedDevice::sign(
            v1.entries[0].device.0,
            1,
            RevocationReason::Stolen,
            "Wijkteam Noord",
            &network.admin,
        )],
        ..v1.clone()
    };
    assert_eq!(post(&changed.sign(&network.admin).to_bytes()).error(400), "bad_revocation_list");
    let forked =
        RevocationList::none().next(&[entry(&a)], network.admin_certificate.to_bytes(), now_ms()).unwrap();
    assert_eq!(post(&forked.sign(&network.admin).to_bytes()).error(409), "stale_revocation_list");
    let v2 = v1.next(&[entry(&a)], network.admin_certificate.to_bytes(), now_ms()).unwrap();
    let v2_bytes = v2.sign(&network.admin).to_bytes();
    assert_eq!(post(&v2_bytes).status, 200);

    // Devices read the newest and any earlier version, and check them themselves.
    let (_, c) = network.member(&server, "Cor");
    let newest = server.get_as(api::PATH_REVOCATIONS, c.token());
    assert_eq!(newest.body, v2_bytes);
    let listed = RevocationList::verify(&newest.body, &network.root_public()).unwrap();
    assert!(listed.is_revoked(&a.id).is_some() && listed.is_revoked(&b.id).is_some());
    let first = server.get_as(&format!("{}?version=1", api::PATH_REVOCATIONS), c.token());
    assert_eq!(first.body, v1_bytes);
    let none = server.get_as(&format!("{}?version=7", api::PATH_REVOCATIONS), c.token());
    assert_eq!(none.error(404), "unknown_revocation_list_version");
    assert_eq!(
        server.get_as(&format!("{}?version=x", api::PATH_REVOCATIONS), c.token()).error(400),
        "malformed"
    );
    assert_eq!(server.get(api::PATH_REVOCATIONS, &[]).status, 401);
    // Declared larger than the limit: refused before a byte is read (the limit is checked
    // before the signature, so no valid signature is needed to be turned away).
    for (path, limit) in
        [(api::PATH_ADMIN_REVOCATIONS, MAX_REVOCATION_LIST_LEN), (api::PATH_ADMIN_REKEY, MAX_REKEY_REQUEST)]
    {
        let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n", limit + 1);
        assert_eq!(server.raw_status(&head, b"", false), 413, "{path}");
    }
}

#[test]
fn a_rekey_batch_far_over_the_json_limit_is_taken_and_a_listed_revoked_reader_needs_no_envelope() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = shared_plan(&server, &network, &a, &bob);
    answer_key_requests(&server, &network, &a);
    // 40 more devices of Bob's: every document then has 42 readers.
    let mut more = Vec::new();
    for _ in 0..40 {
        more.push(network.device_of(&server, &bob));
    }
    assert_eq!(network.revoke(&server, &b).json::<RotationsQueued>().pending, 3);
    // Bob's revoked device is active again in the server's table (a restored backup): the
    // tasks list it, but the newest revocation list names it, so it needs no envelope.
    let conn = rusqlite::Connection::open(server.database()).unwrap();
    conn.execute("UPDATE devices SET state = 'active' WHERE device_id = ?1", [b.id.as_slice()]).unwrap();
    drop(conn);
    let tasks = network.rekey_tasks(&server);
    assert_eq!(tasks.tasks.len(), 3);
    assert_eq!(tasks.devices.len(), 42, "Ann's device, Bob's 40 new ones and the one restored, once each");
    // Sealed to every listed reader but the revoked one, as the admin CLI does.
    let results: Vec<RekeyResult> = tasks
        .tasks
        .iter()
        .map(|t| {
            let mut result = network.rekey_result(&tasks, t, &[3; 32]);
            result.envelopes.retain(|e| e.recipient.0 != b.id);
            result
        })
        .collect();
    let body = RekeyBatch { results: results.clone() }.to_bytes();
    assert!(body.len() > 2 * 64 * 1024, "{} bytes", body.len());
    let answer = network.rekey(&server, results);
    assert!(answer.outcomes.iter().all(|o| o.status == RekeyStatus::Done), "{:?}", answer.outcomes);
    assert_eq!(answer.pending, 0);
    let _ = (plan, more);
}

// Envelopes a reader cannot overwrite, and envelopes a recipient refuses.

/// The upload of an envelope `sealer` made for `recipient` of `document`'s `epoch`.
fn envelope_upload(recipient: [u8; 16], document: DocumentId, epoch: u32, signed: Vec<u8>) -> EnvelopeUpload {
    EnvelopeUpload {
        recipient: Fixed(recipient),
        document: Fixed(document.to_bytes()),
        epoch,
        envelope: Blob(signed),
    }
}

/// Garbage where an HPKE envelope belongs, genuinely signed by `sealer`: what a malicious
/// reader sends.
fn garbage_for(sealer: &Device, recipient: [u8; 16], document: DocumentId, epoch: u32) -> Vec<u8> {
    envelope::sign(vec![2; 300], sealer.id, &sealer.key, document, epoch, recipient)
}

/// The sealer of the envelope `device` received for `document`'s epoch 1, and the key in it.
fn opened(
    device: &Device,
    delivery: &eenplan_protocol::sync::EnvelopeDelivery,
    document: DocumentId,
) -> ([u8; 16], Option<[u8; 32]>) {
    let (sealed, sealer, _) = envelope::split_signed(&delivery.envelope.0).unwrap();
    (sealer, envelope::open(sealed, &device.agreement_secret, device.id, document, 1).ok().map(|k| *k))
}

#[test]
fn a_reader_cannot_replace_another_devices_envelope_nor_seal_in_anothers_name() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let (cem, c) = network.member(&server, "Cem");
    let plan = shared_plan(&server, &network, &a, &bob);
    network.assign(&server, plan, &cem);
    // Ann seals Bob the basis key; Cem, a reader of the plan, sends Bob garbage for it after.
    let good = a.seal_for(b.id, &b.agreement_public, basis(plan), 1, &EPOCH_KEY);
    let upload = envelope_upload(b.id, basis(plan), 1, good);
    server.sync(&a, &SyncRequest { envelopes: vec![upload], ..Default::default() });
    let garbage = envelope_upload(b.id, basis(plan), 1, garbage_for(&c, b.id, basis(plan), 1));
    server.sync(&c, &SyncRequest { envelopes: vec![garbage], ..Default::default() });
    // For zorg, Cem comes first, in Ann's name (her id in the trailer, his signature), so
    // that Bob's complaint would shut Ann out.
    let mut in_anns_name = garbage_for(&c, b.id, zorg(plan), 1);
    let trailer = in_anns_name.len() - envelope::SIGNED_TRAILER_LEN;
    in_anns_name[trailer..trailer + 16].copy_from_slice(&a.id);
    let forged = envelope_upload(b.id, zorg(plan), 1, in_anns_name);
    server.sync(&c, &SyncRequest { envelopes: vec![forged], ..Default::default() });
    let good = a.seal_for(b.id, &b.agreement_public, zorg(plan), 1, &EPOCH_KEY);
    let upload = envelope_upload(b.id, zorg(plan), 1, good);
    server.sync(&a, &SyncRequest { envelopes: vec![upload], ..Default::default() });

    let received = server.sync(&b, &SyncRequest::default());
    for document in [basis(plan), zorg(plan)] {
        let delivered: Vec<_> =
            received.envelopes.iter().filter(|e| e.document == Fixed(document.to_bytes())).collect();
        assert_eq!(delivered.len(), 1);
        assert_eq!(opened(&b, delivered[0], document), (a.id, Some(EPOCH_KEY)), "Ann's envelope, intact");
    }
}

#[test]
fn a_recipient_that_cannot_use_its_envelope_asks_again_and_gets_a_good_one_from_another_holder() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let (cem, c) = network.member(&server, "Cem");
    let plan = shared_plan(&server, &network, &a, &bob);
    network.assign(&server, plan, &cem);
    let document = basis(plan);
    // Cem answers Bob's key request first, with garbage: the first envelope stays.
    server.sync(
        &c,
        &SyncRequest {
            envelopes: vec![envelope_upload(b.id, document, 1, garbage_for(&c, b.id, document, 1))],
            ..Default::default()
        },
    );
    let asked = server.sync(&a, &SyncRequest::default());
    let for_bob = |response: &SyncResponse| {
        response.key_requests.iter().any(|r| {
            r.document == Fixed(document.to_bytes())
                && Certificate::from_bytes(&r.certificate.0).unwrap().claimed_device_body().unwrap().device_id
                    == b.id
        })
    };
    assert!(!for_bob(&asked), "the server believes Bob holds the key");
    let received = server.sync(&b, &SyncRequest::default());
    let delivered = received.envelopes.iter().find(|e| e.document == Fixed(document.to_bytes())).unwrap();
    assert_eq!(opened(&b, delivered, document), (c.id, None), "garbage from Cem");

    // Bob refuses it, naming its sealer: the server forgets it and asks for the key again.
    let refused = eenplan_protocol::sync::RefusedEnvelope {
        document: Fixed(document.to_bytes()),
        epoch: 1,
        sealer: Fixed(c.id),
    };
    server.sync(
        &b,
        &SyncRequest { since: received.head, refused_envelopes: vec![refused], ..Default::default() },
    );
    let asked = server.sync(&a, &SyncRequest::default());
    assert!(for_bob(&asked), "Bob's key is asked for again");
    // Cem is not heard for it again; Ann's envelope reaches Bob.
    server.sync(
        &c,
        &SyncRequest {
            envelopes: vec![envelope_upload(b.id, document, 1, garbage_for(&c, b.id, document, 1))],
            ..Default::default()
        },
    );
    let good = a.seal_for(b.id, &b.agreement_public, document, 1, &EPOCH_KEY);
    server.sync(
        &a,
        &SyncRequest { envelopes: vec![envelope_upload(b.id, document, 1, good)], ..Default::default() },
    );
    let again = server.sync(&b, &SyncRequest { since: received.head, ..Default::default() });
    let delivered = again.envelopes.iter().find(|e| e.document == Fixed(document.to_bytes())).unwrap();
    assert_eq!(opened(&b, delivered, document), (a.id, Some(EPOCH_KEY)));
    assert!(server.metrics().contains("eenplan_envelopes_withdrawn_total 1\n"));
}

// Wipe reports that cannot be true are refused.

fn listed_state(server: &Server, network: &Network, device: &Device) -> String {
    let devices: Vec<DeviceInfo> = network.call(server, "GET", api::PATH_ADMIN_DEVICES, b"").json();
    devices.into_iter().find(|d| d.device_id == hex(&device.id)).unwrap().state
}

/// Whether `holder` is asked to seal `document`'s key to `device` (a device reported wiped
/// is asked for no more).
fn asked_for(server: &Server, holder: &Device, device: &Device, document: DocumentId) -> bool {
    server.sync(holder, &SyncRequest::default()).key_requests.iter().any(|r| {
        r.document == Fixed(document.to_bytes())
            && Certificate::from_bytes(&r.certificate.0).unwrap().claimed_device_body().unwrap().device_id
                == device.id
    })
}

/// Moves the server's record of `device`'s last session back past its lease, as if it had
/// been offline that long.
fn last_session_long_ago(server: &Server, device: &Device) {
    let conn = rusqlite::Connection::open(server.database()).unwrap();
    conn.busy_timeout(WAIT).unwrap();
    let long_ago = now_ms() - 73 * 3_600_000;
    conn.execute(
        "UPDATE devices SET last_session_at = ?1 WHERE device_id = ?2",
        rusqlite::params![long_ago, device.id],
    )
    .unwrap();
}

#[test]
fn a_copied_self_wipe_report_does_not_mark_a_live_device_wiped() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = shared_plan(&server, &network, &a, &bob);
    let nonce = random::<32>();
    assert_eq!(b.session_registering(&server, Some(&nonce)).status, 200);
    // Someone with a copy of Bob's files sends the report they hold: Bob's lease runs.
    let reply = server.post_json(api::PATH_WIPE_REPORT, &b.self_wipe_report(&nonce));
    assert_eq!(reply.error(409), api::code::DEVICE_ACTIVE);
    assert_eq!(listed_state(&server, &network, &b), "active");
    assert!(asked_for(&server, &a, &b, basis(plan)), "Bob still gets the keys");
    assert!(server.metrics().contains("eenplan_wipe_reports_refused_total 1\n"));
}

#[test]
fn a_self_wipe_report_from_before_the_devices_last_session_is_stale() {
    let (server, network) = Network::start();
    let (_, b) = network.member(&server, "Bob");
    let (copied, newest) = (random::<32>(), random::<32>());
    assert_eq!(b.session_registering(&server, Some(&copied)).status, 200);
    let old_report = b.self_wipe_report(&copied);
    assert_eq!(b.session_registering(&server, Some(&newest)).status, 200);
    // A session that registers nothing keeps the newest nonce.
    assert_eq!(b.session(&server).status, 200);
    assert_eq!(network.revoke(&server, &b).status, 200);
    let reply = server.post_json(api::PATH_WIPE_REPORT, &old_report);
    assert_eq!(reply.error(409), api::code::STALE_WIPE_REPORT, "even for a revoked device");
    let unnamed = WipeReport {
        device: Fixed(b.id),
        cause: WipeCause::FailedUnlocks,
        signed_at_ms: now_ms(),
        nonce: None,
    };
    let reply = server.post_json(
        api::PATH_WIPE_REPORT,
        &WipeReportUpload { report: hex(&unnamed.sign(&b.key).to_bytes()) },
    );
    assert_eq!(reply.error(409), api::code::STALE_WIPE_REPORT, "a report without a nonce");
    assert_eq!(listed_state(&server, &network, &b), "revoked");
    assert_eq!(server.post_json(api::PATH_WIPE_REPORT, &b.self_wipe_report(&newest)).status, 204);
    assert_eq!(listed_state(&server, &network, &b), "wiped");
}

#[test]
fn an_ordered_wipe_report_counts_only_for_a_revoked_device() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let ordered =
        WipeReport { device: Fixed(a.id), cause: WipeCause::Ordered, signed_at_ms: now_ms(), nonce: None };
    let upload = WipeReportUpload { report: hex(&ordered.sign(&a.key).to_bytes()) };
    assert_eq!(server.post_json(api::PATH_WIPE_REPORT, &upload).error(409), api::code::DEVICE_ACTIVE);
    // Not even once its lease has lapsed: only a wipe order makes such a report.
    last_session_long_ago(&server, &a);
    assert_eq!(server.post_json(api::PATH_WIPE_REPORT, &upload).error(409), api::code::DEVICE_ACTIVE);
    assert_eq!(listed_state(&server, &network, &a), "active");
    assert_eq!(network.revoke(&server, &a).status, 200);
    assert_eq!(server.post_json(api::PATH_WIPE_REPORT, &upload).status, 204);
    assert_eq!(listed_state(&server, &network, &a), "wiped");
}

#[test]
fn a_device_whose_lease_lapsed_may_be_reported_wiped_until_it_opens_a_session_again() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = shared_plan(&server, &network, &a, &bob);
    let nonce = random::<32>();
    assert_eq!(b.session_registering(&server, Some(&nonce)).status, 200);
    last_session_long_ago(&server, &b);
    assert_eq!(server.post_json(api::PATH_WIPE_REPORT, &b.self_wipe_report(&nonce)).status, 204);
    assert_eq!(listed_state(&server, &network, &b), "wiped");
    assert!(!asked_for(&server, &a, &b, basis(plan)), "a wiped device gets no keys");
    // Bob's phone was not wiped: it opens a session with the key the report says is gone.
    assert_eq!(b.session(&server).status, 200);
    assert_eq!(listed_state(&server, &network, &b), "active");
    assert!(asked_for(&server, &a, &b, basis(plan)), "and gets the keys again");
    assert!(server.metrics().contains("eenplan_wipe_reports_cleared_total 1\n"));
}

#[test]
fn a_session_must_sign_the_wipe_nonce_hash_it_registers() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let reply = server.post_json(api::PATH_AUTH_CHALLENGE, &ChallengeRequest { device_id: hex(&a.id) });
    let challenge = reply.json::<ChallengeResponse>().challenge;
    // Signed without the hash it carries: someone on the way added it.
    let signature = a.key.sign(&api::session_message(&unhex(&challenge).unwrap()));
    let reply = server.post_json(
        api::PATH_AUTH_SESSION,
        &SessionRequest {
            device_id: hex(&a.id),
            challenge,
            signature: hex(&signature.to_bytes()),
            wipe_nonce_hash: Some(hex(&[7; 32])),
            name: None,
        },
    );
    assert_eq!(reply.error(401), "bad_signature");
    let storage = SqliteStorage::open(server.database()).unwrap();
    assert_eq!(storage.device(DeviceId(a.id)).unwrap().unwrap().wipe_nonce_hash, None);
}

// Limits: items per request, the push quota, live sockets per device.

#[test]
fn a_sync_request_over_any_list_limit_is_refused_whole_before_any_of_its_work() {
    use eenplan_protocol::sync::{
        MAX_COMMITMENTS, MAX_ENVELOPE_UPLOADS, MAX_NEW_PLANS, MAX_PUSHES, MAX_REFUSED_ENVELOPES,
        MAX_SNAPSHOTS, RefusedEnvelope,
    };
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let plan = random();
    let upload = envelope_upload(a.id, basis(plan), 1, vec![1; 100]);
    let refusal = RefusedEnvelope { document: Fixed(basis(plan).to_bytes()), epoch: 1, sealer: Fixed(a.id) };
    // Each list one over its limit, beside a registration of `plan` that must not happen.
    let oversized = [
        SyncRequest { push: vec![Blob(vec![0; 8]); MAX_PUSHES + 1], ..Default::default() },
        SyncRequest {
            new_plans: (0..=MAX_NEW_PLANS).map(|_| Fixed(random())).collect(),
            ..Default::default()
        },
        SyncRequest {
            commitments: vec![a.commitment(basis(plan), 1); MAX_COMMITMENTS + 1],
            ..Default::default()
        },
        SyncRequest { envelopes: vec![upload; MAX_ENVELOPE_UPLOADS + 1], ..Default::default() },
        SyncRequest { snapshots: vec![Blob(vec![0; 8]); MAX_SNAPSHOTS + 1], ..Default::default() },
        SyncRequest { refused_envelopes: vec![refusal; MAX_REFUSED_ENVELOPES + 1], ..Default::default() },
    ];
    for mut request in oversized {
        request.new_plans.push(Fixed(plan));
        let reply = server.sync_raw(a.token(), &sync::encode(&request));
        assert_eq!(reply.error(413), api::code::TOO_MANY_ITEMS);
    }
    let storage = SqliteStorage::open(server.database()).unwrap();
    assert!(storage.participants(plan).unwrap().is_empty(), "no plan was registered");
    assert!(server.metrics().contains("eenplan_oversized_requests_total 6\n"));
    assert!(server.sync(&a, &SyncRequest::default()).bundles.is_empty(), "and the device syncs on");
}

/// A server whose devices may push 20 bundles and a MiB an hour, Ann's and Bob's devices on
/// it, and a plan of Ann's with its keys.
fn quota_of_twenty_bundles() -> (Server, Network, Device, Device, [u8; 16]) {
    let server = Server::start_with(&["--push-quota-bundles", "20", "--push-quota-mib", "1"]);
    let network = Network::new();
    assert_eq!(network.init(&server).status, 204);
    let org = NewOrg { name: "Wijkteam Noord".into(), lease_hours: 72 };
    assert_eq!(network.post(&server, api::PATH_ADMIN_ORGS, &org).status, 201);
    let (_, a) = network.member(&server, "Ann");
    let (_, b) = network.member(&server, "Bob");
    let plan = random();
    server.sync(
        &a,
        &SyncRequest { new_plans: vec![Fixed(plan)], commitments: a.mint(&[plan]), ..Default::default() },
    );
    (server, network, a, b, plan)
}

/// A request of `n` small pushes of `device` to the basis of `plan`.
fn pushes(device: &Device, plan: [u8; 16], n: usize) -> SyncRequest {
    SyncRequest {
        push: (0..n).map(|i| Blob(device.bundle(basis(plan), &[i as u8; 10]))).collect(),
        ..Default::default()
    }
}

#[test]
fn a_device_pushing_past_its_quota_is_told_when_to_come_back_and_others_push_on() {
    let (server, _, a, b, plan) = quota_of_twenty_bundles();
    let push = |n: usize| pushes(&a, plan, n);
    assert!(server.sync(&a, &push(10)).all_accepted);
    assert!(server.sync(&a, &push(10)).all_accepted);
    let refused = server.sync_raw(a.token(), &sync::encode(&push(1)));
    assert_eq!(refused.error(429), api::code::QUOTA_EXCEEDED);
    let wait: u64 = refused.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    // At most the rest of this hour plus the share of the next one that this hour's 20
    // bundles still take (a twentieth of 3600 s): more than 3600 s early in an hour.
    assert!((1..=3600 + 180).contains(&wait), "{wait} s");
    // Bytes count too: another device's one request of more than a MiB.
    let big =
        SyncRequest { push: vec![Blob(vec![0; 700_000]), Blob(vec![0; 700_000])], ..Default::default() };
    assert_eq!(server.sync_raw(b.token(), &sync::encode(&big)).error(429), api::code::QUOTA_EXCEEDED);
    assert!(server.sync_raw(b.token(), &sync::encode(&SyncRequest::default())).status == 200, "Bob syncs on");
    assert!(server.metrics().contains("eenplan_quota_refusals_total 2\n"));
}

/// The sync route decodes a body before it reads the device (with its user's access): a
/// request refused for its body, its lists or its quota still tells a revoked device first
/// that it is revoked, so it obeys its wipe order at once.
#[test]
fn a_revoked_device_is_told_it_is_revoked_whatever_is_wrong_with_its_request() {
    let (server, network, a, b, plan) = quota_of_twenty_bundles();
    let push = |n: usize| pushes(&a, plan, n);
    assert!(server.sync(&a, &push(20)).all_accepted);
    let over_quota = sync::encode(&push(1));
    assert_eq!(server.sync_raw(a.token(), &over_quota).error(429), api::code::QUOTA_EXCEEDED);
    let too_many = SyncRequest {
        push: vec![Blob(vec![0; 8]); eenplan_protocol::sync::MAX_PUSHES + 1],
        ..Default::default()
    };
    assert_eq!(server.sync_raw(b.token(), b"not cbor").error(400), "malformed");
    assert_eq!(server.sync_raw(b.token(), &sync::encode(&too_many)).error(413), api::code::TOO_MANY_ITEMS);

    assert_eq!(network.revoke(&server, &a).status, 200);
    assert_eq!(network.revoke(&server, &b).status, 200);
    assert_eq!(server.sync_raw(a.token(), &over_quota).error(403), "revoked", "over its quota");
    assert_eq!(server.sync_raw(b.token(), b"not cbor").error(403), "revoked", "a body that does not decode");
    let reply = server.sync_raw(b.token(), &sync::encode(&too_many));
    assert_eq!(reply.error(403), "revoked", "a list over its limit");
}

/// A sync's checks take the user's access as of the session's read only when nothing the
/// request wrote before them changed it: a device whose user's access is remembered (it
/// pushed a moment ago) registers a plan, makes its keys and pushes into it, all in one
/// request, and all of it is taken.
#[test]
fn a_plan_registered_with_its_keys_and_first_push_in_one_request_is_taken_whole() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let first = random();
    server.sync(
        &a,
        &SyncRequest { new_plans: vec![Fixed(first)], commitments: a.mint(&[first]), ..Default::default() },
    );
    let pushed = SyncRequest { push: vec![Blob(a.bundle(basis(first), b"one"))], ..Default::default() };
    assert!(server.sync(&a, &pushed).all_accepted, "Ann's access is now remembered");
    let plan = random();
    let whole = SyncRequest {
        new_plans: vec![Fixed(plan)],
        commitments: a.mint(&[plan]),
        push: vec![Blob(a.bundle(basis(plan), b"first edit"))],
        ..Default::default()
    };
    let answer = server.sync(&a, &whole);
    assert!(answer.all_accepted, "{:?}", answer.rejected);
    let storage = SqliteStorage::open(server.database()).unwrap();
    assert_eq!(storage.current_epoch(basis(plan)).unwrap(), 1, "its keys were taken");
}

#[test]
fn a_device_keeps_at_most_three_live_sockets_and_opening_another_closes_its_oldest() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let (bob, b) = network.member(&server, "Bob");
    let plan = shared_plan(&server, &network, &a, &bob);
    let mut sockets: Vec<_> = (0..api::MAX_LIVE_SOCKETS_PER_DEVICE).map(|_| b.live(&server)).collect();
    let mut newest = b.live(&server);
    expect_close(&mut sockets[0]);
    server.sync(&a, &SyncRequest { push: vec![Blob(a.bundle(basis(plan), b"x"))], ..Default::default() });
    for socket in sockets.iter_mut().skip(1).chain(std::iter::once(&mut newest)) {
        assert_eq!(next_hint(socket), hex(&basis(plan).to_bytes()), "the others stay open");
    }
    assert!(server.metrics().contains("eenplan_live_sockets_evicted_total 1\n"));
    // Another device's sockets are its own.
    let mut anns = a.live(&server);
    server.sync(&b, &SyncRequest { push: vec![Blob(b.bundle(basis(plan), b"y"))], ..Default::default() });
    assert_eq!(next_hint(&mut anns), hex(&basis(plan).to_bytes()));
}

// Key commitments name the policy in force.

#[test]
fn a_key_commitment_naming_another_policy_version_than_the_current_one_is_ignored() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let plan = random();
    let documents = [basis(plan), zorg(plan)];
    let listed = |response: &SyncResponse, d: DocumentId| response.mint.contains(&Fixed(d.to_bytes()));
    let created = server.sync(
        &a,
        &SyncRequest {
            new_plans: vec![Fixed(plan)],
            // None named, and an older policy's: neither makes the epoch.
            commitments: vec![a.commitment_under(documents[0], 1, 0), a.commitment_under(documents[1], 1, 2)],
            ..Default::default()
        },
    );
    assert!(listed(&created, documents[0]) && listed(&created, documents[1]), "both still wait for a key");
    assert_eq!(network.upload_policy(&server, &network.sign_policy(&test_policy(2))).status, 200);
    let stale = server.sync(
        &a,
        &SyncRequest { commitments: vec![a.commitment_under(documents[0], 1, 1)], ..Default::default() },
    );
    assert!(listed(&stale, documents[0]), "version 1 is no longer the current one");
    let current = server.sync(
        &a,
        &SyncRequest { commitments: vec![a.commitment_under(documents[0], 1, 2)], ..Default::default() },
    );
    assert!(!listed(&current, documents[0]));
}

// Admin requests name their network and server; a fresh server is claimed with its secret.

#[test]
fn an_admin_request_signed_for_another_network_or_server_is_refused() {
    let server = Server::start_with(&["--origin", "https://eenplan.example"]);
    let network = Network::new();
    let path = api::PATH_ADMIN_ORGS;
    let origin = "https://eenplan.example";
    let init = network.init_body(&server);
    let headers = network.headers_for(
        &network.root_public(),
        origin,
        &network.admin,
        "POST",
        api::PATH_ADMIN_INIT,
        now_ms(),
        &init,
    );
    assert_eq!(server.post(api::PATH_ADMIN_INIT, &headers, &init).status, 204);
    let get = |root: &[u8; 32], origin: &str| {
        server.get(path, &network.headers_for(root, origin, &network.admin, "GET", path, now_ms(), b""))
    };
    assert_eq!(get(&network.root_public(), origin).status, 200);
    // The same administrator key, signing for another network: a replay from elsewhere.
    assert_eq!(get(&[9; 32], origin).error(401), "bad_signature");
    // Signed for another server (a staging copy of the network, say).
    assert_eq!(
        get(&network.root_public(), "https://staging.eenplan.example").error(401),
        api::code::WRONG_ORIGIN
    );
    let mut unsigned_origin =
        network.headers_for(&network.root_public(), origin, &network.admin, "GET", path, now_ms(), b"");
    unsigned_origin.retain(|(name, _)| *name != api::HEADER_ORIGIN);
    assert_eq!(server.get(path, &unsigned_origin).error(401), "missing_signature");
}

#[test]
fn a_fresh_server_is_claimed_only_with_the_init_secret_from_its_data_directory() {
    let server = Server::start();
    let secret_file = server.dir.path().join("data").join(api::INIT_SECRET_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let network = Network::new();
    let claim = |secret: &str| {
        let mut request: InitRequest = serde_json::from_slice(&network.init_body(&server)).unwrap();
        request.init_secret = secret.to_string();
        network.call(&server, "POST", api::PATH_ADMIN_INIT, &serde_json::to_vec(&request).unwrap())
    };
    assert_eq!(claim("").error(403), api::code::BAD_INIT_SECRET, "whoever comes first");
    assert_eq!(claim(&hex(&random::<24>())).error(403), api::code::BAD_INIT_SECRET);
    let before = network.call(&server, "GET", api::PATH_ADMIN_ORGS, b"");
    assert_eq!(before.error(409), "not_initialised");
    assert_eq!(network.init(&server).status, 204);
    assert!(!secret_file.exists(), "used once, then gone");
    assert_eq!(Network::new().init(&server).error(409), "already_initialised");
}

// Metrics and the user directory are not for everyone.

#[test]
fn metrics_answer_only_the_operators_token_and_are_off_without_one() {
    let (server, _network) = Network::start();
    assert_eq!(server.get(api::PATH_METRICS, &[]).error(401), "missing_token");
    let wrong = [("authorization", "Bearer not-the-token".to_string())];
    assert_eq!(server.get(api::PATH_METRICS, &wrong).error(401), "bad_token");
    assert!(server.metrics().contains("eenplan_auth_failures_total 1\n"));
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eenplan-server"))
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap().to_string();
    let off = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let reply = Reply::from(off.get(format!("http://{addr}{}", api::PATH_METRICS)).call().unwrap());
    assert_eq!(reply.error(404), "no_route");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_device_looks_a_user_up_by_exact_name_and_learns_nothing_else() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    let bob = network.add_user(&server, "Bob");
    let lookup = |token: &str, name: &str| {
        server.post_as(api::PATH_USER_LOOKUP, token, &api::UserLookup { name: name.into() })
    };
    let found: Vec<api::UserMatch> = lookup(a.token(), "Bob").json();
    assert_eq!(
        found,
        [api::UserMatch { id: bob.id, name: "Bob".into(), org: "Wijkteam Noord".into(), devices: vec![] }]
    );
    assert!(!String::from_utf8(lookup(a.token(), "Bob").body).unwrap().contains("wijkteam\""), "no role");
    for near in ["bob", "Bo", "Bob ", ""] {
        let reply = lookup(a.token(), near);
        if near.trim().is_empty() {
            assert_eq!(reply.error(400), "malformed");
        } else {
            assert!(reply.json::<Vec<api::UserMatch>>().is_empty(), "{near:?}");
        }
    }
    let anonymous = server.post_json(api::PATH_USER_LOOKUP, &api::UserLookup { name: "Bob".into() });
    assert_eq!(anonymous.error(401), "missing_token");
}

/// The device's own certificate chain, as `/v1/me` gives it.
fn own_chain(server: &Server, device: &Device) -> eenplan_protocol::membership::CertificateChain {
    let me: MeResponse = server.get_as(api::PATH_ME, device.token()).json();
    eenplan_protocol::membership::CertificateChain {
        certificate: unhex(&me.certificate).unwrap(),
        admin_certificate: unhex(&me.admin_certificate).unwrap(),
    }
}

fn post_entry(server: &Server, device: &Device, plan: &[u8; 16], entry: &[u8]) -> Reply {
    server.post(
        &api::membership_path(plan),
        &[
            ("authorization", format!("Bearer {}", device.token())),
            ("content-type", "application/cbor".into()),
        ],
        entry,
    )
}

#[test]
fn only_the_regisseur_changes_a_plans_membership_and_the_first_entry_at_a_position_wins() {
    use eenplan_protocol::membership::{Act, Entry, Roster, SignedEntry, Signer as By};
    let (server, network) = Network::start();
    let (_, ann) = network.member(&server, "Ann");
    let (bob_user, bob) = network.member(&server, "Bob");
    let (_, carl) = network.member(&server, "Carl");
    let plan = [0x42; 16];
    let charter = Entry::create(plan, now_ms(), own_chain(&server, &ann)).sign(&ann.key);
    let request = SyncRequest {
        new_plans: vec![Fixed(plan)],
        charters: vec![Blob(charter.to_bytes())],
        ..Default::default()
    };
    let answer = server.sync(&ann, &request);
    assert_eq!(answer.membership.len(), 1, "the chain comes back with the answer");
    let never = |_: &eenplan_protocol::certificate::DeviceBody, _: i64| false;
    let mut roster = Roster::start(&charter, &network.root_public(), &never).unwrap();

    let add = Entry::next(
        &roster,
        now_ms(),
        By::Device(own_chain(&server, &ann)),
        Act::Add(own_chain(&server, &bob)),
    )
    .sign(&ann.key);
    let reply = post_entry(&server, &ann, &plan, &add.to_bytes());
    assert_eq!(reply.status, 204, "{}", reply.text());
    roster.apply(&add, &network.root_public(), &never).unwrap();
    // The same position again: another entry came first.
    assert_eq!(post_entry(&server, &ann, &plan, &add.to_bytes()).error(409), "membership_conflict");
    // Bob, a contributor, hands regie to himself: refused.
    let grab =
        Entry::next(&roster, now_ms(), By::Device(own_chain(&server, &bob)), Act::Handover(bob_user.id))
            .sign(&bob.key);
    assert_eq!(post_entry(&server, &bob, &plan, &grab.to_bytes()).error(403), "not_regisseur");
    // Carl signs with his own key under Ann's certificate: refused, and not Carl's to post.
    let forged =
        Entry::next(&roster, now_ms(), By::Device(own_chain(&server, &ann)), Act::Remove(bob_user.id))
            .sign(&carl.key);
    assert_eq!(post_entry(&server, &carl, &plan, &forged.to_bytes()).error(400), "bad_membership");
    // Ann's genuine removal, posted by Carl, is not his to post.
    let genuine =
        Entry::next(&roster, now_ms(), By::Device(own_chain(&server, &ann)), Act::Remove(bob_user.id))
            .sign(&ann.key);
    assert_eq!(post_entry(&server, &carl, &plan, &genuine.to_bytes()).error(403), "not_regisseur");
    assert_eq!(post_entry(&server, &ann, &plan, b"garbage").error(400), "bad_membership");
    // Participants of a plan with a chain change only through it.
    let assign = api::Assignment { user_id: bob_user.id, role: "wijkteam".into() };
    assert_eq!(
        server.post_as(&api::participants_path(&plan), ann.token(), &assign).error(409),
        "membership_signed"
    );
    let entries: Vec<Blob> =
        sync::decode(&server.get_as(&api::membership_path(&plan), ann.token()).body, usize::MAX).unwrap();
    assert_eq!(entries.len(), 2, "nothing refused was stored");
    assert_eq!(server.get_as(&api::membership_path(&plan), carl.token()).error(404), "unknown_plan");
    let _ = SignedEntry::from_bytes(&entries[1].0).unwrap();
}

// The access log.

const NOORD: &str = "Wijkteam%20Noord";

impl Network {
    /// A new audit key of Wijkteam Noord at `version`, signed by the root: its secret and its
    /// signed bytes.
    fn audit_key(&self, version: u32) -> ([u8; 32], AuditKey, SignedAuditKey) {
        let (secret, public) = envelope::generate_keypair();
        let key = AuditKey { organisation: "Wijkteam Noord".into(), public, version, issued_at_ms: now_ms() };
        let signed = key.sign(&self.root);
        (*secret, key, signed)
    }

    fn post_audit_key(&self, server: &Server, signed: &SignedAuditKey) -> Reply {
        self.post(server, api::PATH_ADMIN_AUDIT_KEYS, &AuditKeyUpload { key: hex(&signed.to_bytes()) })
    }

    fn audit_uploads(&self, server: &Server) -> AuditUploadPage {
        let path = format!("{}?org={NOORD}&query=verify", api::PATH_ADMIN_AUDIT_UPLOADS);
        let reply = self.call(server, "GET", &path, b"");
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// The server's chain, verified against the key the server names.
    fn server_chain(&self, server: &Server, query: &str) -> ChainReport {
        let key: ServerAuditKey = self.call(server, "GET", api::PATH_ADMIN_AUDIT_SERVER_KEY, b"").json();
        let key = VerifyingKey::from_bytes(&unhex(&key.public).unwrap().try_into().unwrap()).unwrap();
        let path = format!("{}?after=0&query={query}", api::PATH_ADMIN_AUDIT_SERVER_EVENTS);
        let reply = self.call(server, "GET", &path, b"");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let page: ServerEventPage = reply.json();
        let events = page
            .events
            .iter()
            .map(|e| (e.seq, SignedEvent::from_bytes(&unhex(&e.event).unwrap()).unwrap()))
            .collect();
        verify_chain(&key, events)
    }
}

impl Device {
    /// `count` consecutive events of this device from `first` on, continuing `prev`, each about
    /// `plan`, made by `user`.
    fn audit_events(&self, user: &UserInfo, plan: [u8; 16], first: u64, count: u64) -> Vec<SignedEvent> {
        let mut prev = [0; 32];
        let mut events = Vec::new();
        for seq in first..first + count {
            let event = AuditEvent {
                seq,
                prev: Fixed(prev),
                at_ms: now_ms(),
                actor: Actor {
                    device: Fixed(self.id),
                    user_id: user.id,
                    user_name: user.name.clone(),
                    organisation: user.org.clone(),
                    role: user.role.clone(),
                },
                on_behalf_of: None,
                action: AuditAction::Read,
                plan: Some(Fixed(plan)),
                compartment: Some(1),
                object: None,
                result: AuditResult::Done,
                detail: None,
            };
            let signed = event.sign(&self.key);
            prev = signed.hash();
            events.push(signed);
        }
        events
    }

    fn audit_upload(&self, key: &AuditKey, first: u64, events: &[SignedEvent]) -> Blob {
        Blob(AuditUpload::seal(self.id, &self.key, key, first, events).unwrap().to_bytes())
    }
}

#[test]
fn an_audit_upload_in_another_devices_name_or_signed_by_another_device_is_refused_and_nothing_stored() {
    let (server, network) = Network::start();
    let (ann, a) = network.member(&server, "Ann");
    let (_, b) = network.member(&server, "Bob");
    let (_, key, signed) = network.audit_key(1);
    assert_eq!(network.post_audit_key(&server, &signed).status, 201);
    let events = a.audit_events(&ann, random(), 1, 3);
    // Bob's device sends Ann's upload; and an upload naming Ann's device that Bob signed.
    let as_other = a.audit_upload(&key, 1, &events);
    let forged = Blob(AuditUpload::seal(a.id, &b.key, &key, 1, &events).unwrap().to_bytes());
    let from_bob = server.sync(&b, &SyncRequest { audit: vec![as_other], ..Default::default() });
    let from_ann = server.sync(&a, &SyncRequest { audit: vec![forged], ..Default::default() });
    assert_eq!(
        from_bob.audit_refused,
        [AuditRefusal { index: 0, reason: audit::REFUSE_WRONG_DEVICE.into() }]
    );
    assert_eq!(
        from_ann.audit_refused,
        [AuditRefusal { index: 0, reason: audit::REFUSE_BAD_SIGNATURE.into() }]
    );
    assert_eq!((from_bob.audit_through, from_ann.audit_through), (0, 0));
    assert!(network.audit_uploads(&server).uploads.is_empty());
}

#[test]
fn a_malformed_audit_upload_is_refused_with_a_code_while_the_syncs_pushes_and_good_uploads_land() {
    let (server, network) = Network::start();
    let (ann, a) = network.member(&server, "Ann");
    let (_, key, signed) = network.audit_key(1);
    network.post_audit_key(&server, &signed);
    let plan = random();
    let bundle = a.bundle(basis(plan), b"edit");
    let events = a.audit_events(&ann, plan, 1, 5);
    let good = a.audit_upload(&key, 1, &events);
    let request = SyncRequest {
        new_plans: vec![Fixed(plan)],
        commitments: a.mint(&[plan]),
        push: vec![Blob(bundle.clone())],
        audit: vec![Blob(vec![0xFF; 40]), good.clone()],
        ..Default::default()
    };
    let answer = server.sync(&a, &request);
    assert_eq!(taken(&answer, &[&bundle]), [Fixed(bundle_id(&bundle))], "the push landed");
    assert_eq!(answer.audit_refused, [AuditRefusal { index: 0, reason: audit::REFUSE_MALFORMED.into() }]);
    assert_eq!(answer.audit_through, 5);
    // The same upload again (a lost answer) is kept once.
    let again = server.sync(&a, &SyncRequest { since: answer.head, audit: vec![good], ..Default::default() });
    assert_eq!((again.audit_through, again.audit_refused.len()), (5, 0));
    let page = network.audit_uploads(&server);
    assert_eq!(page.uploads.len(), 1);
    let stored = AuditUpload::from_bytes(&unhex(&page.uploads[0].upload).unwrap()).unwrap();
    assert_eq!((stored.first, stored.last, page.uploads[0].device_id.clone()), (1, 5, hex(&a.id)));
}

#[test]
fn the_audit_key_is_served_only_when_newer_than_the_devices_and_only_if_the_root_signed_it() {
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    assert_eq!(server.sync(&a, &SyncRequest::default()).audit_key, None, "none yet");
    let (_, _, first) = network.audit_key(1);
    assert_eq!(network.post_audit_key(&server, &first).status, 201);
    assert_eq!(network.post_audit_key(&server, &first).status, 200, "a retry");
    let (_, _, other_first) = network.audit_key(1);
    let reply = network.post_audit_key(&server, &other_first);
    assert_eq!(reply.error(409), "audit_key_not_newer");
    let (_, second_key, _) = network.audit_key(2);
    let reply = network.post_audit_key(&server, &second_key.sign(&network.admin));
    assert_eq!(reply.error(400), "bad_audit_key", "only the root certifies an audit key");

    let served = server.sync(&a, &SyncRequest::default()).audit_key.unwrap();
    assert_eq!(SignedAuditKey::from_bytes(&served.0).unwrap(), first);
    let held = SyncRequest { audit_key_version: 1, ..Default::default() };
    assert_eq!(server.sync(&a, &held).audit_key, None);
    let (_, _, second) = network.audit_key(2);
    network.post_audit_key(&server, &second);
    let served = server.sync(&a, &held).audit_key.unwrap();
    assert_eq!(
        SignedAuditKey::from_bytes(&served.0).unwrap().verify(&network.root_public()).unwrap().version,
        2
    );
}

#[test]
fn the_server_logs_sessions_syncs_and_admin_requests_in_a_chain_that_verifies_and_a_log_read_before_it_reads()
{
    let (server, network) = Network::start();
    let (_, a) = network.member(&server, "Ann");
    server.sync(&a, &SyncRequest::default());
    let plan: [u8; 16] = random();
    let query = format!("plan:{}", hex(&plan));
    let report = network.server_chain(&server, &query);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let actions: Vec<AuditAction> = report.events.iter().map(|e| e.action).collect();
    assert!(actions.contains(&AuditAction::Session), "{actions:?}");
    assert!(actions.contains(&AuditAction::AdminRequest), "{actions:?}");
    // The read that fetched these events is in them: it was logged first.
    let read = report.events.last().unwrap();
    assert_eq!((read.action, read.plan), (AuditAction::LogRead, Some(Fixed(plan))));
    assert_eq!(read.actor.user_name, "beheer");
    assert_eq!(read.object.as_deref(), Some(query.as_str()));
    // The sync is queued, not waited for: the next read sees it.
    let report = network.server_chain(&server, "verify");
    let sync = report.events.iter().find(|e| e.action == AuditAction::Sync).unwrap();
    // A sync that uploads nothing reads only who the device is: the whole of it.
    assert_eq!(sync.actor.device, Fixed(a.id));
    assert_eq!(
        (sync.actor.user_name.as_str(), sync.actor.organisation.as_str(), sync.actor.role.as_str()),
        ("Ann", "Wijkteam Noord", "wijkteam")
    );
    assert!(sync.detail.as_deref().unwrap().starts_with("pushed 0, delivered 0"), "{:?}", sync.detail);
    let unknown = format!("{}?query=everything", api::PATH_ADMIN_AUDIT_SERVER_EVENTS);
    assert_eq!(network.call(&server, "GET", &unknown, b"").error(400), "malformed");
}

#[test]
fn the_server_database_holds_no_field_of_a_devices_audit_events_in_plaintext() {
    let (server, network) = Network::start();
    let (mut ann, a) = network.member(&server, "Ann");
    let (_, key, signed) = network.audit_key(1);
    network.post_audit_key(&server, &signed);
    // Only the sealed events carry this name and this plan: the server never heard of either.
    ann.name = "Zoekterm Geheimenaam".into();
    let plan: [u8; 16] = random();
    let events = a.audit_events(&ann, plan, 1, 20);
    let answer =
        server.sync(&a, &SyncRequest { audit: vec![a.audit_upload(&key, 1, &events)], ..Default::default() });
    assert_eq!(answer.audit_through, 20);
    let mut bytes = std::fs::read(server.database()).unwrap();
    bytes.extend(std::fs::read(server.database().with_extension("db-wal")).unwrap_or_default());
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"Zoekterm Geheimenaam"));
    assert!(!contains(&plan), "the plan id as bytes");
    assert!(!contains(hex(&plan).as_bytes()), "the plan id as hex");
    assert!(contains(b"Ann"), "the search itself works: the user directory is there");
}

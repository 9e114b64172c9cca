#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `eenplan-admin` binary: keyring behaviour, and requests checked against a stand-in
//! server in this process that records what it is sent and answers from a script. (Tests
//! against the real server live with it.)

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use eenplan_protocol::DocumentId;
use eenplan_protocol::api::{
    self, CertificateUpload, EnrolmentCode, InitRequest, NewEnrolment, PolicyUpload, RevokeRequest,
    RoleChangeRequest,
};
use eenplan_protocol::certificate::{Certificate, device_id_of};
use eenplan_protocol::envelope;
use eenplan_protocol::epoch::SignedCommitment;
use eenplan_protocol::policy::{DEFAULT_POLICY_TOML, Policy, SignedPolicy};
use eenplan_protocol::rekey::{
    ListedDevice, RekeyAnswer, RekeyBatch, RekeyOutcome, RekeyRecipient, RekeyStatus, RekeyTask, RekeyTasks,
};
use eenplan_protocol::revocation::RevocationList;
use eenplan_protocol::sync::{Blob, Fixed};
use eenplan_protocol::wipe::{RevocationReason, Signed, WipeOrder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const PASSPHRASE: &str = "correct horse battery staple";

/// One administrator's keyring directory.
struct Admin {
    dir: TempDir,
    passphrase: String,
}

impl Admin {
    fn new() -> Admin {
        Admin { dir: TempDir::new().unwrap(), passphrase: PASSPHRASE.into() }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("admin")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_eenplan-admin"));
        command
            .args(args)
            .env_remove("EENPLAN_SERVER")
            .env("EENPLAN_ADMIN_DATA", self.data())
            .env("EENPLAN_ADMIN_PASSPHRASE", &self.passphrase)
            .env("EENPLAN_INSECURE_FAST_KDF", "1")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "eenplan-admin {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Runs a command that must fail with `code`; its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "eenplan-admin {args:?}: {stderr}");
        stderr
    }

    fn keyring(&self) -> PathBuf {
        self.data().join("keyring.eenplan")
    }

    /// Sets up a network against `server` (which must answer the init request).
    fn init(&self, server: &Fake) -> Value {
        server.answer(200, "{}");
        let out = self.ok(&["init", "--server", &server.url, "--name", "Beheer", "--json"]);
        serde_json::from_str(&out).unwrap()
    }
}

/// A request as the stand-in server received it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// The network root of the init this stand-in saw (this request's own, for the init).
    root: Option<[u8; 32]>,
}

impl Request {
    /// Checks the admin signature the way the server must, and returns the signing key.
    fn verify_admin_signature(&self) -> [u8; 32] {
        let admin: [u8; 32] = api::unhex(&self.headers[api::HEADER_ADMIN]).unwrap().try_into().unwrap();
        let time: i64 = self.headers[api::HEADER_TIME].parse().unwrap();
        let now = now_ms();
        assert!((now - time).abs() < api::ADMIN_CLOCK_SKEW_MS, "request time {time} vs now {now}");
        let signature: [u8; 64] =
            api::unhex(&self.headers[api::HEADER_SIGNATURE]).unwrap().try_into().unwrap();
        // Signed for this server, as the administrator addressed it, and for the network.
        let origin = &self.headers[api::HEADER_ORIGIN];
        assert_eq!(*origin, format!("http://{}", self.headers["host"]));
        let root = self.root.expect("the stand-in saw the network's init first");
        let audience = api::AdminAudience { root_public: &root, origin };
        let message = api::admin_request_message(audience, &self.method, &self.path, time, &self.body);
        VerifyingKey::from_bytes(&admin)
            .unwrap()
            .verify_strict(&message, &Signature::from_bytes(&signature))
            .unwrap();
        admin
    }

    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the stand-in answers with.
#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// The body of the newest POST to this path (a revocation list read back as uploaded).
    LastPostTo(&'static str),
}

/// A stand-in for the server: one request per connection, answered from a script.
struct Fake {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    answers: Arc<Mutex<VecDeque<(u16, Body)>>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answers: Arc<Mutex<VecDeque<(u16, Body)>>> = Arc::new(Mutex::new(VecDeque::new()));
        let (seen, script) = (requests.clone(), answers.clone());
        std::thread::spawn(move || {
            let mut root = None;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(mut request) = read_request(&stream) else { continue };
                if request.path == api::PATH_ADMIN_INIT
                    && let Ok(init) = serde_json::from_slice::<api::InitRequest>(&request.body)
                {
                    root = api::unhex(&init.root_public).and_then(|r| r.try_into().ok());
                }
                request.root = root;
                let mut requests = seen.lock().unwrap();
                requests.push(request);
                let unscripted =
                    Body::Bytes(br#"{"code":"unscripted","message":"no answer scripted"}"#.to_vec());
                let (status, body) = script.lock().unwrap().pop_front().unwrap_or((500, unscripted));
                let body = match body {
                    Body::Bytes(bytes) => bytes,
                    Body::LastPostTo(path) => requests
                        .iter()
                        .rev()
                        .find(|r| r.method == "POST" && r.path == path)
                        .map(|r| r.body.clone())
                        .unwrap_or_default(),
                };
                drop(requests);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Fake { url, requests, answers }
    }

    fn answer(&self, status: u16, body: &str) {
        self.answer_bytes(status, body.as_bytes().to_vec());
    }

    fn answer_bytes(&self, status: u16, body: Vec<u8>) {
        self.answers.lock().unwrap().push_back((status, Body::Bytes(body)));
    }

    /// Answers with what was last posted to `path`.
    fn echo(&self, path: &'static str) {
        self.answers.lock().unwrap().push_back((200, Body::LastPostTo(path)));
    }

    /// The policy in force: the signed default that the network's init sent (checked before
    /// a user gets a role, and before re-keying).
    fn answer_init_policy(&self) {
        let init = self.requests().into_iter().find(|r| r.path == api::PATH_ADMIN_INIT).unwrap();
        let policy = init.json::<InitRequest>().policy;
        self.answer(200, &json!({ "policy": policy }).to_string());
    }

    /// No revocation list yet.
    fn no_revocations(&self) {
        self.answer(404, r#"{"code":"no_revocation_list","message":"no device has been revoked yet"}"#);
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn last(&self) -> Request {
        self.requests().pop().unwrap()
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let len: usize = headers.get("content-length").map_or(Some(0), |v| v.parse().ok())?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, headers, body, root: None })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A server address where nothing listens.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[test]
fn help_lists_the_commands_and_the_environment() {
    let out = Admin::new().ok(&["--help"]);
    for word in [
        "init",
        "org",
        "user",
        "device",
        "plan",
        "policy",
        "rekey",
        "EENPLAN_ADMIN_PASSPHRASE",
        "EENPLAN_ADMIN_DATA",
    ] {
        assert!(out.contains(word), "{word} missing from:\n{out}");
    }
    let out = Admin::new().ok(&["device", "approve", "--help"]);
    assert!(out.contains("--code") && out.contains("--all-pending"), "{out}");
    let out = Admin::new().ok(&["device", "--help"]);
    assert!(out.contains("revoke"), "{out}");
    let out = Admin::new().ok(&["device", "revoke", "--help"]);
    assert!(out.contains("--reason") && out.contains("stolen"), "{out}");
    let out = Admin::new().ok(&["policy", "--help"]);
    assert!(out.contains("show") && out.contains("set"), "{out}");
    let out = Admin::new().ok(&["rekey", "--help"]);
    assert!(out.contains("interrupted"), "{out}");
}

#[test]
fn commands_without_a_keyring_say_run_init_first_without_asking_a_passphrase() {
    let admin = Admin::new();
    for args in [
        &["org", "list"][..],
        &["user", "list"],
        &["device", "list", "--pending"],
        &["device", "enrol", "--user", "x"],
    ] {
        let mut command = admin.command(args);
        command.env_remove("EENPLAN_ADMIN_PASSPHRASE");
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("run `eenplan-admin init` first"), "{args:?}: {stderr}");
    }
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    let admin = Admin::new();
    let mut no_data = admin.command(&["org", "list"]);
    no_data.env_remove("EENPLAN_ADMIN_DATA");
    let out = no_data.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data"));

    assert!(admin.fails(&["init", "--name", "Beheer"], 2).contains("--server"));
    assert!(
        admin.fails(&["init", "--server", "eenplan.example", "--name", "Beheer"], 2).contains("https://")
    );
    admin.fails(&["init", "--server", "https://x.example/api", "--name", "Beheer"], 2);
    admin.fails(&["init", "--server", "https://x.example", "--name", "  "], 2);
    admin.fails(&["device", "approve"], 2);
    admin.fails(&["device", "approve", "--code", "X", "--all-pending"], 2);
    admin.fails(&["user", "add", "--org", "Noord", "--name", "Jan", "--role", "koning"], 2);
    // Regie is a function per plan, not a role any more.
    admin.fails(&["user", "add", "--org", "Noord", "--name", "Jan", "--role", "regisseur"], 2);
    admin.fails(&["user", "retire-role", "--from", "regisseur"], 2);
    admin.fails(&["plan", "assign", "not-a-plan", "--user", "Jan", "--role", "wijkteam"], 2);
    admin.fails(&["org", "add", "Noord", "--lease-hours", "0"], 2);
    assert!(!admin.keyring().exists());
}

#[test]
fn init_registers_the_network_with_a_signed_request_and_keeps_the_keys_private() {
    let server = Fake::start();
    let admin = Admin::new();
    let out = admin.init(&server);

    let request = server.last();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", api::PATH_ADMIN_INIT));
    let admin_public = request.verify_admin_signature();
    let init: InitRequest = request.json();
    let root: [u8; 32] = api::unhex(&init.root_public).unwrap().try_into().unwrap();
    let certificate = Certificate::from_bytes(&api::unhex(&init.admin_certificate).unwrap()).unwrap();
    let body = certificate.verify_admin(&root).unwrap();
    assert_eq!((body.admin_public, body.name.as_str()), (admin_public, "Beheer"));
    let escrow = api::unhex(&init.escrow_public).unwrap();
    let escrow_signature: [u8; 64] = api::unhex(&init.escrow_signature).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(&root)
        .unwrap()
        .verify_strict(&api::escrow_message(&escrow), &Signature::from_bytes(&escrow_signature))
        .unwrap();

    assert_eq!(out["root_fingerprint"], api::hex(&Sha256::digest(root)[..8]));
    assert_eq!(out["root_public"], init.root_public);
    assert_eq!(out["admin_public"], api::hex(&admin_public));

    assert_eq!(mode(&admin.keyring()), 0o600);
    assert_eq!(mode(&admin.data()), 0o700);
    let mut names: Vec<String> = std::fs::read_dir(admin.data())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["keyring.eenplan", "keyring.lock"]);

    // The same network is not set up twice, and the server is not asked.
    let before = server.requests().len();
    assert!(
        admin.fails(&["init", "--server", &server.url, "--name", "Beheer"], 1).contains("already set up")
    );
    assert_eq!(server.requests().len(), before);
}

#[test]
fn init_prints_only_the_fingerprint_without_json() {
    let server = Fake::start();
    server.answer(200, "");
    let fingerprint = Admin::new().ok(&["init", "--server", &server.url, "--name", "Beheer"]);
    assert_eq!(fingerprint.len(), 16, "{fingerprint}");
    assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn a_wrong_passphrase_is_refused_with_a_clear_message() {
    let server = Fake::start();
    let admin = Admin::new();
    admin.init(&server);
    let before = server.requests().len();
    let wrong = Admin { passphrase: "wrong".into(), ..admin };
    let stderr = wrong.fails(&["org", "list"], 1);
    assert!(stderr.contains("passphrase does not unlock this keyring"), "{stderr}");
    assert_eq!(server.requests().len(), before);
}

#[test]
fn a_damaged_keyring_is_reported_not_replaced() {
    let server = Fake::start();
    let admin = Admin::new();
    admin.init(&server);
    let mut bytes = std::fs::read(admin.keyring()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(admin.keyring(), &bytes).unwrap();
    assert!(admin.fails(&["org", "list"], 1).contains("damaged"));
    assert!(admin.fails(&["init", "--server", &server.url, "--name", "Beheer"], 1).contains("damaged"));
    assert_eq!(std::fs::read(admin.keyring()).unwrap(), bytes);
}

#[test]
fn an_init_the_server_never_confirmed_is_finished_by_running_init_again() {
    let admin = Admin::new();
    let stderr = admin.fails(&["init", "--server", &closed_port(), "--name", "Beheer"], 1);
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
    // The keys were kept: losing a root key the server might already know is not an option.
    let header = std::fs::read(admin.keyring()).unwrap()[..60].to_vec();
    assert!(admin.fails(&["org", "list"], 1).contains("init did not finish"));

    let server = Fake::start();
    let out = admin.init(&server);
    assert_eq!(std::fs::read(admin.keyring()).unwrap()[..60], header[..], "the same keyring, not a new one");
    let init: InitRequest = server.last().json();
    assert_eq!(out["root_public"], init.root_public);

    server.answer(200, "[]");
    admin.ok(&["org", "list"]);
}

#[test]
fn an_init_whose_answer_was_lost_is_recognised_as_done() {
    let server = Fake::start();
    let admin = Admin::new();
    server.answer(502, "<html>bad gateway</html>");
    let stderr = admin.fails(&["init", "--server", &server.url, "--name", "Beheer"], 1);
    assert!(stderr.contains("HTTP 502"), "{stderr}");
    // The retry is refused as a second init, but the server knows this administrator.
    server.answer(409, r#"{"code":"already_initialised","message":"this server already has a network"}"#);
    server.answer(200, "[]");
    admin.ok(&["init", "--server", &server.url, "--name", "Beheer"]);
    let requests = server.requests();
    let probe = requests.last().unwrap();
    assert_eq!((probe.method.as_str(), probe.path.as_str()), ("GET", api::PATH_ADMIN_ORGS));
    server.answer(200, "[]");
    admin.ok(&["org", "list"]);
}

#[test]
fn an_init_another_network_owns_is_refused() {
    let server = Fake::start();
    let admin = Admin::new();
    server.answer(409, r#"{"code":"already_initialised","message":"this server already has a network"}"#);
    server.answer(401, r#"{"code":"unknown_admin","message":"not an administrator of this network"}"#);
    let stderr = admin.fails(&["init", "--server", &server.url, "--name", "Beheer"], 1);
    assert!(stderr.contains("error: this server already has a network (already_initialised)"), "{stderr}");
}

#[test]
fn server_errors_show_their_message_and_code_and_exit_1() {
    let server = Fake::start();
    let admin = Admin::new();
    admin.init(&server);
    server.answer(409, r#"{"code":"org_exists","message":"an organisation with that name exists"}"#);
    let stderr = admin.fails(&["org", "add", "Wijkteam Noord"], 1);
    assert_eq!(stderr.trim(), "error: an organisation with that name exists (org_exists)");
    let request = server.last();
    request.verify_admin_signature();
    assert_eq!(request.json::<Value>(), json!({"name": "Wijkteam Noord", "lease_hours": 72}));
}

#[test]
fn lists_are_tables_or_json_and_every_request_is_signed() {
    let server = Fake::start();
    let admin = Admin::new();
    admin.init(&server);
    let orgs =
        r#"[{"id":1,"name":"Wijkteam Noord","lease_hours":72},{"id":2,"name":"GGZ","lease_hours":24}]"#;
    server.answer(200, orgs);
    let text = admin.ok(&["org", "list"]);
    assert_eq!(text, "ID  NAME            LEASE\n1   Wijkteam Noord  72 h\n2   GGZ             24 h");
    server.answer(200, orgs);
    let json: Value = serde_json::from_str(&admin.ok(&["org", "list", "--json"])).unwrap();
    assert_eq!(json[1]["name"], "GGZ");
    let request = server.last();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", api::PATH_ADMIN_ORGS));
    request.verify_admin_signature();

    server.answer(200, r#"[{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}]"#);
    assert!(admin.ok(&["user", "list"]).contains("Fatima"));
    server.answer(200, "[]");
    admin.ok(&["device", "list", "--pending"]);
    assert_eq!(server.last().path, "/v1/admin/devices?state=pending");
    server.last().verify_admin_signature();
}

#[test]
fn user_add_and_plan_assign_send_what_the_api_describes() {
    let server = Fake::start();
    let admin = Admin::new();
    admin.init(&server);
    server.answer_init_policy();
    server.answer(200, r#"{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}"#);
    let out = admin.ok(&["user", "add", "--org", "Wijkteam Noord", "--name", "Fatima", "--role", "wijkteam"]);
    assert!(out.contains("id 7"), "{out}");
    assert_eq!(
        server.last().json::<Value>(),
        json!({"org": "Wijkteam Noord", "name": "Fatima", "role": "wijkteam"})
    );

    let plan = "00112233445566778899aabbccddeeff";
    server.answer(200, r#"[{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}]"#);
    server.answer(200, "{}");
    admin.ok(&["plan", "assign", plan, "--user", "Fatima", "--role", "wijkteam"]);
    let request = server.last();
    assert_eq!(request.path, format!("/v1/admin/plans/{plan}/participants"));
    request.verify_admin_signature();
    assert_eq!(request.json::<Value>(), json!({"user_id": 7, "role": "wijkteam"}));

    // Names that fit several users, and unknown users, are usage errors; nothing is posted.
    let before = server.requests().len();
    server.answer(
        200,
        r#"[{"id":7,"org":"A","name":"Jan","role":"wijkteam"},{"id":8,"org":"B","name":"Jan","role":"ggz"}]"#,
    );
    let ambiguous = admin.fails(&["plan", "assign", plan, "--user", "Jan", "--role", "ggz"], 2);
    assert!(ambiguous.contains("Jan (A, id 7); Jan (B, id 8)"), "{ambiguous}");
    server.answer(200, "[]");
    admin.fails(&["device", "enrol", "--user", "Piet"], 2);
    assert_eq!(server.requests().len(), before + 2);
}

/// A device as the server would list it after it claimed a code whose MAC key is `mac_key`.
fn pending_device(seed: u8, user_id: i64, mac_key: &[u8; 32]) -> Value {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let public = key.verifying_key().to_bytes();
    json!({
        "device_id": api::hex(&device_id_of(&public)),
        "user_id": user_id,
        "user_name": "Fatima",
        "org": "Wijkteam Noord",
        "role": "wijkteam",
        "state": "pending",
        "signing_public": api::hex(&public),
        "agreement_public": api::hex(&[seed; envelope::XWING_PUBLIC_LEN]),
        "key_mac": api::hex(&api::key_mac(mac_key, &public, &[seed; envelope::XWING_PUBLIC_LEN])),
        "created_at_ms": now_ms(),
    })
}

/// Issues a code for user 7 (Fatima) through the CLI.
fn enrol_fatima(admin: &Admin, server: &Fake) -> EnrolmentCode {
    server.answer(200, r#"[{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}]"#);
    server.answer_init_policy();
    server.answer(200, "{}");
    EnrolmentCode::parse(&admin.ok(&["device", "enrol", "--user", "Fatima"])).unwrap()
}

fn certificate_uploads(server: &Fake) -> usize {
    server.requests().iter().filter(|r| r.path.ends_with("/certificate")).count()
}

#[test]
fn an_enrolment_code_approves_the_device_that_claimed_it() {
    let server = Fake::start();
    let admin = Admin::new();
    let network = admin.init(&server);
    let root: [u8; 32] = api::unhex(network["root_public"].as_str().unwrap()).unwrap().try_into().unwrap();
    let init: InitRequest = server.last().json();
    let admin_certificate = Certificate::from_bytes(&api::unhex(&init.admin_certificate).unwrap()).unwrap();
    let users = r#"[{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}]"#;

    server.answer(200, users);
    server.answer_init_policy();
    server.answer(200, "{}");
    let printed = admin.ok(&["device", "enrol", "--user", "Fatima"]);
    let code =
        EnrolmentCode::parse(&printed).unwrap_or_else(|| panic!("stdout is the code alone: {printed:?}"));
    assert!(code.matches_root(&root));
    let request = server.last();
    request.verify_admin_signature();
    let enrolment: NewEnrolment = request.json();
    assert_eq!(enrolment.user_id, 7);
    assert_eq!(enrolment.code_id, api::hex(&code.id()));
    let hours = (enrolment.expires_at_ms - now_ms()) as f64 / 3_600_000.0;
    assert!((23.9..=24.0).contains(&hours), "{hours}");

    // Only the device whose key MAC proves the code is approved by it: not one the server made
    // up (it knows the code's id, not its MAC key), nor one that claimed another code.
    let claimed = pending_device(1, 7, &code.mac_key());
    let other_code = EnrolmentCode::generate(&root).unwrap();
    let devices =
        json!([pending_device(2, 7, &code.id()), claimed, pending_device(3, 7, &other_code.mac_key())]);
    server.answer(200, &devices.to_string());
    server.answer(200, "{}");
    let out = admin.ok(&["device", "approve", "--code", &printed.to_lowercase(), "--json"]);
    let approved: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(approved.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(approved[0]["device_id"], claimed["device_id"]);

    let requests = server.requests();
    let (list, upload) = (&requests[requests.len() - 2], &requests[requests.len() - 1]);
    assert_eq!(list.path, "/v1/admin/devices?state=pending");
    assert_eq!(
        upload.path,
        format!("/v1/admin/devices/{}/certificate", claimed["device_id"].as_str().unwrap())
    );
    upload.verify_admin_signature();
    let upload: CertificateUpload = upload.json();
    let certificate = Certificate::from_bytes(&api::unhex(&upload.certificate).unwrap()).unwrap();
    let body = certificate.verify_device(&admin_certificate, &root, now_ms()).unwrap();
    assert_eq!(
        (body.user_id, body.role.as_str(), body.organisation.as_str()),
        (7, "wijkteam", "Wijkteam Noord")
    );
    assert_eq!(api::hex(&body.signing_public), claimed["signing_public"].as_str().unwrap());

    // A code approves once.
    assert!(admin.fails(&["device", "approve", "--code", &printed], 1).contains("already used"));
}

#[test]
fn approving_all_pending_skips_a_device_whose_id_does_not_match_its_key() {
    let server = Fake::start();
    let admin = Admin::new();
    admin.init(&server);
    let (first, second) = (enrol_fatima(&admin, &server), enrol_fatima(&admin, &server));
    let good = pending_device(1, 7, &first.mac_key());
    let mut forged = pending_device(2, 7, &second.mac_key());
    forged["device_id"] = good["device_id"].clone();
    server.answer(200, &json!([forged, good]).to_string());
    server.answer(200, "{}");
    let out = admin.run(&["device", "approve", "--all-pending"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not belong to its signing key"), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with(&format!("approved {}", good["device_id"].as_str().unwrap())), "{stdout}");
    assert_eq!(certificate_uploads(&server), 1);
    // The first code is used up; the second, whose claim was refused, is not.
    server.answer(200, "[]");
    assert!(admin.fails(&["device", "approve", "--code", &first.to_string()], 1).contains("already used"));
    assert!(admin.fails(&["device", "approve", "--code", &second.to_string()], 1).contains("has claimed"));
}

#[test]
fn a_pending_device_the_server_made_up_is_not_approved() {
    let server = Fake::start();
    let admin = Admin::new();
    admin.init(&server);
    let code = enrol_fatima(&admin, &server);
    // The server knows the code's id, the user and any keys it likes, but not the MAC key.
    let made_up = pending_device(1, 7, &code.id());
    let mut unproven = pending_device(2, 7, &code.mac_key());
    unproven["key_mac"] = json!("");
    let listed = json!([made_up, unproven]).to_string();

    server.answer(200, &listed);
    assert!(admin.fails(&["device", "approve", "--code", &code.to_string()], 1).contains("has claimed"));
    server.answer(200, &listed);
    let out = admin.run(&["device", "approve", "--all-pending"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("proves no enrolment code").count(), 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");

    // A real claim the server lists under another role (or user) than the code was issued
    // for is refused, not certified with the server's word.
    let mut relabelled = pending_device(3, 7, &code.mac_key());
    relabelled["role"] = json!("beheer");
    server.answer(200, &json!([relabelled]).to_string());
    let stderr = admin.fails(&["device", "approve", "--code", &code.to_string()], 1);
    assert!(stderr.contains("another user, organisation or role"), "{stderr}");
    // Two devices that prove one code: the server copied a claim; neither is approved.
    server.answer(
        200,
        &json!([pending_device(4, 7, &code.mac_key()), pending_device(5, 7, &code.mac_key())]).to_string(),
    );
    assert!(admin.fails(&["device", "approve", "--code", &code.to_string()], 1).contains("several"));
    assert_eq!(certificate_uploads(&server), 0);

    // The code still approves the device that did claim it.
    let real = pending_device(6, 7, &code.mac_key());
    server.answer(200, &json!([made_up, real]).to_string());
    server.answer(200, "{}");
    let out = admin.ok(&["device", "approve", "--code", &code.to_string()]);
    assert!(out.starts_with(&format!("approved {}", real["device_id"].as_str().unwrap())), "{out}");
    assert_eq!(certificate_uploads(&server), 1);
}

#[test]
fn a_code_nobody_claimed_yet_or_from_elsewhere_is_refused() {
    let server = Fake::start();
    let admin = Admin::new();
    let network = admin.init(&server);
    let root: [u8; 32] = api::unhex(network["root_public"].as_str().unwrap()).unwrap().try_into().unwrap();
    server.answer(200, r#"[{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}]"#);
    server.answer_init_policy();
    server.answer(200, "{}");
    let code = admin.ok(&["device", "enrol", "--user", "7", "--valid-hours", "2"]);

    server.answer(200, "[]");
    assert!(admin.fails(&["device", "approve", "--code", &code], 1).contains("has claimed"));
    // Codes that are not this keyring's are refused before the server is asked.
    let before = server.requests().len();
    let foreign = EnrolmentCode::generate(&[1; 32]).unwrap().to_string();
    assert!(admin.fails(&["device", "approve", "--code", &foreign], 1).contains("another network"));
    let unknown = EnrolmentCode::generate(&root).unwrap().to_string();
    assert!(admin.fails(&["device", "approve", "--code", &unknown], 1).contains("did not issue"));
    admin.fails(&["device", "approve", "--code", "hello"], 2);
    assert_eq!(server.requests().len(), before);
}

/// A device with real keys (an X-Wing agreement key whose secret the test keeps), approved
/// through the CLI.
struct RealDevice {
    id: [u8; 16],
    agreement_secret: [u8; 32],
    /// The certificate the CLI signed for it (hex), as it uploaded it.
    certificate: String,
    /// As the server lists it.
    info: Value,
}

fn approve_real_device(admin: &Admin, server: &Fake, seed: u8, admin_certificate: &str) -> RealDevice {
    let code = enrol_fatima(admin, server);
    let public = SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes();
    let (secret, agreement) = envelope::generate_keypair();
    let info = json!({
        "device_id": api::hex(&device_id_of(&public)),
        "user_id": 7,
        "user_name": "Fatima",
        "org": "Wijkteam Noord",
        "role": "wijkteam",
        "state": "pending",
        "signing_public": api::hex(&public),
        "agreement_public": api::hex(&agreement),
        "key_mac": api::hex(&api::key_mac(&code.mac_key(), &public, &agreement)),
        "created_at_ms": now_ms(),
    });
    server.answer(200, &json!([info]).to_string());
    server.answer(200, "{}");
    admin.ok(&["device", "approve", "--code", &code.to_string()]);
    let upload: CertificateUpload = server.last().json();
    let mut info = info;
    info["state"] = json!("active");
    // Listed with its certificates, as the server lists an approved device: the CLI lists
    // an approved device only under the person its certificate names.
    info["certificate"] = json!(upload.certificate);
    info["admin_certificate"] = json!(admin_certificate);
    RealDevice { id: device_id_of(&public), agreement_secret: *secret, certificate: upload.certificate, info }
}

/// A network with one administrator and two approved devices of Fatima (wijkteam).
struct Network {
    server: Fake,
    admin: Admin,
    init: InitRequest,
    phone: RealDevice,
    laptop: RealDevice,
}

impl Network {
    fn new() -> Network {
        let server = Fake::start();
        let admin = Admin::new();
        admin.init(&server);
        Network::with(server, admin)
    }

    /// The network `admin` just set up at `server`, with Fatima's two devices approved.
    fn with(server: Fake, admin: Admin) -> Network {
        let init: InitRequest = server.last().json();
        let phone = approve_real_device(&admin, &server, 1, &init.admin_certificate);
        let laptop = approve_real_device(&admin, &server, 2, &init.admin_certificate);
        Network { server, admin, init, phone, laptop }
    }

    fn admin_public(&self) -> [u8; 32] {
        let root: [u8; 32] = api::unhex(&self.init.root_public).unwrap().try_into().unwrap();
        let certificate =
            Certificate::from_bytes(&api::unhex(&self.init.admin_certificate).unwrap()).unwrap();
        certificate.verify_admin(&root).unwrap().admin_public
    }

    /// The server answers the policy in force: the signed default that init sent.
    fn answer_policy(&self) {
        self.server.answer(200, &json!({ "policy": self.init.policy }).to_string());
    }

    fn root_public(&self) -> [u8; 32] {
        api::unhex(&self.init.root_public).unwrap().try_into().unwrap()
    }

    /// One rotation task for `document` at `epoch`, whose recipients are `devices`, each
    /// listed under the certificate given with it (CBOR, as the server answers).
    fn tasks(&self, document: DocumentId, epoch: u32, devices: &[(&RealDevice, &str)]) -> Vec<u8> {
        let listed = devices
            .iter()
            .map(|(device, certificate)| ListedDevice {
                device: Fixed(device.id),
                certificate: Blob(api::unhex(certificate).unwrap()),
                admin_certificate: 0,
            })
            .collect();
        let tasks = RekeyTasks {
            admin_certificates: vec![Blob(api::unhex(&self.init.admin_certificate).unwrap())],
            devices: listed,
            tasks: vec![RekeyTask {
                document: Fixed(document.to_bytes()),
                current_epoch: epoch,
                recipients: devices
                    .iter()
                    .map(|(device, _)| RekeyRecipient {
                        device: Fixed(device.id),
                        missing_epochs: Vec::new(),
                    })
                    .collect(),
                escrow: Vec::new(),
                commitments: Vec::new(),
            }],
        };
        eenplan_protocol::sync::encode(&tasks)
    }

    /// The task of `document` whose only recipient is `device`, under `certificate`.
    fn task(&self, document: DocumentId, epoch: u32, device: &RealDevice, certificate: &str) -> Vec<u8> {
        self.tasks(document, epoch, &[(device, certificate)])
    }

    /// The posted batches, decoded.
    fn rekey_batches(&self) -> Vec<RekeyBatch> {
        self.rekey_posts().iter().map(|r| eenplan_protocol::sync::decode(&r.body, 1 << 24).unwrap()).collect()
    }

    fn rekey_posts(&self) -> Vec<Request> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == api::PATH_ADMIN_REKEY)
            .collect()
    }
}

fn zorg() -> DocumentId {
    DocumentId::new([0x42; 16], 1).unwrap()
}

/// The server's answer to a batch: each document `status`.
fn outcome(documents: &[DocumentId], status: RekeyStatus) -> Vec<u8> {
    let outcomes = documents
        .iter()
        .map(|d| RekeyOutcome { document: Fixed(d.to_bytes()), status, message: String::new() })
        .collect();
    eenplan_protocol::sync::encode(&RekeyAnswer { outcomes, pending: 0 })
}

/// No task waits.
fn no_tasks() -> Vec<u8> {
    eenplan_protocol::sync::encode(&RekeyTasks::default())
}

#[test]
fn init_sends_the_default_policy_signed_by_the_root() {
    let network = Network::new();
    let root: [u8; 32] = api::unhex(&network.init.root_public).unwrap().try_into().unwrap();
    let signed = SignedPolicy::from_bytes(&api::unhex(&network.init.policy).unwrap()).unwrap();
    let policy = signed.verify(&root).unwrap();
    assert_eq!(policy.version, 1);
    assert!(policy.may_read("wijkteam", 1) && !policy.may_read("politie", 1) && !policy.may_read("ggz", 3));
}

#[test]
fn revoking_a_device_sends_a_signed_wipe_order_then_moves_what_it_could_read_to_a_new_key() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    let phone_id = api::hex(&network.phone.id);
    revoke_phone(&network);
    let out = admin.run(&["device", "revoke", &phone_id[..8].to_uppercase(), "--reason", "stolen"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with(&format!("revoked {phone_id}: Fatima (Wijkteam Noord, wijkteam), stolen")),
        "{stdout}"
    );
    assert!(stdout.contains("rotated 1 document to a new key: 2 envelopes"), "{stdout}");
    assert!(stderr.contains("rotating keys: 1/1 documents"), "{stderr}");

    // First the signed revocation list naming it, version 1, by this administrator.
    let requests = server.requests();
    let upload =
        requests.iter().find(|r| r.method == "POST" && r.path == api::PATH_ADMIN_REVOCATIONS).unwrap();
    assert_eq!(upload.verify_admin_signature(), network.admin_public());
    let list = RevocationList::verify(&upload.body, &network.root_public()).unwrap();
    assert_eq!(list.version, 1);
    assert_eq!(list.is_revoked(&network.phone.id).unwrap().reason, RevocationReason::Stolen);
    assert!(list.is_revoked(&network.laptop.id).is_none());
    let position = |path: &str| requests.iter().position(|r| r.path == path).unwrap();
    assert!(position(api::PATH_ADMIN_REVOCATIONS) < position(&api::admin_revoke_path(&network.phone.id)));

    // The revocation: a wipe order for that device, signed by this administrator, with its
    // certificate inside.
    let revoke = requests.iter().find(|r| r.path.ends_with("/revoke")).unwrap();
    assert_eq!(revoke.path, api::admin_revoke_path(&network.phone.id));
    assert_eq!(revoke.verify_admin_signature(), network.admin_public());
    let request: RevokeRequest = revoke.json();
    assert_eq!(request.reason, "stolen");
    let signed = Signed::from_bytes(&api::unhex(&request.wipe_order).unwrap()).unwrap();
    let order = WipeOrder::verify(&signed, &network.admin_public()).unwrap();
    assert_eq!(order.device.0, network.phone.id);
    assert_eq!(order.reason, RevocationReason::Stolen);
    assert_eq!(order.admin_certificate, api::unhex(&network.init.admin_certificate).unwrap());

    // The rotation: the listing is fetched in batches of 50, and the result seals a new key to
    // the remaining device and to escrow, under this administrator's commitment.
    assert!(requests.iter().any(|r| r.method == "GET" && r.path == "/v1/admin/rekey?limit=50"));
    let posts = network.rekey_posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].verify_admin_signature(), network.admin_public());
    let batches = network.rekey_batches();
    let result = &batches[0].results[0];
    assert_eq!((result.document.0, result.new_epoch), (zorg().to_bytes(), 2));
    let recipients: Vec<[u8; 16]> = result.envelopes.iter().map(|e| e.recipient.0).collect();
    assert_eq!(recipients.len(), 2);
    assert!(recipients.contains(&api::ESCROW_RECIPIENT));
    assert!(!recipients.contains(&network.phone.id));
    let mine = result.envelopes.iter().find(|e| e.recipient.0 == network.laptop.id).unwrap();
    let (sealed, sealer, signature) = envelope::split_signed(&mine.envelope.0).unwrap();
    assert_eq!(sealer, device_id_of(&network.admin_public()));
    envelope::verify_signature(sealed, &signature, &network.admin_public(), zorg(), 2, network.laptop.id)
        .unwrap();
    let key = envelope::open(sealed, &network.laptop.agreement_secret, network.laptop.id, zorg(), 2).unwrap();
    let commitment = SignedCommitment::from_bytes(&result.commitment.0).unwrap();
    let commitment = commitment.verify(&network.admin_public()).unwrap();
    commitment.matches(&key).unwrap();
    assert_eq!(commitment.revocations_version, 1, "made knowing the list that names the phone");
    assert_eq!(commitment.policy_version, 1);
}

/// Scripts the server's answers to `device revoke` of the phone: the device list, no
/// revocation list yet, the upload, the revocation, then a rotation of zorg to the laptop.
fn revoke_phone(network: &Network) {
    let server = &network.server;
    server.answer(200, &json!([network.phone.info, network.laptop.info]).to_string());
    server.no_revocations();
    server.answer(200, r#"{"version":1}"#);
    server.answer(200, r#"{"pending":1}"#);
    server.echo(api::PATH_ADMIN_REVOCATIONS);
    network.answer_policy();
    server.answer_bytes(200, network.task(zorg(), 1, &network.laptop, &network.laptop.certificate));
    server.answer_bytes(200, outcome(&[zorg()], RekeyStatus::Done));
    server.answer_bytes(200, no_tasks());
}

#[test]
fn rekey_alone_continues_what_was_left_and_skips_what_another_run_finished() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    let task = network.task(zorg(), 1, &network.laptop, &network.laptop.certificate);

    // The connection fails mid-run: what was done is printed, and the way on is named.
    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, task.clone());
    server.answer(502, "<html>bad gateway</html>");
    let stderr = admin.fails(&["rekey"], 1);
    assert!(stderr.contains("run `eenplan-admin rekey` to continue"), "{stderr}");

    // The post had in fact landed: the server calls the task stale, and the run ends clean.
    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, task);
    server.answer_bytes(200, outcome(&[zorg()], RekeyStatus::Stale));
    server.answer_bytes(200, no_tasks());
    let out = admin.ok(&["rekey"]);
    assert!(out.contains("1 document had been rotated already"), "{out}");

    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, no_tasks());
    assert_eq!(admin.ok(&["rekey"]), "no document waits for a new key");
    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, no_tasks());
    let json: Value = serde_json::from_str(&admin.ok(&["rekey", "--json"])).unwrap();
    assert_eq!(json["rotation"]["documents"], 0);
}

#[test]
fn a_recipient_the_keyring_cannot_verify_gets_nothing_and_the_command_fails() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    // The server lists the laptop under the phone's certificate.
    let task = network.task(zorg(), 1, &network.laptop, &network.phone.certificate);
    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, task);
    let out = admin.run(&["rekey"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not rotated") && stderr.contains("with the certificate of device"), "{stderr}");
    assert!(stderr.contains("1 document(s) were not moved to a new key"), "{stderr}");
    assert!(network.rekey_posts().is_empty());

    // A policy the root did not sign is not believed, and nothing is sealed under it.
    let forged =
        Policy { version: 9, roles: Default::default(), levels: Default::default(), retention: None }
            .sign(&SigningKey::from_bytes(&[3; 32]))
            .unwrap();
    server.no_revocations();
    server.answer(200, &json!({ "policy": api::hex(&forged.to_bytes()) }).to_string());
    let stderr = admin.fails(&["rekey"], 1);
    assert!(stderr.contains("not valid for this network"), "{stderr}");
    assert!(network.rekey_posts().is_empty());
}

#[test]
fn plan_unassign_removes_the_user_then_rotates() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    let plan = "00112233445566778899aabbccddeeff";
    server.answer(200, r#"[{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}]"#);
    // A plan without a signed membership chain (an empty CBOR list): the server's record.
    server.answer_bytes(200, vec![0x80]);
    server.answer(200, r#"{"pending":0}"#);
    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, no_tasks());
    let out = admin.ok(&["plan", "unassign", plan, "--user", "Fatima"]);
    assert!(out.starts_with(&format!("Fatima (id 7) no longer takes part in plan {plan}")), "{out}");
    let requests = server.requests();
    let unassign = requests.iter().find(|r| r.path.ends_with("/remove")).unwrap();
    assert_eq!(unassign.path, format!("/v1/admin/plans/{plan}/participants/7/remove"));
    unassign.verify_admin_signature();
}

#[test]
fn device_revoke_refuses_unclear_devices_and_reasons_before_revoking_anything() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    let before = server.requests().len();
    admin.fails(&["device", "revoke", &api::hex(&network.phone.id), "--reason", "borrowed"], 2);
    admin.fails(&["device", "revoke", &api::hex(&network.phone.id)], 2);
    assert_eq!(server.requests().len(), before);
    // A short id is refused, and a name or id that fits no device: after one listing each.
    server.answer(200, &json!([network.phone.info, network.laptop.info]).to_string());
    let stderr = admin.fails(&["device", "revoke", "abc", "--reason", "lost"], 2);
    assert!(stderr.contains("minstens 6"), "{stderr}");
    server.answer(200, &json!([network.phone.info, network.laptop.info]).to_string());
    let stderr = admin.fails(&["device", "revoke", "ffffffff", "--reason", "lost"], 2);
    assert!(stderr.contains("device list"), "{stderr}");
    server.answer(200, &json!([network.phone.info, network.laptop.info]).to_string());
    let stderr = admin.fails(&["device", "revoke", "Telefoon van niemand", "--reason", "lost"], 2);
    assert!(stderr.contains("geen apparaat"), "{stderr}");
    assert!(!server.requests().iter().any(|r| r.path.ends_with("/revoke")));
}

#[test]
fn policy_show_prints_the_verified_policy_as_toml_that_policy_set_reads_back() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    network.answer_policy();
    let shown = admin.ok(&["policy", "show"]);
    assert!(shown.starts_with("# eenplan sharing policy, version 1."), "{shown}");
    assert!(shown.contains("\nversion = 1\n") && shown.contains("[roles.politie]"), "{shown}");
    // The rules per escalation level too, and what they mean.
    assert!(shown.contains("[levels.zorg_en_veiligheidshuis.pga_expert]"), "{shown}");
    assert!(shown.contains("replaces that role's [roles] entry"), "{shown}");
    assert_eq!(server.last().path, api::PATH_ADMIN_POLICY);
    network.answer_policy();
    let json: Value = serde_json::from_str(&admin.ok(&["policy", "show", "--json"])).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["roles"]["ggz"]["read"], json!(["basis", "zorg"]));
    assert_eq!(
        json["levels"]["zorg_en_veiligheidshuis"]["zvh_procesregisseur"]["read"],
        json!(["basis", "zorg", "veiligheid", "justitie"])
    );

    // The printed file, with a higher version and ggz no longer reading zorg, is the next
    // policy: signed by the root, uploaded, then the rotation runs.
    let next = shown.replace("version = 1", "version = 2").replace(
        "[roles.ggz]\nread = [\"basis\", \"zorg\"]\nwrite = [\"basis\", \"zorg\"]",
        "[roles.ggz]\nread = [\"basis\"]\nwrite = [\"basis\"]",
    );
    assert_ne!(next, shown.replace("version = 1", "version = 2"), "the ggz table is as expected:\n{shown}");
    let file = admin.dir.path().join("policy.toml");
    std::fs::write(&file, &next).unwrap();
    network.answer_policy();
    server.answer(200, r#"{"pending":0}"#);
    server.no_revocations();
    server.answer_bytes(200, no_tasks());
    let out = admin.run(&["policy", "set", file.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("policy version 2 is in force (was 1)"), "{stdout}");
    assert!(stderr.contains("role \"ggz\" no longer reads zorg"), "{stderr}");
    let requests = server.requests();
    let upload = requests.iter().find(|r| r.method == "POST" && r.path == api::PATH_ADMIN_POLICY).unwrap();
    upload.verify_admin_signature();
    let upload: PolicyUpload = upload.json();
    let root: [u8; 32] = api::unhex(&network.init.root_public).unwrap().try_into().unwrap();
    let policy =
        SignedPolicy::from_bytes(&api::unhex(&upload.policy).unwrap()).unwrap().verify(&root).unwrap();
    assert_eq!(policy.version, 2);
    assert!(!policy.may_read("ggz", 1) && policy.may_read("ggz", 0));
    assert!(policy.may_read_at("pga_expert", 1, "zorg_en_veiligheidshuis"), "the level rules travel");
}

#[test]
fn policy_set_refuses_an_old_version_and_a_broken_file_without_uploading() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    let file = admin.dir.path().join("policy.toml");

    std::fs::write(&file, DEFAULT_POLICY_TOML).unwrap();
    network.answer_policy();
    let stderr = admin.fails(&["policy", "set", file.to_str().unwrap()], 2);
    assert!(stderr.contains("version 1 is in force; raise `version` above 1"), "{stderr}");

    let before = server.requests().len();
    std::fs::write(&file, "version = 2\n\n[roles.ggz]\nread = [\"basis\", \"zorgen\"]\n").unwrap();
    let stderr = admin.fails(&["policy", "set", file.to_str().unwrap()], 2);
    assert!(stderr.contains("policy.toml: line 4: ") && stderr.contains("zorgen"), "{stderr}");
    std::fs::write(&file, "version = 2\n[roles.ggz]\nreed = []\n").unwrap();
    let stderr = admin.fails(&["policy", "set", file.to_str().unwrap()], 2);
    assert!(stderr.contains("line 3: ") && stderr.contains("reed"), "{stderr}");
    let stderr = admin.fails(&["policy", "set", "/nonexistent/policy.toml"], 1);
    assert!(stderr.contains("cannot read /nonexistent/policy.toml"), "{stderr}");
    assert_eq!(server.requests().len(), before);
    assert!(!server.requests().iter().any(|r| r.method == "POST" && r.path == api::PATH_ADMIN_POLICY));
}

#[test]
fn set_role_recertifies_each_device_from_its_verified_certificate_then_rotates() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    let fatima = r#"[{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}]"#;
    let listed = |device: &RealDevice, certificate: &str| {
        let mut info = device.info.clone();
        info["certificate"] = json!(certificate);
        info["admin_certificate"] = json!(network.init.admin_certificate);
        info
    };

    // The server lists the laptop under the phone's certificate: nothing is re-certified.
    network.answer_policy();
    server.answer(200, fatima);
    server.answer(
        200,
        &json!([
            listed(&network.phone, &network.phone.certificate),
            listed(&network.laptop, &network.phone.certificate)
        ])
        .to_string(),
    );
    let stderr = admin.fails(&["user", "set-role", "Fatima", "--role", "ggz"], 1);
    assert!(stderr.contains("names another device"), "{stderr}");
    assert!(!server.requests().iter().any(|r| r.path.ends_with("/role")));

    network.answer_policy();
    server.answer(200, fatima);
    server.answer(
        200,
        &json!([
            listed(&network.phone, &network.phone.certificate),
            listed(&network.laptop, &network.laptop.certificate)
        ])
        .to_string(),
    );
    server.answer(200, r#"{"pending":0}"#);
    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, no_tasks());
    let out = admin.ok(&["user", "set-role", "Fatima", "--role", "ggz"]);
    assert!(out.starts_with("Fatima (id 7) is now ggz (was wijkteam); 2 device(s) re-certified"), "{out}");

    let requests = server.requests();
    let change = requests.iter().find(|r| r.path.ends_with("/role")).unwrap();
    assert_eq!(change.path, api::admin_user_role_path(7));
    assert_eq!(change.verify_admin_signature(), network.admin_public());
    let request: RoleChangeRequest = change.json();
    assert_eq!(request.role, "ggz");
    let root: [u8; 32] = api::unhex(&network.init.root_public).unwrap().try_into().unwrap();
    let admin_certificate =
        Certificate::from_bytes(&api::unhex(&network.init.admin_certificate).unwrap()).unwrap();
    let mut devices = Vec::new();
    for upload in &request.certificates {
        let new = Certificate::from_bytes(&api::unhex(&upload.certificate).unwrap()).unwrap();
        let body = new.verify_device(&admin_certificate, &root, now_ms()).unwrap();
        let device = [&network.phone, &network.laptop].into_iter().find(|d| d.id == body.device_id).unwrap();
        let old = Certificate::from_bytes(&api::unhex(&device.certificate).unwrap()).unwrap();
        let old = old.claimed_device_body().unwrap();
        assert_eq!(body.role, "ggz");
        assert_eq!(
            (body.signing_public, &body.agreement_public),
            (old.signing_public, &old.agreement_public)
        );
        assert!(body.valid_from_ms > old.valid_from_ms);
        devices.push(body.device_id);
    }
    devices.sort();
    let mut expected = vec![network.phone.id, network.laptop.id];
    expected.sort();
    assert_eq!(devices, expected);
}

#[test]
fn a_device_this_keyring_revoked_gets_no_key_though_the_server_lists_it_again() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    revoke_phone(&network);
    admin.ok(&["device", "revoke", &api::hex(&network.phone.id), "--reason", "stolen"]);
    let before = network.rekey_posts().len();

    // The server lists the revoked phone as a reader again, with its valid certificate.
    server.echo(api::PATH_ADMIN_REVOCATIONS);
    network.answer_policy();
    let devices = [
        (&network.phone, network.phone.certificate.as_str()),
        (&network.laptop, &network.laptop.certificate),
    ];
    server.answer_bytes(200, network.tasks(zorg(), 2, &devices));
    server.answer_bytes(200, outcome(&[zorg()], RekeyStatus::Done));
    server.answer_bytes(200, no_tasks());
    let stderr = admin.fails(&["rekey"], 1);
    assert!(stderr.contains(&format!("device {} as a reader", api::hex(&network.phone.id))), "{stderr}");
    assert!(stderr.contains("1 device(s) this keyring revoked as readers"), "{stderr}");
    let batches = network.rekey_batches();
    assert_eq!(batches.len(), before + 1, "the document still moves on, for the others");
    let result = &batches[before].results[0];
    assert_eq!(result.new_epoch, 3);
    assert!(result.envelopes.iter().all(|e| e.recipient.0 != network.phone.id), "nothing for the phone");
    assert!(result.envelopes.iter().any(|e| e.recipient.0 == network.laptop.id));
}

#[test]
fn a_server_that_forgets_a_revocation_list_this_keyring_saw_is_refused() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    revoke_phone(&network);
    admin.ok(&["device", "revoke", &api::hex(&network.phone.id), "--reason", "stolen"]);
    let before = server.requests().len();
    // The server answers as if no device was ever revoked.
    server.no_revocations();
    let stderr = admin.fails(&["rekey"], 1);
    assert!(stderr.contains("revocation list is refused"), "{stderr}");
    assert!(stderr.contains("older than version 1"), "{stderr}");
    let asked: Vec<String> = server.requests()[before..].iter().map(|r| r.path.clone()).collect();
    assert_eq!(asked, [api::PATH_ADMIN_REVOCATIONS], "nothing else is asked, nothing sealed");
}

#[test]
fn a_server_that_serves_an_older_policy_than_this_keyring_set_is_refused() {
    let network = Network::new();
    let (server, admin) = (&network.server, &network.admin);
    let file = admin.dir.path().join("policy.toml");
    std::fs::write(&file, DEFAULT_POLICY_TOML.replacen("version = 1", "version = 2", 1)).unwrap();
    network.answer_policy();
    server.answer(200, r#"{"pending":0}"#);
    server.no_revocations();
    server.answer_bytes(200, no_tasks());
    admin.ok(&["policy", "set", file.to_str().unwrap()]);
    // Policy 1 again, though the root signed it: older than what this keyring set.
    network.answer_policy();
    let stderr = admin.fails(&["policy", "show"], 1);
    assert!(stderr.contains("policy is version 1, but this keyring has seen version 2"), "{stderr}");
    server.no_revocations();
    network.answer_policy();
    let before = server.requests().len();
    let stderr = admin.fails(&["rekey"], 1);
    assert!(stderr.contains("older policy"), "{stderr}");
    assert!(!server.requests()[before..].iter().any(|r| r.path.starts_with(api::PATH_ADMIN_REKEY)));
}

const OFFLINE_PASSPHRASE: &str = "sleutel in de kluis, niet op de laptop";

#[test]
fn an_offline_keyring_keeps_the_root_and_escrow_out_of_daily_work_and_is_asked_for_when_needed() {
    let server = Fake::start();
    let admin = Admin::new();
    let offline = admin.dir.path().join("stick").join("offline.eenplan");
    let offline_arg = offline.to_str().unwrap();
    server.answer(200, "{}");
    let out = admin
        .command(&[
            "init",
            "--server",
            &server.url,
            "--name",
            "Beheer",
            "--offline-keyring",
            offline_arg,
            "--json",
        ])
        .env("EENPLAN_OFFLINE_PASSPHRASE", OFFLINE_PASSPHRASE)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&offline), 0o600);
    let init: InitRequest = server.last().json();
    let root: [u8; 32] = api::unhex(&init.root_public).unwrap().try_into().unwrap();
    SignedPolicy::from_bytes(&api::unhex(&init.policy).unwrap()).unwrap().verify(&root).unwrap();

    // Daily work needs no offline keyring.
    server.answer(200, "[]");
    admin.ok(&["org", "list"]);

    // Signing a policy does, and says so before asking the server anything.
    let file = admin.dir.path().join("policy.toml");
    std::fs::write(&file, DEFAULT_POLICY_TOML.replacen("version = 1", "version = 2", 1)).unwrap();
    let before = server.requests().len();
    let stderr = admin.fails(&["policy", "set", file.to_str().unwrap()], 2);
    assert!(
        stderr.contains("needs the network root key") && stderr.contains("--offline-keyring PATH"),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), before);

    // With it (and its own passphrase), the policy is signed by the root.
    let with_offline = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--offline-keyring", offline_arg]);
        let mut command = admin.command(&all);
        command.env("EENPLAN_OFFLINE_PASSPHRASE", OFFLINE_PASSPHRASE);
        command
    };
    server.answer(200, &json!({ "policy": init.policy }).to_string());
    server.answer(200, r#"{"pending":0}"#);
    server.no_revocations();
    server.answer_bytes(200, no_tasks());
    let out = with_offline(&["policy", "set", file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let upload = server
        .requests()
        .into_iter()
        .find(|r| r.path == api::PATH_ADMIN_POLICY && r.method == "POST")
        .unwrap();
    let upload: PolicyUpload = upload.json();
    let signed = SignedPolicy::from_bytes(&api::unhex(&upload.policy).unwrap()).unwrap();
    assert_eq!(signed.verify(&root).unwrap().version, 2);

    // The wrong passphrase, or another network's offline keyring, opens nothing.
    let mut wrong = with_offline(&["policy", "show"]);
    wrong.env("EENPLAN_OFFLINE_PASSPHRASE", "dit is niet de goede zin");
    let stderr = String::from_utf8_lossy(&wrong.output().unwrap().stderr).into_owned();
    assert!(stderr.contains("passphrase does not unlock"), "{stderr}");
    let other = Admin::new();
    let other_server = Fake::start();
    let other_offline = other.dir.path().join("offline.eenplan");
    other_server.answer(200, "{}");
    let out = other
        .command(&[
            "init",
            "--server",
            &other_server.url,
            "--name",
            "X",
            "--offline-keyring",
            other_offline.to_str().unwrap(),
        ])
        .env("EENPLAN_OFFLINE_PASSPHRASE", OFFLINE_PASSPHRASE)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut foreign =
        admin.command(&["policy", "show", "--offline-keyring", other_offline.to_str().unwrap()]);
    foreign.env("EENPLAN_OFFLINE_PASSPHRASE", OFFLINE_PASSPHRASE);
    let stderr = String::from_utf8_lossy(&foreign.output().unwrap().stderr).into_owned();
    assert!(stderr.contains("another network"), "{stderr}");
}

#[test]
fn recovering_a_key_only_escrow_holds_waits_for_the_offline_keyring() {
    let server = Fake::start();
    let admin = Admin::new();
    let offline = admin.dir.path().join("offline.eenplan");
    let offline_arg = offline.to_str().unwrap().to_string();
    server.answer(200, "{}");
    let out = admin
        .command(&["init", "--server", &server.url, "--name", "Beheer", "--offline-keyring", &offline_arg])
        .env("EENPLAN_OFFLINE_PASSPHRASE", OFFLINE_PASSPHRASE)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let network = Network::with(server, admin);
    let (server, admin) = (&network.server, &network.admin);

    // Epoch 1 of zorg was made by a device since revoked; only escrow still holds it, and
    // the laptop lacks it.
    let key = [5u8; 32];
    let escrow_public = api::unhex(&network.init.escrow_public).unwrap();
    let minter = SigningKey::from_bytes(&[9; 32]);
    let commitment = eenplan_protocol::epoch::Commitment::new(
        zorg(),
        1,
        &key,
        eenplan_protocol::epoch::Minter::Device(Fixed([9; 16])),
        now_ms(),
    )
    .sign(&minter);
    let sealed = envelope::seal(&escrow_public, api::ESCROW_RECIPIENT, zorg(), 1, &key).unwrap();
    let sealed = envelope::sign(sealed, [9; 16], &minter, zorg(), 1, api::ESCROW_RECIPIENT);
    let tasks = |laptop: &RealDevice| {
        let mut tasks: RekeyTasks =
            eenplan_protocol::sync::decode(&network.task(zorg(), 1, laptop, &laptop.certificate), 1 << 20)
                .unwrap();
        tasks.tasks[0].recipients[0].missing_epochs = vec![1];
        tasks.tasks[0]
            .escrow
            .push(eenplan_protocol::rekey::EpochBlob { epoch: 1, data: Blob(sealed.clone()) });
        tasks.tasks[0]
            .commitments
            .push(eenplan_protocol::rekey::EpochBlob { epoch: 1, data: Blob(commitment.to_bytes()) });
        eenplan_protocol::sync::encode(&tasks)
    };

    // Daily keyring only: the document waits, and the command says what is needed.
    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, tasks(&network.laptop));
    let stderr = admin.fails(&["rekey"], 1);
    assert!(
        stderr.contains("only escrow can recover them") && stderr.contains("--offline-keyring"),
        "{stderr}"
    );
    assert!(network.rekey_posts().is_empty());

    // With the offline keyring, epoch 1 is recovered from escrow and sealed to the laptop.
    server.no_revocations();
    network.answer_policy();
    server.answer_bytes(200, tasks(&network.laptop));
    server.answer_bytes(200, outcome(&[zorg()], RekeyStatus::Done));
    server.answer_bytes(200, no_tasks());
    let out = admin
        .command(&["rekey", "--offline-keyring", &offline_arg])
        .env("EENPLAN_OFFLINE_PASSPHRASE", OFFLINE_PASSPHRASE)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result = &network.rekey_batches()[0].results[0];
    let old = result.envelopes.iter().find(|e| e.recipient.0 == network.laptop.id && e.epoch == 1).unwrap();
    let (sealed, _, _) = envelope::split_signed(&old.envelope.0).unwrap();
    let opened =
        envelope::open(sealed, &network.laptop.agreement_secret, network.laptop.id, zorg(), 1).unwrap();
    assert_eq!(*opened, key);
}

#[test]
fn a_weak_passphrase_is_refused_at_init_and_nothing_is_written_or_sent() {
    let server = Fake::start();
    for weak in ["geheim", "Welkom2025!", "beheer-beheer"] {
        let admin = Admin { passphrase: weak.into(), ..Admin::new() };
        let stderr = admin.fails(&["init", "--server", &server.url, "--name", "Beheer"], 2);
        assert!(stderr.contains("keyring passphrase is too weak"), "{weak}: {stderr}");
        assert!(!admin.keyring().exists());
    }
    assert!(server.requests().is_empty());
}

#[test]
fn the_test_only_cheap_kdf_is_refused_for_a_server_on_another_machine() {
    let admin = Admin::new();
    let stderr = admin.fails(&["init", "--server", "https://eenplan.example", "--name", "Beheer"], 2);
    assert!(stderr.contains("for test networks on this machine only"), "{stderr}");
    assert!(!admin.keyring().exists());
}

#[test]
fn a_keyring_wrapped_with_the_old_cheap_cost_is_wrapped_again_at_256_mib_on_unlock() {
    let server = Fake::start();
    let admin = Admin::new();
    admin.init(&server);
    // Argon2id parameters in the keyring's header: magic (8), length (4), "EPW1", m, t, p.
    let cost = |admin: &Admin| {
        let bytes = std::fs::read(admin.keyring()).unwrap();
        assert_eq!(&bytes[12..16], b"EPW1");
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (word(16), word(20))
    };
    assert_eq!(cost(&admin), (8, 1), "a test keyring, made with the cheapest cost");
    let real = |args: &[&str]| {
        let mut command = admin.command(args);
        command.env_remove("EENPLAN_INSECURE_FAST_KDF");
        command.output().unwrap()
    };
    server.answer(200, "[]");
    let out = real(&["org", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("now wrapped with the current Argon2id cost"));
    assert_eq!(cost(&admin), (256 * 1024, 3));
    // It opens again with the same passphrase, and is not wrapped again.
    server.answer(200, "[]");
    let out = real(&["org", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("now wrapped"));
}

#[test]
fn an_audit_key_is_signed_by_the_root_from_the_offline_keyring_and_only_its_public_half_is_sent() {
    let server = Fake::start();
    let admin = Admin::new();
    let offline = admin.dir.path().join("stick").join("offline.eenplan");
    let offline_arg = offline.to_str().unwrap();
    server.answer(200, "{}");
    let init = |args: &[&str]| {
        admin.command(args).env("EENPLAN_OFFLINE_PASSPHRASE", OFFLINE_PASSPHRASE).output().unwrap()
    };
    let out = init(&["init", "--server", &server.url, "--name", "Beheer", "--offline-keyring", offline_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root: [u8; 32] =
        api::unhex(&server.last().json::<InitRequest>().root_public).unwrap().try_into().unwrap();
    let orgs = r#"[{"id":1,"name":"Wijkteam Noord","lease_hours":72}]"#;

    // Without the offline keyring: refused before anything is made or sent.
    server.answer(200, orgs);
    server.answer(200, r#"{"keys":[]}"#);
    let stderr = admin.fails(&["audit", "key", "create", "--org", "Wijkteam Noord"], 2);
    assert!(stderr.contains("--offline-keyring"), "{stderr}");
    assert!(server.requests().iter().all(|r| r.path != api::PATH_ADMIN_AUDIT_KEYS || r.method != "POST"));

    server.answer(200, orgs);
    server.answer(200, r#"{"keys":[]}"#);
    server.answer(201, "");
    let out = init(&["audit", "key", "create", "--org", "Wijkteam Noord", "--offline-keyring", offline_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let posted = server.last();
    assert_eq!((posted.method.as_str(), posted.path.as_str()), ("POST", api::PATH_ADMIN_AUDIT_KEYS));
    posted.verify_admin_signature();
    let upload: api::AuditKeyUpload = posted.json();
    let key = eenplan_protocol::audit::SignedAuditKey::from_bytes(&api::unhex(&upload.key).unwrap())
        .unwrap()
        .verify(&root)
        .unwrap();
    assert_eq!((key.organisation.as_str(), key.version), ("Wijkteam Noord", 1));
    assert_eq!(key.public.len(), envelope::XWING_PUBLIC_LEN, "the public half only");
}

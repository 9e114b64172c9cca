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
use eenplan_protocol::api::{self, CertificateUpload, EnrolmentCode, InitRequest, NewEnrolment};
use eenplan_protocol::certificate::{Certificate, device_id_of};
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
        let message = api::admin_request_message(&self.method, &self.path, time, &self.body);
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

/// A stand-in for the server: one request per connection, answered from a script.
struct Fake {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answers: Arc<Mutex<VecDeque<(u16, String)>>> = Arc::new(Mutex::new(VecDeque::new()));
        let (seen, script) = (requests.clone(), answers.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else { continue };
                seen.lock().unwrap().push(request);
                let (status, body) = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((500, r#"{"code":"unscripted","message":"no answer scripted"}"#.into()));
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Fake { url, requests, answers }
    }

    fn answer(&self, status: u16, body: &str) {
        self.answers.lock().unwrap().push_back((status, body.to_string()));
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
    Some(Request { method, path, headers, body })
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
    for word in ["init", "org", "user", "device", "plan", "EENPLAN_ADMIN_PASSPHRASE", "EENPLAN_ADMIN_DATA"] {
        assert!(out.contains(word), "{word} missing from:\n{out}");
    }
    let out = Admin::new().ok(&["device", "approve", "--help"]);
    assert!(out.contains("--code") && out.contains("--all-pending"), "{out}");
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
    assert!(admin.fails(&["plan", "assign", plan, "--user", "Jan", "--role", "ggz"], 2).contains("7, 8"));
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
        "agreement_public": api::hex(&[seed; 32]),
        "key_mac": api::hex(&api::key_mac(mac_key, &public, &[seed; 32])),
        "created_at_ms": now_ms(),
    })
}

/// Issues a code for user 7 (Fatima) through the CLI.
fn enrol_fatima(admin: &Admin, server: &Fake) -> EnrolmentCode {
    server.answer(200, r#"[{"id":7,"org":"Wijkteam Noord","name":"Fatima","role":"wijkteam"}]"#);
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

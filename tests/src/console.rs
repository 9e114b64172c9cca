//! The administrator's console in the tests: the real `eenplan-admin console` process, raw
//! HTTP requests to it (for the refusals a browser would never send), and headless chromium
//! driven through chromedriver's WebDriver HTTP API (plain JSON over ureq).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::network::{ADMIN_PASSPHRASE, Admin, binary};

/// A running `eenplan-admin console`; stopped when dropped.
#[derive(Debug)]
pub struct Console {
    child: Child,
    pub port: u16,
    /// The one-time login link it printed.
    pub login: String,
}

impl Console {
    /// Starts the console on a free port of 127.0.0.1 and reads its login link.
    pub fn start(admin: &Admin) -> Console {
        let mut child = Command::new(binary("eenplan-admin"))
            .arg("--data")
            .arg(&admin.data)
            .args(["console", "--port", "0"])
            .env("EENPLAN_ADMIN_PASSPHRASE", ADMIN_PASSPHRASE)
            .env("EENPLAN_INSECURE_FAST_KDF", "1")
            .env("EENPLAN_SERVER", &admin.server)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the console: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap_or_else(|e| panic!("console stdout: {e}"));
        let login = line.trim().to_owned();
        let port = login
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the console printed {login:?}, not a login link"));
        Console { child, port, login }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the process (it holds the keyring's lock until then).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP answer read off a raw socket.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request exactly as given (Host, Origin and Cookie included) and reads
/// the whole answer.
pub fn raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}"));
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("write: {e}"));
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap_or_else(|e| panic!("read: {e}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

/// Installs chromium and chromedriver when missing (`scripts/install-test-deps.sh console`).
pub fn browser_tools() -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-test-deps.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("console")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(status.success(), "install-test-deps.sh console failed");
    (PathBuf::from("/usr/bin/chromium"), PathBuf::from("/usr/bin/chromedriver"))
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Headless chromium behind chromedriver, one WebDriver session.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium with a fresh profile in
    /// `profile`.
    pub fn start(profile: &Path) -> Browser {
        let (chromium, chromedriver) = browser_tools();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
            listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}")).port()
        };
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        // chromedriver says when it listens.
        let stdout = driver.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).unwrap_or_else(|e| panic!("chromedriver: {e}"));
            assert!(n > 0, "chromedriver ended before it listened");
            if line.contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let base = format!("http://127.0.0.1:{port}");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ];
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args }
        }}});
        let mut browser = Browser { driver, base, session: String::new(), agent };
        let answer = browser.call("POST", "/session", Some(capabilities));
        browser.session =
            answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body) {
            Ok(value) => value,
            Err(text) => panic!("webdriver {method} {path}: {text}"),
        }
    }

    /// The answer's `value`, or the whole answer as text when it is an error.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let result = match body {
            Some(body) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.to_string().as_bytes()),
            None if method == "DELETE" => self.agent.delete(&url).call(),
            None => self.agent.get(&url).call(),
        };
        let mut response = result.map_err(|e| e.to_string())?;
        let text = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if response.status().is_success() { Ok(value["value"].clone()) } else { Err(text) }
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.path("/url"), Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", &self.path("/url"), None).as_str().unwrap_or_default().to_owned()
    }

    fn element(&self, css: &str) -> String {
        let found =
            self.call("POST", &self.path("/element"), Some(json!({ "using": "css selector", "value": css })));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_owned()
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        // Asked while a page loads, chromium may answer that the document went away: none yet.
        self.try_call("POST", &self.path("/elements"), Some(json!({ "using": "css selector", "value": css })))
            .ok()
            .and_then(|found| found.as_array().map(Vec::len))
            .unwrap_or(0)
    }

    pub fn click(&self, css: &str) {
        self.wait_for(css);
        let id = self.element(css);
        self.call("POST", &self.path(&format!("/element/{id}/click")), Some(json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &self.path(&format!("/element/{id}/clear")), Some(json!({})));
        self.call("POST", &self.path(&format!("/element/{id}/value")), Some(json!({ "text": text })));
    }

    /// The page's HTML as the browser holds it now.
    pub fn source(&self) -> String {
        self.call("GET", &self.path("/source"), None).as_str().unwrap_or_default().to_owned()
    }

    /// Asks for `css` until the page has it (a click on a submit button returns before the
    /// next page has loaded), at most ten seconds.
    pub fn wait_for(&self, css: &str) {
        let started = Instant::now();
        while self.count(css) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no {css} on {}:\n{}",
                self.url(),
                self.source()
            );
        }
    }

    pub fn text(&self, css: &str) -> String {
        self.wait_for(css);
        let id = self.element(css);
        self.call("GET", &self.path(&format!("/element/{id}/text")), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.element(css);
        self.call("GET", &self.path(&format!("/element/{id}/attribute/{name}")), None)
            .as_str()
            .map(str::to_owned)
    }

    /// Asks the page for `css`'s text until `done` holds for it, at most `limit` long.
    pub fn poll_text(&self, css: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css);
            if done(&text) {
                return text;
            }
            assert!(started.elapsed() < limit, "{css} still says {text:?} after {limit:?}");
        }
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let data = self.call("GET", &self.path("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

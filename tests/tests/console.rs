#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The administrator's console (`eenplan-admin console`): its refusals, and its flows in a real
//! headless chromium — enrol a phone (which then really enrols), approve it, revoke it with a
//! reason while watching the rotation, a plan's participants, the audit log — with the
//! server's state checked afterwards.
//!
//! Screenshots go to the test's temporary directory, or to `EENPLAN_CONSOLE_SCREENSHOTS`
//! (`docs/` for the committed ones: `EENPLAN_CONSOLE_SCREENSHOTS=$PWD/docs cargo test -p
//! eenplan-tests --test console`).

use std::path::PathBuf;
use std::time::Duration;

use eenplan_core::Device;
use eenplan_tests::console::{Browser, Console, raw};
use eenplan_tests::network::{Admin, Network, device_keystore};

const USERS: &[(&str, &str, &str)] =
    &[("Fatima", "Wijkteam Noord", "wijkteam"), ("Wim", "Wijkteam Noord", "wijkteam")];

fn host(console: &Console) -> String {
    format!("127.0.0.1:{}", console.port)
}

fn csrf_in(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn the_console_refuses_a_wrong_host_no_cookie_a_reused_login_link_and_a_post_without_csrf_or_origin() {
    let net = Network::start(USERS);
    let console = Console::start(&net.admin);
    let port = console.port;
    let host = host(&console);
    let origin = format!("http://{host}");
    let login_path = console.login.trim_start_matches(&console.base()).to_owned();

    // A rebound DNS name reaches 127.0.0.1 with its own Host: refused, even with the token.
    let rebound = raw(port, "GET", &login_path, &[("Host", &format!("evil.example:{port}"))], "");
    assert_eq!(rebound.status, 421);
    // No cookie: nothing but the refusal.
    let anonymous = raw(port, "GET", "/", &[("Host", &host)], "");
    assert_eq!(anonymous.status, 401);
    assert!(!anonymous.body.contains("Fatima"));
    assert!(anonymous.header("content-security-policy").is_some_and(|csp| csp.contains("script-src 'self'")));

    // The first visit exchanges the token for the session cookie.
    let login = raw(port, "GET", &login_path, &[("Host", &host)], "");
    assert_eq!(login.status, 303, "{}", login.body);
    let set_cookie = login.header("set-cookie").unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    // The token is dead now.
    let again = raw(port, "GET", &login_path, &[("Host", &host)], "");
    assert_eq!(again.status, 403);
    assert!(again.header("set-cookie").is_none());

    let page = raw(port, "GET", "/enrol", &[("Host", &host), ("Cookie", &cookie)], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Fatima"));
    let csrf = csrf_in(&page.body);
    // The right cookie through a wrong Host is refused too.
    let wrong_host =
        raw(port, "GET", "/", &[("Host", &format!("localhost.evil:{port}")), ("Cookie", &cookie)], "");
    assert_eq!(wrong_host.status, 421);

    let form = |csrf: &str| format!("csrf={csrf}&user=1&hours=24");
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        raw(port, "POST", "/enrol", &all, body)
    };
    let no_csrf = post(&[("Host", &host), ("Cookie", &cookie), ("Origin", &origin)], "user=1&hours=24");
    assert_eq!(no_csrf.status, 403);
    let wrong_csrf =
        post(&[("Host", &host), ("Cookie", &cookie), ("Origin", &origin)], &form(&"0".repeat(64)));
    assert_eq!(wrong_csrf.status, 403);
    let foreign_origin =
        post(&[("Host", &host), ("Cookie", &cookie), ("Origin", "http://evil.example")], &form(&csrf));
    assert_eq!(foreign_origin.status, 403);
    let no_origin = post(&[("Host", &host), ("Cookie", &cookie)], &form(&csrf));
    assert_eq!(no_origin.status, 403);
    let no_cookie = post(&[("Host", &host), ("Origin", &origin)], &form(&csrf));
    assert_eq!(no_cookie.status, 401);
    for refused in [&no_csrf, &wrong_csrf, &foreign_origin, &no_origin, &no_cookie] {
        assert!(!refused.body.contains("id=\"code\""), "a refused form made a code");
    }
    // The same form, whole, is taken: the refusals above were the checks, not a broken form.
    let taken = post(&[("Host", &host), ("Cookie", &cookie), ("Origin", &origin)], &form(&csrf));
    assert_eq!(taken.status, 200, "{}", taken.body);
    assert!(taken.body.contains("id=\"code\""));
}

fn screenshots() -> Option<PathBuf> {
    std::env::var_os("EENPLAN_CONSOLE_SCREENSHOTS").map(PathBuf::from)
}

#[test]
fn an_administrator_enrols_approves_and_revokes_a_phone_in_the_browser_and_the_server_agrees() {
    let net = Network::start(USERS);
    net.admin.run(&["audit", "key", "create", "--org", "Wijkteam Noord"]);
    let mut wim = net.device("wim", "Wim");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.sync().unwrap();
    wim.add_participant(&plan, "Fatima", "wijkteam").unwrap();
    wim.sync().unwrap();
    let shots = screenshots().unwrap_or_else(|| net.path("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();

    let mut console = Console::start(&net.admin);
    let browser = Browser::start(&net.path("chromium-profile"));
    browser.goto(&console.login);
    assert!(browser.text("#apparaten").contains("Fatima"));

    // Enrol: the page shows the code and its QR code; a real phone enrols with the code.
    browser.goto(&format!("{}/enrol", console.base()));
    browser.click("#user option:first-child");
    browser.click("#make-code");
    let code = browser.text("#code");
    assert_eq!(browser.count(".qr svg"), 1, "the QR code is on the page");
    let link = browser.text("#enrol-link");
    assert!(link.starts_with("eenplan:enrol?server=") && link.ends_with(&code), "{link}");
    browser.screenshot(&shots.join("console-enrol.png"));
    let mut phone = Device::init(&net.path("fatima"), &device_keystore()).unwrap();
    phone.enrol(&net.server.url, &code, "Telefoon van Wim", eenplan_core::sync::Platform::Android).unwrap();
    let phone_id = phone.device_id().to_string();

    // Approve it from the list of people and devices.
    browser.goto(&console.base());
    let row = format!("tr[data-device=\"{phone_id}\"] .state");
    assert_eq!(browser.text(&row), "wacht op goedkeuring");
    browser.click(&format!("#approve-{phone_id}"));
    assert!(browser.text("#melding").contains("goedgekeurd"));
    assert_eq!(browser.text(&row), "actief");
    browser.screenshot(&shots.join("console-overview.png"));
    phone.sync().unwrap();
    wim.sync().unwrap();
    phone.sync().unwrap();
    assert!(!phone.keyed_compartments(&plan).unwrap().is_empty(), "the approved phone got the plan's keys");

    // The plan, as its verified chain says.
    browser.goto(&format!("{}/plan?id={plan}", console.base()));
    let participants = browser.text("#deelnemers");
    assert!(participants.contains("Wim (regisseur)") && participants.contains("Fatima"), "{participants}");
    assert!(participants.contains(&phone_id[..12]), "{participants}");
    browser.screenshot(&shots.join("console-plan.png"));

    // Revoke with a reason, and watch the rotation until the page says it is done.
    browser.goto(&console.base());
    browser.click(&format!("#revoke-{phone_id}"));
    browser.click("#reason-stolen");
    browser.click("#revoke");
    browser.wait_for("#job-state");
    assert!(browser.url().contains("/jobs/"));
    let done = browser.poll_text("#job-state", Duration::from_secs(120), |t| !t.starts_with("Bezig"));
    assert!(done.starts_with("Klaar"), "{done}");
    assert!(!done.contains(" 0 documenten"), "{done}");
    browser.screenshot(&shots.join("console-revoke.png"));
    assert!(phone.sync().is_err(), "the revoked phone is refused");
    wim.sync().unwrap();

    // The audit log of the plan (a read of the log, itself logged).
    browser.goto(&format!("{}/audit?vraag=zoeken&plan={plan}", console.base()));
    assert_eq!(browser.count("#gebeurtenissen"), 1);
    // A person by name, as the CLI takes them.
    browser.goto(&format!("{}/audit?vraag=zoeken&user=wim", console.base()));
    assert_eq!(browser.count("#gebeurtenissen"), 1, "{}", browser.source());
    browser.screenshot(&shots.join("console-audit.png"));
    browser.goto(&format!("{}/audit?vraag=controleren", console.base()));
    assert!(browser.text("#audit-result").contains("gebeurtenissen gecontroleerd"));

    // The server agrees: the phone is shut out, nothing waits for a new key.
    drop(browser);
    console.stop();
    let devices: serde_json::Value =
        serde_json::from_str(&net.admin.run(&["--json", "device", "list"])).unwrap();
    let listed = devices.as_array().unwrap().iter().find(|d| d["device_id"] == phone_id.as_str()).unwrap();
    // Revoked, and since its last sync also wiped: it obeyed the wipe order the revoke left.
    assert_eq!(listed["state"], "wiped");
    assert!(net.admin.run(&["rekey"]).contains("no document waits"));
}

const GEMEENTE: &str = "Gemeente Zaanstad";
const POLITIE: &str = "Politie Zaanstreek";

/// The municipality's own administrator, through the real CLI: request, the root's grant,
/// accept.
fn municipal_admin(net: &Network) -> Admin {
    let gemeente = Admin { data: net.path("gemeente-beheer"), server: net.server.url.clone() };
    let request = gemeente.run(&["admin", "request", "--name", "Beheer Gemeente"]);
    let grant = net.admin.run(&["admin", "add", "--org", GEMEENTE, &request]);
    gemeente.run(&["admin", "accept", &grant]);
    gemeente
}

#[test]
fn an_organisations_administrator_sees_its_own_people_first_and_offboards_one_in_the_browser() {
    let net = Network::start(&[
        ("Wim", GEMEENTE, "wijkteam"),
        ("Fatima", GEMEENTE, "wijkteam"),
        ("Piet", POLITIE, "politie"),
    ]);
    let mut wim = net.device("wim-telefoon", "Wim");
    let mut fatima = net.device("fatima-telefoon", "Fatima");
    net.device("piet-telefoon", "Piet");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.sync().unwrap();
    wim.add_participant(&plan, "Fatima", "wijkteam").unwrap();
    wim.sync().unwrap();
    fatima.sync().unwrap();
    let fatima_user = wim
        .membership(&plan)
        .unwrap()
        .unwrap()
        .participants
        .iter()
        .find(|p| p.name == "Fatima")
        .unwrap()
        .user_id;
    let fatima_device = fatima.device_id().to_string();
    let shots = screenshots().unwrap_or_else(|| net.path("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();

    let gemeente = municipal_admin(&net);
    let mut console = Console::start(&gemeente);
    let browser = Browser::start(&net.path("chromium-profile"));
    browser.goto(&console.login);
    // Its own organisation first, with each device's signed name, platform and last sync.
    assert!(browser.text("#bereik").contains(GEMEENTE));
    let listed = browser.text("#apparaten");
    assert!(listed.contains("Fatima") && !listed.contains("Piet"), "{listed}");
    let row = format!("tr[data-device=\"{fatima_device}\"]");
    assert_eq!(browser.text(&format!("{row} .name")), "fatima-telefoon");
    assert!(browser.text(&row).contains("Android"));
    assert_ne!(browser.text(&format!("{row} .seen")), "nooit", "Fatima's phone synced");
    browser.screenshot(&shots.join("console-overview-org.png"));
    // Every organisation on request, but no action on another organisation's people.
    browser.goto(&format!("{}/?org=alle", console.base()));
    assert!(browser.text("#apparaten").contains("Piet"));
    let piet = net.admin.run(&["--json", "user", "list"]);
    let piet: serde_json::Value = serde_json::from_str(&piet).unwrap();
    let piet_id =
        piet.as_array().unwrap().iter().find(|u| u["name"] == "Piet").unwrap()["id"].as_i64().unwrap();
    assert_eq!(browser.count(&format!("#offboard-{piet_id}")), 0, "no offboarding outside the scope");
    assert_eq!(browser.count(&format!("#offboard-{fatima_user}")), 1);

    // Offboard Fatima: the page lists her phone first, then shows the run until it is done.
    browser.goto(&console.base());
    browser.click(&format!("#offboard-{fatima_user}"));
    assert!(browser.text("#persoon").contains("Fatima"));
    assert!(browser.text("#apparaten-van").contains("fatima-telefoon"));
    browser.type_into("#reason", "contract afgelopen");
    browser.click("#offboard");
    browser.wait_for("#job-state");
    let done = browser.poll_text("#job-state", Duration::from_secs(120), |t| !t.starts_with("Bezig"));
    assert!(done.starts_with("Klaar: Fatima is uit dienst gemeld"), "{done}");
    assert!(
        done.contains("1 apparaat/apparaten ingetrokken") && done.contains("van 1 plan(nen) afgemeld"),
        "{done}"
    );
    // A municipality's administrator makes no keys: the page says who must.
    assert!(browser.text("#job-warnings").contains("netwerkbeheerder"));
    browser.screenshot(&shots.join("console-offboard.png"));
    drop(browser);
    console.stop();
    assert!(net.admin.run(&["rekey"]).contains("rotated"), "the network-wide administrator makes them");

    // Her phone is shut out, and the plan's chain as Wim's device verifies it drops her.
    assert!(fatima.sync().is_err(), "the offboarded phone is refused");
    wim.sync().unwrap();
    let membership = wim.membership(&plan).unwrap().unwrap();
    assert!(membership.participants.iter().all(|p| p.user_id != fatima_user), "{membership:?}");
    let devices: serde_json::Value =
        serde_json::from_str(&net.admin.run(&["--json", "device", "list"])).unwrap();
    let listed =
        devices.as_array().unwrap().iter().find(|d| d["device_id"] == fatima_device.as_str()).unwrap();
    assert!(listed["state"] == "revoked" || listed["state"] == "wiped", "{listed}");
}

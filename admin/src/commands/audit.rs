//! `audit key create`, `audit verify`, `audit query`, `audit family-report`.
//!
//! Every read of the log is a signed request that the server records as a read of the log
//! (`query=` says what for), before it answers. What the server answers is checked here:
//! device keys come from certificates verified against this keyring's root (never from the
//! server's listing), uploads open only with this keyring's audit secrets, the server's own
//! chain is checked against the key pinned at first use, and each chain's newest verified
//! position is pinned so that a server that later serves less is caught.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use eenplan_protocol::api::{
    self, AuditKeyList, AuditKeyUpload, AuditQuery, AuditUploadPage, DeviceInfo, OrgInfo, ServerAuditKey,
    ServerEventPage, hex, unhex,
};
use eenplan_protocol::audit::{
    AuditKey, ChainHead, SignedAuditKey, SignedEvent, verify_chain, verify_uploads,
};
use eenplan_protocol::certificate::Certificate;
use serde_json::json;

use super::Session;
use crate::args::{AuditCommand, AuditKeyCommand, AuditQueryArgs, DateRange, FamilyReportArgs};
use crate::audit::{self, Person, Row, Sourced, Verdict};
use crate::client::now_ms;
use crate::error::AdminError;
use crate::keyring::{AuditSecret, ChainPin};
use crate::output::Output;

pub fn run(session: &mut Session, command: AuditCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        AuditCommand::Key(AuditKeyCommand::Create(args)) => create_key(session, &args.org, json),
        AuditCommand::Verify => verify(session, json),
        AuditCommand::Query(args) => query(session, &args, json),
        AuditCommand::FamilyReport(args) => family_report(session, &args, json),
    }
}

/// A new X-Wing key pair for `org`: the secret into this keyring (saved before the public
/// half leaves it, so no device ever seals to a key nobody holds), the public half signed by
/// the root at the next version and posted.
fn create_key(session: &mut Session, org: &str, json: bool) -> Result<Output, AdminError> {
    let orgs: Vec<OrgInfo> = session.client().get(api::PATH_ADMIN_ORGS)?;
    if !orgs.iter().any(|o| o.name == org) {
        return Err(AdminError::usage(format!("no organisation {org:?} (see `eenplan-admin org list`)")));
    }
    let version = next_version(session, org)?;
    let root = session.root("signing an audit key")?.clone();
    let (secret, public) = eenplan_protocol::envelope::generate_keypair();
    let key =
        AuditKey { organisation: org.to_owned(), public: public.clone(), version, issued_at_ms: now_ms()? };
    let signed = key.sign(&root);
    session.keyring.audit_keys.push(AuditSecret {
        org: org.to_owned(),
        version,
        secret: secret.to_vec(),
        public,
    });
    session.save()?;
    session.client().post(api::PATH_ADMIN_AUDIT_KEYS, &AuditKeyUpload { key: hex(&signed.to_bytes()) })?;
    Output::either(
        json,
        || json!({ "org": org, "version": version }),
        || format!("audit key version {version} of {org} is in force; its secret is in this keyring\n"),
    )
}

/// One above the newest version this keyring made or the server holds (verified).
fn next_version(session: &Session, org: &str) -> Result<u32, AdminError> {
    let path = format!("{}?org={}", api::PATH_ADMIN_AUDIT_KEYS, encode(org));
    let list: AuditKeyList = session.client().get(&path)?;
    let root = session.keyring.root_public();
    let mut newest =
        session.keyring.audit_keys.iter().filter(|k| k.org == org).map(|k| k.version).max().unwrap_or(0);
    for key in &list.keys {
        let verified = unhex(key)
            .and_then(|bytes| SignedAuditKey::from_bytes(&bytes).ok())
            .and_then(|signed| signed.verify(&root).ok());
        if let Some(key) = verified.filter(|k| k.organisation == org) {
            newest = newest.max(key.version);
        }
    }
    Ok(newest + 1)
}

/// Percent-encodes a query value (an organisation's name).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A device as its root-verified certificate names it.
struct Known {
    person: Person,
    key: VerifyingKey,
    approved_at_ms: i64,
    /// Revoked by this keyring's own record (then silence is expected).
    revoked: bool,
}

/// Every device whose certificate verifies against this keyring's root.
fn known_devices(session: &Session) -> Result<HashMap<[u8; 16], Known>, AdminError> {
    let devices: Vec<DeviceInfo> = session.client().get(api::PATH_ADMIN_DEVICES)?;
    let root = session.keyring.root_public();
    let mut known = HashMap::new();
    for info in devices {
        let verified = (|| {
            let certificate = Certificate::from_bytes(&unhex(&info.certificate)?).ok()?;
            let admin = Certificate::from_bytes(&unhex(&info.admin_certificate)?).ok()?;
            // Valid at its own start: events of a device whose certificate ran out stay evidence.
            let from = certificate.claimed_device_body().ok()?.valid_from_ms;
            certificate.verify_device(&admin, &root, from).ok()
        })();
        let Some(body) = verified else { continue };
        let Ok(key) = VerifyingKey::from_bytes(&body.signing_public) else { continue };
        // Only this keyring's own record of revocations excuses silence: the server's word
        // that a device is revoked would let it hide a device's missing events.
        let revoked = session.keyring.trust.revoked(&body.device_id).is_some();
        let person =
            Person { user_id: body.user_id, name: body.user_name, org: body.organisation, role: body.role };
        known.insert(body.device_id, Known { person, key, approved_at_ms: body.valid_from_ms, revoked });
    }
    Ok(known)
}

/// Everything the log holds for one read, judged.
struct Judged {
    verdicts: Vec<Verdict>,
    problems: Vec<eenplan_protocol::audit::UploadProblem>,
    events: Vec<Sourced>,
}

/// What judging the organisations' chains needs beside their uploads.
struct Context {
    known: HashMap<[u8; 16], Known>,
    writers: HashMap<[u8; 16], VerifyingKey>,
    leases: HashMap<String, u32>,
    threads: usize,
    now: i64,
}

/// This keyring's audit secrets: organisation → version → X-Wing secret.
fn audit_secrets(session: &Session) -> Result<HashMap<String, HashMap<u32, [u8; 32]>>, AdminError> {
    let mut secrets: HashMap<String, HashMap<u32, [u8; 32]>> = HashMap::new();
    for key in &session.keyring.audit_keys {
        if let Some(secret) = key.secret32() {
            secrets.entry(key.org.clone()).or_default().insert(key.version, secret);
        }
    }
    if secrets.is_empty() {
        return Err(AdminError::usage(
            "this keyring holds no audit key: run `eenplan-admin audit key create --org ORG`",
        ));
    }
    Ok(secrets)
}

/// Fetches and judges the uploads of every organisation whose audit key this keyring holds
/// and the server's chain, for `query`; updates the pins.
fn gather(session: &mut Session, query: AuditQuery) -> Result<Judged, AdminError> {
    let secrets = audit_secrets(session)?;
    let known = known_devices(session)?;
    let orgs: Vec<OrgInfo> = session.client().get(api::PATH_ADMIN_ORGS)?;
    let context = Context {
        writers: known.iter().map(|(d, k)| (*d, k.key)).collect(),
        known,
        leases: orgs.into_iter().map(|o| (o.name, o.lease_hours)).collect(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        now: now_ms()?,
    };
    let mut judged = Judged { verdicts: Vec::new(), problems: Vec::new(), events: Vec::new() };
    let mut names: Vec<&String> = secrets.keys().collect();
    names.sort();
    for org in names {
        judge_org(session, &context, org, &secrets[org], query, &mut judged)?;
    }
    missing_pinned_writers(session, &mut judged);
    let (server, events) = server_chain(session, query)?;
    judged.verdicts.push(server);
    judged.events.extend(events);
    session.save()?;
    Ok(judged)
}

/// One organisation's uploads, opened and judged per device; with `verify`, also its devices
/// that stored nothing at all.
fn judge_org(
    session: &mut Session,
    context: &Context,
    org: &str,
    secrets: &HashMap<u32, [u8; 32]>,
    query: AuditQuery,
    judged: &mut Judged,
) -> Result<(), AdminError> {
    let uploads = fetch_uploads(session, org, query)?;
    let report = verify_uploads(&uploads, &context.writers, secrets, context.threads);
    judged.problems.extend(report.problems);
    let lease = context.leases.get(org);
    let mut seen = Vec::new();
    for (device, chain, head) in report.chains {
        seen.push(device);
        let known = context.known.get(&device);
        let person = known.map(|k| k.person.clone());
        let newest = chain.events.iter().map(|e| e.at_ms).max();
        let mut verdict = verdict(hex(&device), person.clone(), chain.events.len(), chain.findings);
        verdict.truncated_below = check_pin(session, device, head);
        verdict.silent_since_ms = known.and_then(|k| silent(k, newest, lease, context.now));
        judged.verdicts.push(verdict);
        let device = Some(device);
        judged.events.extend(chain.events.into_iter().map(|event| Sourced {
            event,
            device,
            person: person.clone(),
        }));
    }
    // Every read, not only `verify`: a server that withholds a device's uploads from a read
    // of one plan is caught by the device's pin here too.
    for (device, known) in context.known.iter().filter(|(d, k)| k.person.org == org && !seen.contains(d)) {
        let mut verdict = verdict(hex(device), Some(known.person.clone()), 0, Vec::new());
        verdict.truncated_below = check_pin(session, *device, None);
        verdict.silent_since_ms = silent(known, None, lease, context.now);
        judged.verdicts.push(verdict);
    }
    Ok(())
}

/// A device this keyring verified events of before, of which this read got nothing at all
/// (the server left it out of both its device list and its uploads): its chain is truncated.
fn missing_pinned_writers(session: &Session, judged: &mut Judged) {
    for pin in &session.keyring.audit_pins {
        let writer = hex(&pin.writer);
        if pin.writer == [0; 16] || judged.verdicts.iter().any(|v| v.writer == writer) {
            continue;
        }
        let mut verdict = verdict(writer, None, 0, Vec::new());
        verdict.truncated_below = Some(pin.seq);
        judged.verdicts.push(verdict);
    }
}

/// How many verdicts and uploads say the log read is not whole (silence aside): a query or a
/// family report read from it may be incomplete, and says so.
fn doubts(judged: &Judged) -> usize {
    let doubtful =
        |v: &&Verdict| !v.findings.is_empty() || v.truncated_below.is_some() || !v.rewritten.is_empty();
    judged.verdicts.iter().filter(doubtful).count() + judged.problems.len()
}

/// What a query or family report adds when [`doubts`] found something.
fn doubt_text(doubts: usize) -> String {
    format!(
        "Let op: het logboek is {doubts} keer niet in orde; dit overzicht kan onvolledig zijn. \
         `eenplan-admin audit verify` laat zien wat er mis is."
    )
}

fn verdict(
    writer: String,
    person: Option<Person>,
    events: usize,
    findings: Vec<eenplan_protocol::audit::Finding>,
) -> Verdict {
    Verdict {
        writer,
        person,
        events,
        findings,
        truncated_below: None,
        rewritten: Vec::new(),
        silent_since_ms: None,
    }
}

/// Since when an approved, unrevoked device has been silent, if longer than its lease.
fn silent(known: &Known, newest: Option<i64>, lease_hours: Option<&u32>, now: i64) -> Option<i64> {
    let lease_ms = i64::from(*lease_hours?) * 3_600_000;
    // Events stamped in the future (a server that set a device's clock ahead) never make a
    // device look recently active.
    let since = newest.unwrap_or(known.approved_at_ms).min(now);
    (!known.revoked && now.saturating_sub(since) > lease_ms).then_some(since)
}

/// The pinned position of `writer`'s chain when the chain now ends below it; moves the pin
/// up to `head` otherwise.
fn check_pin(session: &mut Session, writer: [u8; 16], head: Option<ChainHead>) -> Option<u64> {
    let pins = &mut session.keyring.audit_pins;
    let newest = head.map_or(0, |h| h.seq);
    match (pins.iter_mut().find(|p| p.writer == writer), head) {
        (Some(pin), _) if pin.seq > newest => Some(pin.seq),
        (Some(pin), Some(head)) => {
            *pin = ChainPin { writer, seq: head.seq, hash: head.hash.0 };
            None
        }
        (None, Some(head)) => {
            pins.push(ChainPin { writer, seq: head.seq, hash: head.hash.0 });
            None
        }
        _ => None,
    }
}

fn fetch_uploads(session: &Session, org: &str, query: AuditQuery) -> Result<Vec<Vec<u8>>, AdminError> {
    let mut uploads = Vec::new();
    let mut after = 0;
    loop {
        let path = format!(
            "{}?org={}&after={after}&query={}",
            api::PATH_ADMIN_AUDIT_UPLOADS,
            encode(org),
            query.to_text()
        );
        let page: AuditUploadPage = session.client().get(&path)?;
        for upload in &page.uploads {
            uploads.push(
                unhex(&upload.upload)
                    .ok_or_else(|| AdminError::BadResponse("an upload is not hex".into()))?,
            );
        }
        match page.uploads.last() {
            Some(last) if page.more && last.id > after => after = last.id,
            _ => return Ok(uploads),
        }
    }
}

/// The server's chain, judged against its pinned key (pinned now if this is the first time).
fn server_chain(session: &mut Session, query: AuditQuery) -> Result<(Verdict, Vec<Sourced>), AdminError> {
    let served: ServerAuditKey = session.client().get(api::PATH_ADMIN_AUDIT_SERVER_KEY)?;
    let served: [u8; 32] = unhex(&served.public)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| AdminError::BadResponse("the server's audit key is not 32 bytes of hex".into()))?;
    let pinned = *session.keyring.server_audit_key.get_or_insert(served);
    let mut received = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("{}?after={after}&query={}", api::PATH_ADMIN_AUDIT_SERVER_EVENTS, query.to_text());
        let page: ServerEventPage = session.client().get(&path)?;
        for info in &page.events {
            let event = unhex(&info.event)
                .and_then(|b| SignedEvent::from_bytes(&b).ok())
                .ok_or_else(|| AdminError::BadResponse("a server event does not decode".into()))?;
            received.push((info.seq, event));
        }
        match page.events.last() {
            Some(last) if page.more && last.seq > after => after = last.seq,
            _ => break,
        }
    }
    let mut rewritten = Vec::new();
    if served != pinned {
        rewritten.push("de server tekent met een andere sleutel dan eerder".to_string());
    }
    let pin = session.keyring.audit_pins.iter().find(|p| p.writer == [0; 16]).copied();
    if let Some(pin) = pin
        && received.iter().any(|(seq, e)| *seq == pin.seq && e.hash() != pin.hash)
    {
        rewritten.push(format!("herschreven: gebeurtenis {} is een andere dan eerder", pin.seq));
    }
    let head = received.iter().max_by_key(|(seq, _)| *seq).map(|(seq, e)| ChainHead::after(e, *seq));
    let key = VerifyingKey::from_bytes(&pinned)
        .map_err(|_| AdminError::BadResponse("the pinned server audit key is not an Ed25519 key".into()))?;
    let report = verify_chain(&key, received);
    let mut verdict = verdict("server".into(), None, report.events.len(), report.findings);
    verdict.rewritten = rewritten;
    verdict.truncated_below =
        if verdict.rewritten.is_empty() { check_pin(session, [0; 16], head) } else { None };
    let events =
        report.events.into_iter().map(|event| Sourced { event, device: None, person: None }).collect();
    Ok((verdict, events))
}

/// What `audit verify` found: every chain's verdict, the uploads refused, the events checked.
pub(crate) struct Verified {
    pub verdicts: Vec<Verdict>,
    pub problems: Vec<eenplan_protocol::audit::UploadProblem>,
    pub events: usize,
}

impl Verified {
    /// How many chains and uploads are not in order.
    pub fn wrong(&self) -> usize {
        self.verdicts.iter().filter(|v| !v.is_ok()).count() + self.problems.len()
    }

    /// The Dutch lines `audit verify` prints.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.verdicts.iter().map(Verdict::line).collect();
        lines.extend(self.problems.iter().map(audit::problem_text));
        let wrong = self.wrong();
        let summary = if wrong == 0 { "in orde".to_string() } else { format!("{wrong} keer niet in orde") };
        lines.push(format!("{} gebeurtenissen gecontroleerd: {summary}", self.events));
        lines
    }
}

/// Verifies every chain (`audit verify`, and the console's audit page).
pub(crate) fn verify_all(session: &mut Session) -> Result<Verified, AdminError> {
    let judged = gather(session, AuditQuery::Verify)?;
    let events = judged.verdicts.iter().map(|v| v.events).sum();
    Ok(Verified { verdicts: judged.verdicts, problems: judged.problems, events })
}

fn verify(session: &mut Session, json: bool) -> Result<Output, AdminError> {
    let verified = verify_all(session)?;
    let wrong = verified.wrong();
    let done = Output::either(
        json,
        || {
            json!({
                "ok": wrong == 0,
                "events": verified.events,
                "chains": verified.verdicts,
                "uploads_refused": verified.problems,
            })
        },
        || verified.lines().iter().map(|line| format!("{line}\n")).collect::<String>(),
    )?;
    if wrong == 0 {
        Ok(done)
    } else {
        Err(AdminError::Partial { done, error: Box::new(AdminError::AuditNotInOrder(wrong)) })
    }
}

fn dates(range: &DateRange) -> Result<(Option<String>, Option<String>), AdminError> {
    let check = |text: &Option<String>| -> Result<Option<String>, AdminError> {
        match text {
            None => Ok(None),
            Some(t) if eenplan_core::calendar::parse_date(t).is_some() => Ok(Some(t.trim().to_owned())),
            Some(t) => Err(AdminError::usage(format!("{t:?} is not a date (YYYY-MM-DD)"))),
        }
    };
    Ok((check(&range.from)?, check(&range.to)?))
}

/// The rows of one query from verified chains, oldest first, and how often the log read was
/// not in order (then the rows may be incomplete): `audit query` and the console's audit page.
pub(crate) fn query_rows(
    session: &mut Session,
    query: AuditQuery,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Vec<Row>, usize), AdminError> {
    let judged = gather(session, query)?;
    let mut matching: Vec<&Sourced> = judged
        .events
        .iter()
        .filter(|s| matches(s, query) && audit::in_range(s.event.at_ms, from, to))
        .collect();
    matching.sort_by_key(|s| s.event.at_ms);
    Ok((matching.into_iter().map(Row::of).collect(), doubts(&judged)))
}

/// The family's report of one plan, and whether the log read was whole.
pub(crate) fn family_report_of(
    session: &mut Session,
    plan: [u8; 16],
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(String, bool), AdminError> {
    let judged = gather(session, AuditQuery::Plan(plan))?;
    let doubts = doubts(&judged);
    let mut events: Vec<Sourced> = judged
        .events
        .into_iter()
        .filter(|s| matches(s, AuditQuery::Plan(plan)) && audit::in_range(s.event.at_ms, from, to))
        .collect();
    events.sort_by_key(|s| s.event.at_ms);
    let mut text = audit::family_report(&events);
    if doubts > 0 {
        text.push_str(&format!("\n{}\n", doubt_text(doubts)));
    }
    Ok((text, doubts == 0))
}

/// A date typed for an audit read (YYYY-MM-DD), checked.
pub(crate) fn date(text: Option<&str>) -> Result<Option<String>, AdminError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) if eenplan_core::calendar::parse_date(t).is_some() => Ok(Some(t.to_owned())),
        Some(t) => Err(AdminError::usage(format!("{t:?} is not a date (YYYY-MM-DD)"))),
    }
}

pub(crate) fn id16(text: &str, what: &str) -> Result<[u8; 16], AdminError> {
    unhex(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AdminError::usage(format!("{what} must be 32 hexadecimal characters")))
}

fn query(session: &mut Session, args: &AuditQueryArgs, json: bool) -> Result<Output, AdminError> {
    if args.csv && json {
        return Err(AdminError::usage("give --csv or --json, not both"));
    }
    let query = match (&args.plan, &args.user, &args.device) {
        (Some(plan), _, _) => AuditQuery::Plan(id16(plan, "--plan")?),
        // An id is taken as given (the log outlives listings); a name is looked up.
        (_, Some(user), _) => match user.trim().parse::<i64>() {
            Ok(id) => AuditQuery::User(id),
            Err(_) => AuditQuery::User(session.user(user)?.id),
        },
        (_, _, Some(device)) => match id16(device, "--device") {
            Ok(id) => AuditQuery::Device(id),
            Err(_) => AuditQuery::Device(id16(&session.device(device)?.device_id, "--device")?),
        },
        _ => return Err(AdminError::usage("give --plan, --user or --device")),
    };
    let (from, to) = dates(&args.dates)?;
    let (rows, doubts) = query_rows(session, query, from.as_deref(), to.as_deref())?;
    if doubts > 0 {
        eprintln!("{}", doubt_text(doubts));
    }
    if args.csv {
        return Ok(Output::Text(audit::csv(&rows)));
    }
    Output::either(json, || &rows, || table(&rows))
}

/// Whether an event is about what `query` names: a device's own chain or a server event
/// naming the device; a user's events; a plan's events (the server's reads of its log too).
fn matches(sourced: &Sourced, query: AuditQuery) -> bool {
    let event = &sourced.event;
    match query {
        AuditQuery::Verify => true,
        AuditQuery::Plan(plan) => event.plan.is_some_and(|p| p.0 == plan),
        AuditQuery::User(user) => sourced.person.as_ref().map_or(event.actor.user_id, |p| p.user_id) == user,
        AuditQuery::Device(device) => {
            sourced.device == Some(device)
                || (sourced.device.is_none()
                    && (event.actor.device.0 == device || event.object.as_deref() == Some(&hex(&device))))
        }
    }
}

fn table(rows: &[Row]) -> String {
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.tijdstip.clone(),
                r.gebruiker_naam.clone(),
                r.organisatie.clone(),
                r.actie.clone(),
                r.compartiment.clone(),
                r.resultaat.clone(),
                r.object.clone(),
            ]
        })
        .collect();
    crate::output::table(
        &["TIJDSTIP", "GEBRUIKER", "ORGANISATIE", "ACTIE", "COMPARTIMENT", "RESULTAAT", "OBJECT"],
        &lines,
    )
}

fn family_report(session: &mut Session, args: &FamilyReportArgs, json: bool) -> Result<Output, AdminError> {
    let plan = id16(&args.plan, "the plan")?;
    let (from, to) = dates(&args.dates)?;
    let (text, complete) = family_report_of(session, plan, from.as_deref(), to.as_deref())?;
    Output::either(
        json,
        || json!({ "plan": hex(&plan), "report": text, "complete": complete }),
        || text.clone(),
    )
}

//! The console's pages. Each one calls the functions the CLI commands call, on the blocking
//! pool (the server calls are blocking HTTP), and renders an askama template.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use eenplan_protocol::api::{self, AuditQuery, DeviceInfo, EnrolmentLink, UserInfo};
use eenplan_protocol::certificate::AdminScope;
use eenplan_protocol::wipe::RevocationReason;
use serde::Deserialize;

use super::Shared;
use super::guard::Csrf;
use crate::audit::Row;
use crate::client::now_ms;
use crate::commands::{Session, audit, device, plan};
use crate::error::AdminError;

/// Runs `f` on the keyring session, off the async threads.
async fn with_session<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&mut Session) -> Result<T, AdminError> + Send + 'static,
) -> Result<T, Response> {
    let state = state.clone();
    match tokio::task::spawn_blocking(move || f(&mut state.session())).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error_page(StatusCode::BAD_GATEWAY, &format!("Dat lukte niet: {e}"))),
        Err(_) => Err(error_page(StatusCode::INTERNAL_SERVER_ERROR, "Dat lukte niet: de opdracht brak af.")),
    }
}

pub(crate) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "de pagina kon niet worden opgebouwd").into_response(),
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let mut response = render(&ErrorPage { message });
    *response.status_mut() = status;
    response
}

pub(crate) fn reason_label(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Lost => "kwijt",
        RevocationReason::Stolen => "gestolen",
        RevocationReason::Replaced => "vervangen",
        RevocationReason::Left => "medewerker vertrokken",
    }
}

fn state_label(state: &str) -> String {
    match state {
        "pending" => "wacht op goedkeuring".into(),
        "active" => "actief".into(),
        "revoked" => "ingetrokken".into(),
        "wiped" => "gewist".into(),
        other => other.to_owned(),
    }
}

fn day(ms: i64) -> String {
    eenplan_core::calendar::dutch_long_date(&eenplan_core::calendar::dutch_date_string(ms))
}

// --- people and devices --------------------------------------------------------------------

struct DeviceRow {
    id: String,
    short: String,
    /// The name the device signed (verified against its certificate), or "(geen naam)".
    name: String,
    platform: String,
    enrolled: String,
    last_seen: String,
    state: String,
    pending: bool,
    active: bool,
}

struct PersonRow {
    id: i64,
    name: String,
    org: String,
    role: String,
    /// Whether this administrator's scope covers the person's organisation: the actions
    /// are offered only then (the CLI functions and the server refuse them otherwise).
    in_scope: bool,
    devices: Vec<DeviceRow>,
}

struct OrgChoice {
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    csrf: String,
    notice: Option<String>,
    /// "Je beheert …": whose administrator this keyring is.
    scope: String,
    orgs: Vec<OrgChoice>,
    all_selected: bool,
    people: Vec<PersonRow>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OverviewQuery {
    goedgekeurd: Option<String>,
    /// The organisation to show; `alle` for every one. Absent: the administrator's own
    /// organisation, or every one for a network-wide administrator.
    org: Option<String>,
}

/// The organisation the overview shows by default: an organisation's administrator sees
/// its own people first, a network-wide one sees everyone.
fn default_org(scope: &AdminScope) -> Option<String> {
    match scope {
        AdminScope::Organisation(own) => Some(own.clone()),
        AdminScope::NetworkWide => None,
    }
}

fn in_scope(scope: &AdminScope, org: &str) -> bool {
    match scope {
        AdminScope::Organisation(own) => own == org,
        AdminScope::NetworkWide => true,
    }
}

fn device_row(d: DeviceInfo, now: i64) -> DeviceRow {
    DeviceRow {
        short: d.device_id.chars().take(12).collect(),
        name: if d.label.is_empty() { "(geen naam)".into() } else { d.label },
        platform: d.platform.map_or("?", |p| p.label()).to_owned(),
        enrolled: day(d.enrolled_at_ms.max(d.created_at_ms)),
        last_seen: d.last_seen_ms.map_or_else(|| "nooit".to_owned(), |at| crate::output::ago(at, now)),
        state: state_label(&d.state),
        pending: d.state == "pending",
        active: d.state == "active",
        id: d.device_id,
    }
}

/// The people of `org` (every organisation for `None`) with their devices.
fn people(
    users: Vec<UserInfo>,
    devices: Vec<DeviceInfo>,
    scope: &AdminScope,
    org: Option<&str>,
    now: i64,
) -> Vec<PersonRow> {
    let mut by_user: BTreeMap<i64, Vec<DeviceRow>> = BTreeMap::new();
    for d in devices {
        by_user.entry(d.user_id).or_default().push(device_row(d, now));
    }
    let mut people: Vec<PersonRow> = users
        .into_iter()
        .filter(|u| org.is_none_or(|org| u.org == org))
        .map(|u| PersonRow {
            devices: by_user.remove(&u.id).unwrap_or_default(),
            in_scope: in_scope(scope, &u.org),
            id: u.id,
            name: u.name,
            org: u.org,
            role: u.role,
        })
        .collect();
    people.sort_by(|a, b| (&a.org, &a.name).cmp(&(&b.org, &b.name)));
    people
}

pub(crate) async fn overview(
    State(state): State<Shared>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let listed = with_session(&state, |session| {
        let users: Vec<UserInfo> = session.client().get(api::PATH_ADMIN_USERS)?;
        // Names only where the device's own signature over them verifies.
        let devices = session.devices()?;
        Ok((users, devices, session.scope(), now_ms()?))
    })
    .await;
    let (users, devices, scope, now) = match listed {
        Ok(listed) => listed,
        Err(page) => return page,
    };
    let shown = match query.org.as_deref().map(str::trim) {
        Some("alle") | Some("") => None,
        Some(org) => Some(org.to_owned()),
        None => default_org(&scope),
    };
    let mut org_names: Vec<String> = users.iter().map(|u| u.org.clone()).collect();
    org_names.sort();
    org_names.dedup();
    let orgs = org_names
        .into_iter()
        .map(|name| OrgChoice { selected: shown.as_deref() == Some(name.as_str()), name })
        .collect();
    let notice = query
        .goedgekeurd
        .map(|id| format!("Apparaat {} is goedgekeurd.", id.chars().take(12).collect::<String>()));
    let scope_text = match &scope {
        AdminScope::Organisation(own) => format!("Je beheert de apparaten en mensen van {own}."),
        AdminScope::NetworkWide => "Je beheert het hele netwerk.".to_owned(),
    };
    render(&Overview {
        csrf,
        notice,
        scope: scope_text,
        orgs,
        all_selected: shown.is_none(),
        people: people(users, devices, &scope, shown.as_deref(), now),
    })
}

pub(crate) async fn approve(State(state): State<Shared>, Path(device): Path<String>) -> Response {
    let id = device.clone();
    match with_session(&state, move |session| device::approve_device(session, &id)).await {
        Ok(approved) => Redirect::to(&format!("/?goedgekeurd={}", approved.device_id)).into_response(),
        Err(page) => page,
    }
}

// --- enrolment -------------------------------------------------------------------------------

struct Choice {
    id: i64,
    label: String,
    selected: bool,
}

struct IssuedView {
    code: String,
    user: String,
    expires: String,
    link: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "console/enrol.html")]
struct EnrolPage {
    csrf: String,
    users: Vec<Choice>,
    issued: Option<IssuedView>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EnrolQuery {
    user: Option<i64>,
}

async fn users(state: &Shared) -> Result<Vec<UserInfo>, Response> {
    with_session(state, |session| session.client().get(api::PATH_ADMIN_USERS)).await
}

fn choices(users: Vec<UserInfo>, selected: Option<i64>) -> Vec<Choice> {
    users
        .into_iter()
        .map(|u| Choice {
            selected: Some(u.id) == selected,
            label: format!("{} ({}, {})", u.name, u.org, u.role),
            id: u.id,
        })
        .collect()
}

pub(crate) async fn enrol_form(
    State(state): State<Shared>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    Query(query): Query<EnrolQuery>,
) -> Response {
    match users(&state).await {
        Ok(users) => render(&EnrolPage { csrf, users: choices(users, query.user), issued: None }),
        Err(page) => page,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct EnrolForm {
    user: i64,
    hours: u32,
}

/// The QR code of `text` as an SVG element (no XML declaration, so it sits in the page).
fn qr_svg(text: &str) -> Result<String, AdminError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| AdminError::Console(format!("cannot make the QR code: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).build();
    Ok(svg.find("<svg").map_or(svg.clone(), |start| svg[start..].to_owned()))
}

pub(crate) async fn enrol(
    State(state): State<Shared>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    Form(form): Form<EnrolForm>,
) -> Response {
    if !(1..=24 * 30).contains(&form.hours) {
        return error_page(StatusCode::BAD_REQUEST, "Een code is 1 uur tot 30 dagen geldig.");
    }
    let issued = with_session(&state, move |session| {
        let issued = device::issue_code(session, &form.user.to_string(), form.hours)?;
        let server = api::ServerUrl::parse(session.server.as_str())
            .map_err(|e| AdminError::Console(format!("the server address: {e}")))?;
        let link = EnrolmentLink { server, code: issued.code.clone() }.to_text();
        let users: Vec<UserInfo> = session.client().get(api::PATH_ADMIN_USERS)?;
        Ok((issued, link, users))
    })
    .await;
    let (issued, link, users) = match issued {
        Ok(done) => done,
        Err(page) => return page,
    };
    let qr_svg = match qr_svg(&link) {
        Ok(svg) => svg,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let view = IssuedView {
        code: issued.code.to_string(),
        user: format!("{} ({})", issued.user.name, issued.user.org),
        expires: crate::output::time(issued.expires_at_ms),
        link,
        qr_svg,
    };
    render(&EnrolPage { csrf, users: choices(users, Some(issued.user.id)), issued: Some(view) })
}

// --- revoke ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/revoke.html")]
struct RevokePage {
    csrf: String,
    device: String,
    name: String,
    person: String,
    state: String,
}

pub(crate) async fn revoke_form(
    State(state): State<Shared>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    Path(device): Path<String>,
) -> Response {
    let found = with_session(&state, move |session| session.device(&device)).await;
    match found {
        Ok(d) => render(&RevokePage {
            csrf,
            person: format!("{} ({}, {})", d.user_name, d.org, d.role),
            state: state_label(&d.state),
            name: if d.label.is_empty() { "(geen naam)".into() } else { d.label },
            device: d.device_id,
        }),
        Err(page) => page,
    }
}

// --- offboarding -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/offboard.html")]
struct OffboardPage {
    csrf: String,
    user_id: i64,
    person: String,
    devices: Vec<DeviceRow>,
    plans: usize,
}

/// "Uit dienst melden": who, which devices, how many plans, before anything is done.
pub(crate) async fn offboard_form(
    State(state): State<Shared>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    Path(user): Path<i64>,
) -> Response {
    let found = with_session(&state, move |session| {
        let user = session.user(&user.to_string())?;
        session.require_org(&user.org)?;
        let devices: Vec<DeviceInfo> =
            session.devices()?.into_iter().filter(|d| d.user_id == user.id).collect();
        let plans: api::UserPlans = session.client().get(&api::admin_user_plans_path(user.id))?;
        Ok((user, devices, plans.plans.len(), now_ms()?))
    })
    .await;
    match found {
        Ok((user, devices, plans, now)) => render(&OffboardPage {
            csrf,
            user_id: user.id,
            person: format!("{} ({}, {})", user.name, user.org, user.role),
            devices: devices.into_iter().map(|d| device_row(d, now)).collect(),
            plans,
        }),
        Err(page) => page,
    }
}

// --- a plan ----------------------------------------------------------------------------------

struct ParticipantRow {
    name: String,
    org: String,
    role: String,
    regisseur: bool,
    devices: Vec<String>,
}

struct PlanView {
    id: String,
    level: String,
    closed: Option<String>,
    participants: Vec<ParticipantRow>,
}

#[derive(Template)]
#[template(path = "console/plan.html")]
struct PlanPage {
    asked: String,
    plan: Option<PlanView>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PlanQuery {
    id: Option<String>,
}

/// Participants from the plan's chain verified against the root; their devices from the
/// verified listing (an approved device only under the person its certificate names).
fn plan_view(session: &mut Session, text: &str) -> Result<PlanView, AdminError> {
    let plan = audit::id16(text, "een plan-id")?;
    let roster = plan::verified_chain(session, &plan)?
        .ok_or_else(|| AdminError::usage("dit plan heeft geen ondertekende deelnemerslijst"))?;
    let verified: Vec<(i64, String)> = session
        .devices()?
        .iter()
        .filter(|d| d.state != "pending")
        .map(|d| {
            let line =
                format!("{} ({})", d.device_id.chars().take(12).collect::<String>(), state_label(&d.state));
            (d.user_id, line)
        })
        .collect();
    let state = roster.state();
    let participants = state
        .participants
        .values()
        .map(|p| ParticipantRow {
            name: p.name.clone(),
            org: p.organisation.clone(),
            role: p.role.clone(),
            regisseur: p.user_id == state.regisseur,
            devices: verified
                .iter()
                .filter(|(user, _)| *user == p.user_id)
                .map(|(_, line)| line.clone())
                .collect(),
        })
        .collect();
    Ok(PlanView {
        id: api::hex(&plan),
        level: state.level.clone(),
        closed: state.closed_at_ms.map(day),
        participants,
    })
}

pub(crate) async fn plan(State(state): State<Shared>, Query(query): Query<PlanQuery>) -> Response {
    let asked = query.id.unwrap_or_default().trim().to_owned();
    if asked.is_empty() {
        return render(&PlanPage { asked, plan: None });
    }
    let text = asked.clone();
    match with_session(&state, move |session| plan_view(session, &text)).await {
        Ok(view) => render(&PlanPage { asked, plan: Some(view) }),
        Err(page) => page,
    }
}

// --- audit -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    form: AuditForm,
    rows: Option<Vec<Row>>,
    lines: Vec<String>,
    warning: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditForm {
    #[serde(default)]
    vraag: String,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

enum AuditAnswer {
    Rows(Vec<Row>, usize),
    Lines(Vec<String>, usize),
}

fn audit_answer(session: &mut Session, form: &AuditForm) -> Result<AuditAnswer, AdminError> {
    let from = audit::date(Some(&form.from))?;
    let to = audit::date(Some(&form.to))?;
    match form.vraag.as_str() {
        "controleren" => {
            let verified = audit::verify_all(session)?;
            let wrong = verified.wrong();
            Ok(AuditAnswer::Lines(verified.lines(), wrong))
        }
        "gezin" => {
            let plan = audit::id16(&form.plan, "het plan-id")?;
            let (text, complete) = audit::family_report_of(session, plan, from.as_deref(), to.as_deref())?;
            Ok(AuditAnswer::Lines(text.lines().map(str::to_owned).collect(), usize::from(!complete)))
        }
        _ => {
            let query = if !form.plan.trim().is_empty() {
                AuditQuery::Plan(audit::id16(&form.plan, "het plan-id")?)
            } else if !form.user.trim().is_empty() {
                // A name or a number, as the CLI takes it.
                AuditQuery::User(session.user(&form.user)?.id)
            } else if !form.device.trim().is_empty() {
                // A whole id is taken as it is (the server may list the device no more);
                // anything else is a prefix or a name.
                let id = match audit::id16(&form.device, "het apparaat-id") {
                    Ok(id) => id,
                    Err(_) => audit::id16(&session.device(&form.device)?.device_id, "het apparaat-id")?,
                };
                AuditQuery::Device(id)
            } else {
                return Err(AdminError::usage("vul een plan, een gebruiker of een apparaat in"));
            };
            let (rows, doubts) = audit::query_rows(session, query, from.as_deref(), to.as_deref())?;
            Ok(AuditAnswer::Rows(rows, doubts))
        }
    }
}

pub(crate) async fn audit(State(state): State<Shared>, Query(form): Query<AuditForm>) -> Response {
    if form.vraag.is_empty() {
        return render(&AuditPage { form, rows: None, lines: Vec::new(), warning: None });
    }
    let (answer, form) =
        match with_session(&state, move |session| Ok((audit_answer(session, &form), form))).await {
            Ok(done) => done,
            Err(page) => return page,
        };
    let doubt = |n: usize| {
        (n > 0).then(|| {
            format!("Let op: het logboek is {n} keer niet in orde; dit overzicht kan onvolledig zijn.")
        })
    };
    match answer {
        Ok(AuditAnswer::Rows(rows, doubts)) => {
            render(&AuditPage { form, rows: Some(rows), lines: Vec::new(), warning: doubt(doubts) })
        }
        Ok(AuditAnswer::Lines(lines, wrong)) => {
            render(&AuditPage { form, rows: None, lines, warning: doubt(wrong) })
        }
        Err(e) => error_page(StatusCode::BAD_REQUEST, &format!("Dat lukte niet: {e}")),
    }
}

// --- static files ----------------------------------------------------------------------------

pub(crate) async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../static/console.css"))
        .into_response()
}

pub(crate) async fn js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/console.js"))
        .into_response()
}

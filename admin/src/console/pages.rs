//! The console's pages. Each one calls the functions the CLI commands call, on the blocking
//! pool (the server calls are blocking HTTP), and renders an askama template.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use eenplan_protocol::api::{self, AuditQuery, DeviceInfo, EnrolmentLink, UserInfo};
use eenplan_protocol::certificate::Certificate;
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
    enrolled: String,
    state: String,
    pending: bool,
    active: bool,
}

struct PersonRow {
    id: i64,
    name: String,
    org: String,
    role: String,
    devices: Vec<DeviceRow>,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    csrf: String,
    notice: Option<String>,
    people: Vec<PersonRow>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OverviewQuery {
    goedgekeurd: Option<String>,
}

fn people(users: Vec<UserInfo>, devices: Vec<DeviceInfo>) -> Vec<PersonRow> {
    let mut by_user: BTreeMap<i64, Vec<DeviceRow>> = BTreeMap::new();
    for d in devices {
        by_user.entry(d.user_id).or_default().push(DeviceRow {
            short: d.device_id.chars().take(12).collect(),
            enrolled: day(d.created_at_ms),
            state: state_label(&d.state),
            pending: d.state == "pending",
            active: d.state == "active",
            id: d.device_id,
        });
    }
    let mut people: Vec<PersonRow> = users
        .into_iter()
        .map(|u| PersonRow {
            devices: by_user.remove(&u.id).unwrap_or_default(),
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
        let devices: Vec<DeviceInfo> = session.client().get(api::PATH_ADMIN_DEVICES)?;
        Ok((users, devices))
    })
    .await;
    let (users, devices) = match listed {
        Ok(listed) => listed,
        Err(page) => return page,
    };
    let notice = query
        .goedgekeurd
        .map(|id| format!("Apparaat {} is goedgekeurd.", id.chars().take(12).collect::<String>()));
    render(&Overview { csrf, notice, people: people(users, devices) })
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
    person: String,
    state: String,
}

pub(crate) async fn revoke_form(
    State(state): State<Shared>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    Path(device): Path<String>,
) -> Response {
    let devices =
        with_session(&state, |session| session.client().get::<Vec<DeviceInfo>>(api::PATH_ADMIN_DEVICES))
            .await;
    let devices = match devices {
        Ok(devices) => devices,
        Err(page) => return page,
    };
    match devices.into_iter().find(|d| d.device_id.eq_ignore_ascii_case(&device)) {
        Some(d) => render(&RevokePage {
            csrf,
            person: format!("{} ({}, {})", d.user_name, d.org, d.role),
            state: state_label(&d.state),
            device: d.device_id,
        }),
        None => error_page(StatusCode::NOT_FOUND, "Dit apparaat staat niet in de lijst van de server."),
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

/// Participants from the plan's chain verified against the root; devices only where their
/// certificate verifies against the root too (the server's listing just says where to look).
fn plan_view(session: &mut Session, text: &str) -> Result<PlanView, AdminError> {
    let plan = audit::id16(text, "een plan-id")?;
    let roster = plan::verified_chain(session, &plan)?
        .ok_or_else(|| AdminError::usage("dit plan heeft geen ondertekende deelnemerslijst"))?;
    let devices: Vec<DeviceInfo> = session.client().get(api::PATH_ADMIN_DEVICES)?;
    let root = session.keyring.root_public();
    let now = now_ms()?;
    let verified: Vec<(i64, String)> = devices
        .iter()
        .filter_map(|d| {
            let certificate = Certificate::from_bytes(&api::unhex(&d.certificate)?).ok()?;
            let admin = Certificate::from_bytes(&api::unhex(&d.admin_certificate)?).ok()?;
            let body = certificate.verify_device(&admin, &root, now).ok()?;
            let line = format!(
                "{} ({})",
                api::hex(&body.device_id).chars().take(12).collect::<String>(),
                state_label(&d.state)
            );
            Some((body.user_id, line))
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
                AuditQuery::User(
                    form.user.trim().parse().map_err(|_| AdminError::usage("een gebruiker is een nummer"))?,
                )
            } else if !form.device.trim().is_empty() {
                AuditQuery::Device(audit::id16(&form.device, "het apparaat-id")?)
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

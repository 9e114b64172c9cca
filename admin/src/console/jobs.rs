//! A revocation started from the page runs in the background, in this process; its progress
//! page polls `GET /jobs/{id}/progress` (JSON) that the rekey loop's observer keeps current.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Redirect, Response};
use eenplan_protocol::api;
use eenplan_protocol::wipe::RevocationReason;
use serde::{Deserialize, Serialize};

use super::{Shared, pages};
use crate::commands::Session;
use crate::commands::device::revoke_device;
use crate::offboard::{self, OffboardReport};
use crate::rekey::{Observer, Outcome, Progress};

/// A job's state, as the progress endpoint reports it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Job {
    pub title: String,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    pub done: u64,
    pub total: Option<u64>,
    /// The sentence the page shows.
    pub text: String,
    pub warnings: Vec<String>,
}

impl Job {
    fn running_text(&self) -> String {
        match self.total {
            Some(total) => format!(
                "Bezig: {} van {} documenten hebben een nieuwe sleutel.",
                self.done,
                total.max(self.done)
            ),
            None => format!("Bezig: {} documenten hebben een nieuwe sleutel, er volgen er meer.", self.done),
        }
    }
}

type JobCell = Arc<Mutex<Job>>;

fn lock(job: &JobCell) -> MutexGuard<'_, Job> {
    job.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
pub(crate) struct Jobs {
    jobs: Mutex<HashMap<String, JobCell>>,
}

impl Jobs {
    fn get(&self, id: &str) -> Option<JobCell> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned()
    }

    fn add(&self, id: String, job: JobCell) {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, job);
    }
}

/// The rekey loop's progress, into the job.
struct JobObserver(JobCell);

impl Observer for JobObserver {
    fn progress(&mut self, done: u64, total: Option<u64>) {
        let mut job = lock(&self.0);
        job.done = done;
        job.total = total;
        job.text = job.running_text();
    }

    fn warning(&mut self, message: &str) {
        lock(&self.0).warnings.push(message.to_owned());
    }

    fn step(&mut self, message: &str) {
        lock(&self.0).text = format!("Bezig: {message}.");
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    reason: String,
}

/// Starts a revocation and sends the browser to its progress page.
pub(crate) async fn revoke(
    State(state): State<Shared>,
    Path(device): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let Some(reason) = RevocationReason::parse(&form.reason) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Kies een reden: kwijt, gestolen, vervangen of vertrokken.",
        );
    };
    let title = format!("Apparaat {} intrekken ({})", short(&device), pages::reason_label(reason));
    start(&state, title, "Bezig: het apparaat wordt ingetrokken.", move |session, progress, job| {
        match revoke_device(session, &device, reason, progress) {
            Ok((revoked, outcome)) => finish(&mut lock(job), &revoked.device.user_name, outcome),
            Err(e) => fail(&mut lock(job), &e.to_string()),
        }
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct OffboardForm {
    #[serde(default)]
    reason: String,
}

/// Starts offboarding a person (`user offboard`) and sends the browser to its progress page.
pub(crate) async fn offboard(
    State(state): State<Shared>,
    Path(user): Path<i64>,
    Form(form): Form<OffboardForm>,
) -> Response {
    let reason = form.reason.trim().to_owned();
    if reason.chars().count() > 200 {
        return pages::error_page(StatusCode::BAD_REQUEST, "De toelichting is te lang (hooguit 200 tekens).");
    }
    let title = "Medewerker uit dienst melden".to_owned();
    start(&state, title, "Bezig: de apparaten worden ingetrokken.", move |session, progress, job| {
        let reason = (!reason.is_empty()).then_some(reason.as_str());
        match offboard::offboard(session, &user.to_string(), reason, progress) {
            Ok(report) => finish_offboard(&mut lock(job), &report),
            // Offboarding looks at what is done before it acts: starting it again goes on.
            Err(e) => fail(
                &mut lock(job),
                &format!("{e}. Start het uit dienst melden opnieuw: het gaat verder waar het stopte"),
            ),
        }
    })
}

/// Runs `work` on the keyring session in a thread of its own, its progress into a new job,
/// and sends the browser to the job's page.
fn start(
    state: &Shared,
    title: String,
    first_text: &str,
    work: impl FnOnce(&mut Session, &mut Progress, &JobCell) + Send + 'static,
) -> Response {
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        return pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Er is geen bron van willekeur.");
    }
    let id = api::hex(&id);
    let job = Arc::new(Mutex::new(Job {
        title,
        state: "running",
        done: 0,
        total: None,
        text: first_text.to_owned(),
        warnings: Vec::new(),
    }));
    state.jobs.add(id.clone(), job.clone());
    let shared = state.clone();
    std::thread::spawn(move || {
        let mut progress = Progress::observed(Box::new(JobObserver(job.clone())));
        work(&mut shared.session(), &mut progress, &job);
    });
    Redirect::to(&format!("/jobs/{id}")).into_response()
}

fn fail(job: &mut Job, error: &str) {
    job.state = "failed";
    job.text = format!("Mislukt: {error}");
}

fn finish_offboard(job: &mut Job, report: &OffboardReport) {
    let rotation = &report.rotation;
    let rotated = rotation.documents + rotation.already_done;
    job.done = rotated;
    job.total = Some(rotated);
    for kept in &report.plans_kept {
        job.warnings.push(format!("Blijft in plan {}: {}", kept.plan, kept.reason));
    }
    let devices = report.devices_revoked.len() + report.devices_already_revoked.len();
    let summary = format!(
        "{} is uit dienst gemeld: {devices} apparaat/apparaten ingetrokken, van {} plan(nen) afgemeld, \
         {} document(en) hebben een nieuwe sleutel.",
        report.user_name,
        report.plans_left.len(),
        rotation.documents
    );
    if rotation.refused.is_empty() {
        job.state = "done";
        job.text = format!("Klaar: {summary}");
    } else {
        job.state = "failed";
        job.text =
            format!("{summary} {} document(en) geweigerd (zie de waarschuwingen).", rotation.refused.len());
    }
}

fn finish(job: &mut Job, user: &str, outcome: Outcome) {
    let Outcome { summary, stopped } = outcome;
    let rotated = summary.documents + summary.already_done;
    job.done = rotated;
    job.total = Some(rotated);
    match stopped {
        Some(error) => {
            job.state = "failed";
            job.text = format!(
                "Ingetrokken, maar het vernieuwen van de sleutels stopte na {rotated} documenten: {error}. \
                 Start de intrekking niet opnieuw; `eenplan-admin rekey` maakt het af."
            );
        }
        None if !summary.refused.is_empty() => {
            job.state = "failed";
            job.text = format!(
                "Ingetrokken; {rotated} documenten hebben een nieuwe sleutel, {} geweigerd (zie de waarschuwingen).",
                summary.refused.len()
            );
        }
        None => {
            job.state = "done";
            job.text = format!(
                "Klaar: het apparaat van {user} is ingetrokken en {rotated} documenten hebben een nieuwe sleutel."
            );
        }
    }
}

fn short(device: &str) -> String {
    device.chars().take(12).collect()
}

#[derive(Template)]
#[template(path = "console/job.html")]
struct JobPage {
    id: String,
    bar_max: u64,
    job: Job,
}

pub(crate) async fn page(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Some(job) => {
            let job = lock(&job).clone();
            let bar_max = job.total.unwrap_or(0).max(job.done).max(1);
            pages::render(&JobPage { id, bar_max, job })
        }
        None => pages::error_page(StatusCode::NOT_FOUND, "Deze taak bestaat niet (meer)."),
    }
}

pub(crate) async fn progress(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Some(job) => Json(lock(&job).clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

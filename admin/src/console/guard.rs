//! Who may use the console: only the browser that opened the one-time login link, only
//! through 127.0.0.1 or localhost on the console's port, and only by its own forms.
//!
//! - **Login.** At start the console prints a link with a random token. The first visit
//!   exchanges it for a session cookie (`HttpOnly`, `SameSite=Strict`) and the token dies; a
//!   second visit with it is refused. Another user of this machine cannot read the console's
//!   stdout, and a web page cannot guess 256 random bits.
//! - **Host.** Every request must name `127.0.0.1:PORT` or `localhost:PORT`: a web page whose
//!   DNS name was rebound to 127.0.0.1 sends its own name and is refused.
//! - **POST.** The `Origin` must be the console's own, and the form's `csrf` field the
//!   session's token (compared in constant time).
//! - **Headers.** A strict Content-Security-Policy (scripts and styles only from the console's
//!   own static files, no inline script, no framing, forms only to itself), no referrer (the
//!   login link carries the token; `same-origin`, because with `no-referrer` chromium sends `Origin: null` on form posts), no caching.

use std::sync::Mutex;

use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use eenplan_protocol::api;
use serde::Deserialize;

use super::{Shared, pages};
use crate::error::AdminError;

const COOKIE: &str = "eenplan_console";
/// A form of the console is a few fields; anything larger is not one of its forms.
const MAX_FORM_BYTES: usize = 64 * 1024;
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The session of the one browser that logged in.
struct Browser {
    cookie: String,
    csrf: String,
}

pub(crate) struct Guard {
    port: u16,
    /// Taken by the first visit.
    login: Mutex<Option<String>>,
    browser: Mutex<Option<Browser>>,
}

/// The session's CSRF token, for the pages' forms.
#[derive(Debug, Clone)]
pub(crate) struct Csrf(pub String);

fn random_token() -> Result<String, AdminError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| AdminError::NoRandomness)?;
    Ok(api::hex(&bytes))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Guard {
    pub fn new(port: u16) -> Result<Guard, AdminError> {
        Ok(Guard { port, login: Mutex::new(Some(random_token()?)), browser: Mutex::new(None) })
    }

    pub fn login_token(&self) -> String {
        self.login.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone().unwrap_or_default()
    }

    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        host == format!("127.0.0.1:{}", self.port) || host == format!("localhost:{}", self.port)
    }

    fn origin_ok(&self, headers: &HeaderMap) -> bool {
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()).unwrap_or("");
        origin == format!("http://127.0.0.1:{}", self.port)
            || origin == format!("http://localhost:{}", self.port)
    }

    /// The CSRF token of the session the request's cookie belongs to.
    fn csrf_of(&self, headers: &HeaderMap) -> Option<String> {
        let cookie = cookie_value(headers)?;
        let browser = self.browser.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        browser.as_ref().filter(|b| same(&b.cookie, &cookie)).map(|b| b.csrf.clone())
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn refuse(status: StatusCode, message: &str) -> Response {
    pages::error_page(status, message)
}

/// Every request passes here first.
pub(crate) async fn check(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let mut response = guarded(&state, request, next).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn guarded(state: &Shared, request: Request, next: Next) -> Response {
    let guard = &state.guard;
    if !guard.host_ok(request.headers()) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "Deze console is alleen te bereiken via 127.0.0.1 of localhost.",
        );
    }
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/static/") {
        return next.run(request).await;
    }
    let Some(csrf) = guard.csrf_of(request.headers()) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Je bent niet ingelogd. Open de link die `eenplan-admin console` bij het starten liet zien.",
        );
    };
    if request.method() != Method::POST {
        let mut request = request;
        request.extensions_mut().insert(Csrf(csrf));
        return next.run(request).await;
    }
    if !guard.origin_ok(request.headers()) {
        return refuse(StatusCode::FORBIDDEN, "Dit formulier komt niet van de console zelf.");
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "Dit formulier is te groot.");
    };
    let sent = form_urlencoded::parse(&bytes).find(|(name, _)| name == "csrf").map(|(_, v)| v.into_owned());
    if !sent.is_some_and(|sent| same(&sent, &csrf)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "Dit formulier is verlopen of niet van de console: laad de pagina opnieuw.",
        );
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(Csrf(csrf));
    next.run(request).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    token: Option<String>,
}

/// The one-time link: the token for a session cookie, once.
pub(crate) async fn login(State(state): State<Shared>, Query(query): Query<LoginQuery>) -> Response {
    let guard = &state.guard;
    let taken = {
        let mut login = guard.login.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let given = query.token.unwrap_or_default();
        let matches = login.as_deref().is_some_and(|token| same(token, &given));
        if matches { login.take() } else { None }
    };
    if taken.is_none() {
        return refuse(
            StatusCode::FORBIDDEN,
            "Deze inloglink is ongeldig of al gebruikt. Start `eenplan-admin console` opnieuw voor een nieuwe link.",
        );
    }
    let (cookie, csrf) = match (random_token(), random_token()) {
        (Ok(cookie), Ok(csrf)) => (cookie, csrf),
        _ => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Er is geen bron van willekeur."),
    };
    let set_cookie = format!("{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/");
    *guard.browser.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Browser { cookie, csrf });
    let mut response = Redirect::to("/").into_response();
    match HeaderValue::from_str(&set_cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "De sessie kon niet worden gemaakt."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; eenplan_console=xyz; b=2"));
        assert_eq!(cookie_value(&headers).as_deref(), Some("xyz"));
    }
}

//! The address of a sync server, checked once where a person typed it.
//!
//! A device is told its server's address once, at enrolment, by a person copying it from a
//! letter or a screen. A mistyped address must be refused there with a sentence that says what
//! is wrong ("does not start with https://"), not found out later as "the server could not be
//! reached", which tells the person to try again when there is nothing to wait for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longer than any real server address; an address past it is refused unread.
pub const MAX_SERVER_URL_CHARS: usize = 2048;

/// A sync server's base URL: `http` or `https`, a host and an optional port and path, without
/// user name, password, query or fragment. Kept without a trailing `/`, so that
/// `format!("{url}{path}")` with a path from this module (`/v1/sync`) is the request's URL.
///
/// ```
/// use eenplan_protocol::api::{ServerUrl, ServerUrlError};
/// assert_eq!(ServerUrl::parse("https://eenplan.example.nl/").unwrap().as_str(), "https://eenplan.example.nl");
/// assert!(matches!(ServerUrl::parse("127.0.0.1:8443"), Err(ServerUrlError::NoScheme { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerUrl(String);

/// Why a text is not a server address. Each message names the address and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    #[error("no server address was given")]
    Empty,
    #[error("the server address is longer than {MAX_SERVER_URL_CHARS} characters")]
    TooLong,
    #[error("the server address {address:?} does not start with https:// (or http://)")]
    NoScheme { address: String },
    #[error(
        "the server address {address:?} starts with {scheme}://; only https:// and http:// are supported"
    )]
    UnsupportedScheme { address: String, scheme: String },
    #[error("the server address {address:?} names no server after the {scheme}://")]
    NoHost { address: String, scheme: String },
    #[error("the server address {address:?} holds a user name or password (before an @); leave it out")]
    UserInfo { address: String },
    #[error(
        "the server address {address:?} has a query or fragment (from ? or #); give only the server's address"
    )]
    QueryOrFragment { address: String },
    #[error("the server address {address:?} has port {port:?}; a port is a number from 1 to 65535")]
    BadPort { address: String, port: String },
    #[error("the server address {address:?} is not a valid address: {detail}")]
    Malformed { address: String, detail: String },
}

impl ServerUrl {
    /// Checks a typed address. Surrounding white space is ignored, as are the scheme's case
    /// and one trailing `/`.
    pub fn parse(text: &str) -> Result<ServerUrl, ServerUrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ServerUrlError::Empty);
        }
        if text.chars().count() > MAX_SERVER_URL_CHARS {
            return Err(ServerUrlError::TooLong);
        }
        let address = text.to_owned();
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(ServerUrlError::NoScheme { address });
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            // A scheme-less address with a "://" later on ("eenplan.nl/x://") is no URL at all.
            if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
                return Err(ServerUrlError::NoScheme { address });
            }
            return Err(ServerUrlError::UnsupportedScheme { address, scheme });
        }
        if rest.contains(['?', '#']) {
            return Err(ServerUrlError::QueryOrFragment { address });
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(ServerUrlError::UserInfo { address });
        }
        let uri: http::Uri = format!("{scheme}://{rest}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| no_host_or(&address, &scheme, rest, e.to_string()))?;
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err(ServerUrlError::NoHost { address, scheme });
        }
        check_port(&address, authority, host)?;
        let path = uri.path().trim_end_matches('/');
        Ok(ServerUrl(format!("{scheme}://{authority}{path}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `http::Uri` calls an empty authority "empty string"; a person needs to hear that the host
/// is missing.
fn no_host_or(address: &str, scheme: &str, rest: &str, detail: String) -> ServerUrlError {
    if rest.split('/').next().unwrap_or_default().is_empty() {
        ServerUrlError::NoHost { address: address.to_owned(), scheme: scheme.to_owned() }
    } else {
        ServerUrlError::Malformed { address: address.to_owned(), detail }
    }
}

/// `http::Uri` accepts `host:` and `host:99999` (it reports no port for them).
fn check_port(address: &str, authority: &str, host: &str) -> Result<(), ServerUrlError> {
    let after_host = authority.get(host.len()..).unwrap_or_default();
    let Some(port) = after_host.strip_prefix(':') else { return Ok(()) };
    match port.parse::<u16>() {
        Ok(1..) => Ok(()),
        _ => Err(ServerUrlError::BadPort { address: address.to_owned(), port: port.to_owned() }),
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ServerUrl {
    type Err = ServerUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServerUrl::parse(text)
    }
}

impl TryFrom<String> for ServerUrl {
    type Error = ServerUrlError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        ServerUrl::parse(&text)
    }
}

impl From<ServerUrl> for String {
    fn from(url: ServerUrl) -> String {
        url.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> ServerUrlError {
        ServerUrl::parse(text).expect_err(text)
    }

    #[test]
    fn an_http_or_https_address_is_kept_without_its_trailing_slash() {
        for (typed, kept) in [
            ("https://eenplan.example.nl", "https://eenplan.example.nl"),
            ("  https://eenplan.example.nl/  ", "https://eenplan.example.nl"),
            ("HTTPS://eenplan.example.nl:8443/", "https://eenplan.example.nl:8443"),
            ("http://127.0.0.1:8443", "http://127.0.0.1:8443"),
            ("http://[::1]:8443/", "http://[::1]:8443"),
            ("https://gemeente.example.nl/eenplan/", "https://gemeente.example.nl/eenplan"),
        ] {
            assert_eq!(ServerUrl::parse(typed).unwrap().as_str(), kept, "{typed}");
        }
    }

    #[test]
    fn the_addresses_people_mistype_are_refused_with_what_is_wrong() {
        assert!(matches!(refused("127.0.0.1:8443"), ServerUrlError::NoScheme { .. }));
        assert!(matches!(refused("eenplan.example.nl"), ServerUrlError::NoScheme { .. }));
        assert!(matches!(refused("not a url"), ServerUrlError::NoScheme { .. }));
        assert!(
            matches!(refused("ftp://eenplan.example.nl"), ServerUrlError::UnsupportedScheme { scheme, .. } if scheme == "ftp")
        );
        assert!(matches!(refused("https://"), ServerUrlError::NoHost { .. }));
        assert!(matches!(refused("https:///v1"), ServerUrlError::NoHost { .. }));
        assert!(matches!(refused("https://:8443"), ServerUrlError::NoHost { .. }));
        assert!(matches!(refused("https://rita:geheim@eenplan.example.nl"), ServerUrlError::UserInfo { .. }));
        assert!(matches!(
            refused("https://eenplan.example.nl/#start"),
            ServerUrlError::QueryOrFragment { .. }
        ));
        assert!(matches!(refused("https://eenplan.example.nl/?a=1"), ServerUrlError::QueryOrFragment { .. }));
        assert!(matches!(refused("https://eenplan.example.nl:99999"), ServerUrlError::BadPort { .. }));
        assert!(matches!(refused("https://eenplan.example.nl:"), ServerUrlError::BadPort { .. }));
        assert!(matches!(refused("https://eenplan.example.nl:0"), ServerUrlError::BadPort { .. }));
        assert!(matches!(refused("https://een plan.nl"), ServerUrlError::Malformed { .. }));
        assert_eq!(refused("   "), ServerUrlError::Empty);
        assert_eq!(
            refused(&format!("https://{}", "a".repeat(MAX_SERVER_URL_CHARS))),
            ServerUrlError::TooLong
        );
    }

    #[test]
    fn a_refusal_names_the_address_and_the_fix() {
        let message = refused("127.0.0.1:8443").to_string();
        assert!(message.contains("\"127.0.0.1:8443\"") && message.contains("https://"), "{message}");
        let message = refused("ftp://x.nl").to_string();
        assert!(message.contains("only https:// and http://"), "{message}");
    }

    #[test]
    fn a_stored_address_is_checked_again_when_read() {
        let url = ServerUrl::parse("https://eenplan.example.nl").unwrap();
        let json = serde_json::to_string(&url).unwrap();
        assert_eq!(serde_json::from_str::<ServerUrl>(&json).unwrap(), url);
        assert!(serde_json::from_str::<ServerUrl>("\"ftp://x.nl\"").is_err());
    }
}

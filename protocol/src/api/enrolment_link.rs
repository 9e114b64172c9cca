//! What a phone scans to enrol: the server's address and the enrolment code in one link,
//! `eenplan:enrol?server=<address, percent-encoded>&code=<code>`, which the administrator's
//! console shows as a QR code beside the printed code. The link carries nothing a typed
//! enrolment does not: the code's own root tag still decides whether the phone enrols.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{EnrolmentCode, ServerUrl, ServerUrlError};

const PREFIX: &str = "eenplan:enrol?";

/// Everything but RFC 3986's unreserved characters is escaped, so a value never holds the
/// `&`, `=` or `%` that would split or end it.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A parsed enrolment link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentLink {
    pub server: ServerUrl,
    pub code: EnrolmentCode,
}

/// Why a scanned text is not an enrolment link. Field names are the link's own; nothing of
/// the scanned text is echoed but the server address's own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolmentLinkError {
    #[error("not an eenplan enrolment link (it does not start with {PREFIX})")]
    NotAnEnrolmentLink,
    #[error("the enrolment link has a part without `=`")]
    NoValue,
    #[error("the enrolment link has a field other than `server` and `code`")]
    UnknownField,
    #[error("the enrolment link has no `{0}` field")]
    Missing(&'static str),
    #[error("the enrolment link has its `{0}` field twice")]
    Repeated(&'static str),
    #[error("the enrolment link's `{0}` field has a `%` not followed by two hexadecimal digits")]
    MalformedEscape(&'static str),
    #[error("the enrolment link's `{0}` field is not UTF-8 once decoded")]
    NotUtf8(&'static str),
    #[error("the enrolment link's server: {0}")]
    Server(#[from] ServerUrlError),
    #[error("the enrolment link's code is not an enrolment code")]
    Code,
}

impl EnrolmentLink {
    /// The link's text, as the QR code holds it.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}server={}&code={}", utf8_percent_encode(self.server.as_str(), ESCAPED), self.code)
    }

    /// Reads a scanned link: anything else (another kind of link, a field missing, repeated or
    /// unknown, a malformed escape, a bad address or code) is refused with what is wrong.
    pub fn parse(text: &str) -> Result<EnrolmentLink, EnrolmentLinkError> {
        let query = text.trim().strip_prefix(PREFIX).ok_or(EnrolmentLinkError::NotAnEnrolmentLink)?;
        let (mut server, mut code) = (None, None);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').ok_or(EnrolmentLinkError::NoValue)?;
            let (field, slot) = match name {
                "server" => ("server", &mut server),
                "code" => ("code", &mut code),
                _ => return Err(EnrolmentLinkError::UnknownField),
            };
            if slot.replace(decode(field, value)?).is_some() {
                return Err(EnrolmentLinkError::Repeated(field));
            }
        }
        let server = ServerUrl::parse(&server.ok_or(EnrolmentLinkError::Missing("server"))?)?;
        let code = EnrolmentCode::parse(&code.ok_or(EnrolmentLinkError::Missing("code"))?)
            .ok_or(EnrolmentLinkError::Code)?;
        Ok(EnrolmentLink { server, code })
    }
}

/// A field's value decoded. The crate passes a `%` without two hex digits through as it is;
/// a link we made never holds one, so it is refused rather than guessed at.
fn decode(field: &'static str, value: &str) -> Result<String, EnrolmentLinkError> {
    let bytes = value.as_bytes();
    let well_formed = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| bytes.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !well_formed {
        return Err(EnrolmentLinkError::MalformedEscape(field));
    }
    let decoded = percent_decode_str(value).decode_utf8().map_err(|_| EnrolmentLinkError::NotUtf8(field))?;
    Ok(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> EnrolmentCode {
        EnrolmentCode::generate(&[3u8; 32]).unwrap()
    }

    #[test]
    fn an_enrolment_link_round_trips_and_refuses_anything_else() {
        let code = code();
        let server = ServerUrl::parse("https://eenplan.zaanstad.nl:8443").unwrap();
        let link = EnrolmentLink { server, code: code.clone() };
        let text = link.to_text();
        assert!(
            text.starts_with("eenplan:enrol?server=https%3A%2F%2Feenplan.zaanstad.nl%3A8443&code="),
            "{text}"
        );
        assert_eq!(EnrolmentLink::parse(&text), Ok(link));
        let code_text = code.to_string();
        for (bad, expected) in [
            (format!("eenplan:enrol?code={code_text}"), EnrolmentLinkError::Missing("server")),
            (
                format!("eenplan:enrol?server=https%3A%2F%2Fa&code={code_text}&code={code_text}"),
                EnrolmentLinkError::Repeated("code"),
            ),
            (
                format!("eenplan:enrol?server=ftp%3A%2F%2Fa&code={code_text}"),
                EnrolmentLinkError::Server(ServerUrl::parse("ftp://a").unwrap_err()),
            ),
            (
                format!("eenplan:enrol?server=https%3A%2F%2Fa&code={code_text}&x=1"),
                EnrolmentLinkError::UnknownField,
            ),
            (
                format!("eenplan:enrol?server=%ZZ&code={code_text}"),
                EnrolmentLinkError::MalformedEscape("server"),
            ),
            ("eenplan:enrol?server=https%3A%2F%2Fa&code=ABCD".to_string(), EnrolmentLinkError::Code),
            ("eenplan:enrol?server=https%3A%2F%2Fa&code".to_string(), EnrolmentLinkError::NoValue),
            (
                format!("https://evil.example/?server=https%3A%2F%2Fa&code={code_text}"),
                EnrolmentLinkError::NotAnEnrolmentLink,
            ),
        ] {
            assert_eq!(EnrolmentLink::parse(&bad), Err(expected), "{bad}");
        }
    }

    #[test]
    fn a_malformed_escape_is_refused_as_such_not_passed_through() {
        let code_text = code().to_string();
        for server in ["%zz", "https%3A%2F%2Fa%4", "https%3A%2F%2Fa%", "https%3A%2F%2Fa%4g", "%%41"] {
            let text = format!("eenplan:enrol?server={server}&code={code_text}");
            assert_eq!(
                EnrolmentLink::parse(&text),
                Err(EnrolmentLinkError::MalformedEscape("server")),
                "{text}"
            );
        }
        let text = format!("eenplan:enrol?server=https%3A%2F%2Fa&code={code_text}%4");
        assert_eq!(EnrolmentLink::parse(&text), Err(EnrolmentLinkError::MalformedEscape("code")));
        // Well-formed escapes of bytes that are no UTF-8 are refused too.
        let text = format!("eenplan:enrol?server=https%3A%2F%2Fa%FF&code={code_text}");
        assert_eq!(EnrolmentLink::parse(&text), Err(EnrolmentLinkError::NotUtf8("server")));
    }

    #[test]
    fn an_address_with_a_path_and_unreserved_characters_round_trips() {
        let server = ServerUrl::parse("https://zorg.example-regio.nl/eenplan_1.0~test").unwrap();
        let link = EnrolmentLink { server, code: code() };
        let text = link.to_text();
        assert!(text.contains("server=https%3A%2F%2Fzorg.example-regio.nl%2Feenplan_1.0~test&"), "{text}");
        assert_eq!(EnrolmentLink::parse(&text), Ok(link));
    }
}

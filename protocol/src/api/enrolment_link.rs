//! What a phone scans to enrol: the server's address and the enrolment code in one link,
//! `eenplan:enrol?server=<address, percent-encoded>&code=<code>`, which the administrator's
//! console shows as a QR code beside the printed code. The link carries nothing a typed
//! enrolment does not: the code's own root tag still decides whether the phone enrols.

use super::{EnrolmentCode, ServerUrl};

const PREFIX: &str = "eenplan:enrol?";

/// A parsed enrolment link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentLink {
    pub server: ServerUrl,
    pub code: EnrolmentCode,
}

impl EnrolmentLink {
    /// The link's text, as the QR code holds it.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}server={}&code={}", encode(self.server.as_str()), self.code)
    }

    /// Reads a scanned link; `None` for anything else (another kind of link, a field missing,
    /// repeated or unknown, a bad address or code).
    pub fn parse(text: &str) -> Option<EnrolmentLink> {
        let query = text.trim().strip_prefix(PREFIX)?;
        let (mut server, mut code) = (None, None);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=')?;
            let slot = match name {
                "server" => &mut server,
                "code" => &mut code,
                _ => return None,
            };
            if slot.replace(decode(value)?).is_some() {
                return None;
            }
        }
        let server = ServerUrl::parse(&server?).ok()?;
        let code = EnrolmentCode::parse(&code?)?;
        Some(EnrolmentLink { server, code })
    }
}

/// Everything but unreserved characters as `%XX`.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrolment_link_round_trips_and_refuses_anything_else() {
        let code = EnrolmentCode::generate(&[3u8; 32]).unwrap();
        let server = ServerUrl::parse("https://eenplan.zaanstad.nl:8443").unwrap();
        let link = EnrolmentLink { server, code: code.clone() };
        let text = link.to_text();
        assert!(
            text.starts_with("eenplan:enrol?server=https%3A%2F%2Feenplan.zaanstad.nl%3A8443&code="),
            "{text}"
        );
        assert_eq!(EnrolmentLink::parse(&text), Some(link));
        let code_text = code.to_string();
        for bad in [
            format!("eenplan:enrol?code={code_text}"),
            format!("eenplan:enrol?server=https%3A%2F%2Fa&code={code_text}&code={code_text}"),
            format!("eenplan:enrol?server=ftp%3A%2F%2Fa&code={code_text}"),
            format!("eenplan:enrol?server=https%3A%2F%2Fa&code={code_text}&x=1"),
            format!("eenplan:enrol?server=%ZZ&code={code_text}"),
            "eenplan:enrol?server=https%3A%2F%2Fa&code=ABCD".to_string(),
            format!("https://evil.example/?server=https%3A%2F%2Fa&code={code_text}"),
        ] {
            assert_eq!(EnrolmentLink::parse(&bad), None, "{bad}");
        }
    }
}

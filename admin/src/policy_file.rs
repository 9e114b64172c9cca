//! The administrator's sharing-policy file: TOML in, [`Policy`] out, and back.
//!
//! The file is what a person edits (`protocol/policy/default.toml` is the example that ships),
//! so every problem is reported with the line it is on. The file is read into a mirror of
//! [`Policy`] whose values carry their place in the text; the protocol's own
//! [`Policy::validate`] then decides, so the CLI never signs a table that the server or a
//! device would refuse.

use std::collections::BTreeMap;
use std::ops::Range;

use eenplan_core::plan::Role;
use eenplan_protocol::policy::{Access, COMPARTMENTS, LEVELS, Policy, PolicyError};
use serde::Deserialize;
use toml::Spanned;

/// A policy table is a few dozen lines; a file far larger than that is not one.
pub const MAX_FILE_LEN: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFileError {
    /// Not TOML, or TOML that is not a policy (a misspelt key, a number where a list belongs).
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// Well-formed, but a table the protocol refuses.
    #[error("line {line}: {problem}")]
    Invalid { line: usize, problem: PolicyError },
    #[error("the file is larger than {} KiB; a policy is a short table", MAX_FILE_LEN / 1024)]
    TooLarge,
    #[error("the file is not UTF-8 text")]
    NotText,
}

/// A policy read from a file, with what deserves a warning but is not wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPolicy {
    pub policy: Policy,
    /// Roles (with their line) that this CLI gives to no user: a typo, most likely, and the
    /// role that was meant then reads nothing.
    pub unknown_roles: Vec<(String, usize)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePolicy {
    version: Spanned<u32>,
    #[serde(default)]
    roles: BTreeMap<Spanned<String>, FileAccess>,
    /// `[levels.LEVEL.ROLE]`: what a role may do at an escalation level instead of its base
    /// entry.
    #[serde(default)]
    levels: BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, FileAccess>>,
    /// `[retention] years = 20, grace_days = 30`: absent, the defaults apply.
    #[serde(default)]
    retention: Option<eenplan_protocol::policy::Retention>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAccess {
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    let end = at.min(text.len());
    text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

fn line_of_span(text: &str, span: Range<usize>) -> usize {
    line_of(text, span.start)
}

/// Reads a policy file's bytes.
pub fn parse_bytes(bytes: &[u8]) -> Result<ParsedPolicy, PolicyFileError> {
    if bytes.len() > MAX_FILE_LEN {
        return Err(PolicyFileError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| PolicyFileError::NotText)?;
    parse(text)
}

/// Reads a policy from TOML text and validates it.
pub fn parse(text: &str) -> Result<ParsedPolicy, PolicyFileError> {
    if text.len() > MAX_FILE_LEN {
        return Err(PolicyFileError::TooLarge);
    }
    let file: FilePolicy = toml::from_str(text).map_err(|e| PolicyFileError::Syntax {
        line: e.span().map_or(1, |span| line_of_span(text, span)),
        message: e.message().trim_end().to_string(),
    })?;
    let policy = Policy {
        version: *file.version.get_ref(),
        roles: table(&file.roles),
        levels: file.levels.iter().map(|(level, roles)| (level.get_ref().clone(), table(roles))).collect(),
        retention: file.retention,
    };
    if let Err(problem) = policy.validate() {
        let line = where_is(&file, &problem).map_or(1, |span| line_of_span(text, span));
        return Err(PolicyFileError::Invalid { line, problem });
    }
    let unknown_roles = entries(&file)
        .filter(|(role, _)| !is_known_role(role.get_ref()))
        .map(|(role, _)| (role.get_ref().clone(), line_of_span(text, role.span())))
        .collect();
    Ok(ParsedPolicy { policy, unknown_roles })
}

/// A file's role tables as the protocol's.
fn table(roles: &BTreeMap<Spanned<String>, FileAccess>) -> BTreeMap<String, Access> {
    let names = |list: &[Spanned<String>]| list.iter().map(|c| c.get_ref().clone()).collect();
    roles
        .iter()
        .map(|(role, access)| {
            (role.get_ref().clone(), Access { read: names(&access.read), write: names(&access.write) })
        })
        .collect()
}

/// Every role entry of the file in the order [`Policy::validate`] checks them: the base table,
/// then each level's.
fn entries(file: &FilePolicy) -> impl Iterator<Item = (&Spanned<String>, &FileAccess)> {
    file.roles.iter().chain(file.levels.values().flatten())
}

/// The place in the file of what `problem` is about.
fn where_is(file: &FilePolicy, problem: &PolicyError) -> Option<Range<usize>> {
    let level = |level: &str| file.levels.keys().find(|name| name.get_ref() == level).map(Spanned::span);
    match problem {
        PolicyError::NoVersion => Some(file.version.span()),
        PolicyError::UnknownCompartment { role, compartment } => named(file, role)
            .flat_map(|access| access.read.iter().chain(&access.write))
            .find(|c| c.get_ref() == compartment)
            .map(Spanned::span),
        PolicyError::WriteWithoutRead { role, compartment } => named(file, role)
            .filter(|access| !access.read.iter().any(|c| c.get_ref() == compartment))
            .flat_map(|access| &access.write)
            .find(|c| c.get_ref() == compartment)
            .map(Spanned::span),
        PolicyError::UnknownLevel { level: name } | PolicyError::BaseLevelRules { level: name } => {
            level(name)
        }
        PolicyError::Malformed(_) | PolicyError::BadSignature => None,
    }
}

/// The entries for `role`, in the order [`Policy::validate`] checks them.
fn named<'a>(file: &'a FilePolicy, role: &'a str) -> impl Iterator<Item = &'a FileAccess> {
    entries(file).filter(move |(name, _)| name.get_ref() == role).map(|(_, access)| access)
}

/// Whether users can hold `role`: the roles `user add` accepts.
fn is_known_role(role: &str) -> bool {
    Role::ALL.iter().any(|r| r.as_str() == role)
}

/// The policy as a TOML file that [`parse`] reads back to the same policy: `version` first,
/// then one table per role, then one per level and role (`[levels.LEVEL.ROLE]`).
pub fn to_toml(policy: &Policy) -> Result<String, toml::ser::Error> {
    toml::to_string(policy)
}

/// What `policy show` prints above the table.
pub fn header(policy: &Policy, root_fingerprint: &str) -> String {
    format!(
        "# eenplan sharing policy, version {version}.\n\
         # Signed by the network root {root_fingerprint}; verified against this keyring's root.\n\
         # Compartments: {compartments}. A role that is not listed reads and writes nothing.\n\
         # Escalation levels: {levels}. [roles] holds the rules at {base}; a [levels.LEVEL.ROLE]\n\
         # entry replaces that role's [roles] entry at LEVEL, and other roles keep theirs.\n\
         # To change it: edit a copy, raise `version`, and run `eenplan-admin policy set FILE`.\n\n",
        version = policy.version,
        compartments = COMPARTMENTS.join(", "),
        levels = LEVELS.join(", "),
        base = eenplan_protocol::policy::BASE_LEVEL,
    )
}

#[cfg(test)]
mod tests {
    use eenplan_protocol::policy::DEFAULT_POLICY_TOML;

    use super::*;

    fn invalid(text: &str) -> (usize, PolicyError) {
        match parse(text) {
            Err(PolicyFileError::Invalid { line, problem }) => (line, problem),
            other => panic!("expected an invalid policy, got {other:?}"),
        }
    }

    fn syntax(text: &str) -> (usize, String) {
        match parse(text) {
            Err(PolicyFileError::Syntax { line, message }) => (line, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn the_default_policy_parses_and_validates() {
        let parsed = parse(DEFAULT_POLICY_TOML).unwrap();
        assert_eq!(parsed.policy.version, 1);
        assert!(parsed.policy.may_read("politie", 3) && !parsed.policy.may_read("politie", 1));
        assert!(parsed.policy.may_read("ggz", 1) && !parsed.policy.may_read("ggz", 3));
        assert!(parsed.policy.may_write("wijkteam", 0));
        assert_eq!(parsed.unknown_roles, Vec::<(String, usize)>::new());
    }

    #[test]
    fn the_default_policy_opens_zorg_veiligheid_and_justitie_to_the_veiligheidshuis_only_when_escalated() {
        let policy = parse(DEFAULT_POLICY_TOML).unwrap().policy;
        assert!(!policy.names_role("regisseur"), "regie is a function per plan, not a role");
        let zvh = "zorg_en_veiligheidshuis";
        for role in ["zvh_procesregisseur", "pga_expert"] {
            for compartment in 1..=3 {
                assert!(policy.may_read_at(role, compartment, zvh), "{role} reads {compartment} at the ZVH");
                assert!(
                    policy.may_write_at(role, compartment, zvh),
                    "{role} writes {compartment} at the ZVH"
                );
            }
        }
        for role in ["zvh_procesregisseur", "zvh_medewerker"] {
            for level in ["regulier", "lokaal"] {
                assert!((1..=3).all(|c| !policy.may_read_at(role, c, level)), "{role} at {level}");
            }
        }
    }

    #[test]
    fn every_compartment_of_the_default_policy_has_a_reader_and_a_writer_at_every_level() {
        let policy = parse(DEFAULT_POLICY_TOML).unwrap().policy;
        for level in LEVELS {
            for compartment in 0..COMPARTMENTS.len() as u8 {
                let readers = policy.roles_reading_at(compartment, level);
                assert!(!readers.is_empty(), "{compartment} at {level}");
                assert!(
                    readers.iter().any(|r| policy.may_write_at(r, compartment, level)),
                    "{compartment} at {level}"
                );
            }
        }
    }

    #[test]
    fn level_rules_read_back_and_a_printed_policy_shows_them() {
        let text = "version = 2\n[roles.ggz]\nread = [\"basis\"]\n\n\
                    [levels.zorg_en_veiligheidshuis.pga_expert]\nread = [\"basis\", \"zorg\"]\nwrite = [\"zorg\"]\n";
        let policy = parse(text).unwrap().policy;
        assert!(policy.may_write_at("pga_expert", 1, "zorg_en_veiligheidshuis"));
        assert!(!policy.may_read("pga_expert", 1));
        let printed = to_toml(&policy).unwrap();
        assert!(printed.contains("[levels.zorg_en_veiligheidshuis.pga_expert]"), "{printed}");
        assert_eq!(parse(&printed).unwrap().policy, policy);
        let default = parse(DEFAULT_POLICY_TOML).unwrap().policy;
        assert_eq!(parse(&to_toml(&default).unwrap()).unwrap().policy, default);
    }

    #[test]
    fn an_unknown_level_or_rules_for_the_base_level_are_refused_with_their_line() {
        let text = "version = 2\n[roles.ggz]\nread = []\n\n[levels.landelijk.ggz]\nread = []\n";
        assert_eq!(invalid(text), (5, PolicyError::UnknownLevel { level: "landelijk".into() }));
        let text = "version = 2\n\n[levels.regulier.ggz]\nread = []\n";
        assert_eq!(invalid(text), (3, PolicyError::BaseLevelRules { level: "regulier".into() }));
    }

    #[test]
    fn level_entries_that_break_the_table_rules_are_refused_on_their_own_line() {
        // The same role, well-formed in the base table, blind at the level.
        let text = "version = 2\n[roles.om]\nread = [\"basis\", \"justitie\"]\nwrite = [\"justitie\"]\n\
                    [levels.lokaal.om]\nread = [\"basis\"]\nwrite = [\"justitie\"]\n";
        assert_eq!(
            invalid(text),
            (7, PolicyError::WriteWithoutRead { role: "om".into(), compartment: "justitie".into() })
        );
        let text = "version = 2\n[levels.lokaal.om]\nread = [\"geheim\"]\n";
        assert_eq!(invalid(text).0, 3);
        let (line, message) = syntax("version = 2\n[levels.lokaal.om]\nreed = []\n");
        assert_eq!(line, 3, "{message}");
    }

    #[test]
    fn unknown_roles_inside_a_level_are_named_as_a_warning_with_their_line() {
        let text = "version = 3\n[roles.ggz]\nread = []\n[levels.lokaal.pga_exprt]\nread = [\"basis\"]\n";
        assert_eq!(parse(text).unwrap().unknown_roles, vec![("pga_exprt".to_string(), 4)]);
    }

    #[test]
    fn a_printed_policy_reads_back_to_the_same_policy() {
        let policy = parse(DEFAULT_POLICY_TOML).unwrap().policy;
        let printed = format!("{}{}", header(&policy, "0011223344556677"), to_toml(&policy).unwrap());
        assert!(printed.contains("version = 1\n"), "{printed}");
        let first_value = printed.lines().find(|l| !l.starts_with('#') && !l.is_empty()).unwrap();
        assert_eq!(first_value, "version = 1", "version comes first");
        assert_eq!(parse(&printed).unwrap().policy, policy);
        // A role that may do nothing survives the round trip too.
        let mut empty = policy.clone();
        empty.roles.insert("school".into(), Access::default());
        assert_eq!(parse(&to_toml(&empty).unwrap()).unwrap().policy, empty);
    }

    #[test]
    fn an_unknown_compartment_is_refused_with_its_line() {
        let text = "version = 2\n\n[roles.ggz]\nread = [\"basis\",\n  \"geheim\"]\n";
        let (line, problem) = invalid(text);
        assert_eq!(line, 5);
        assert_eq!(
            problem,
            PolicyError::UnknownCompartment { role: "ggz".into(), compartment: "geheim".into() }
        );
        let message = parse(text).unwrap_err().to_string();
        assert!(message.starts_with("line 5: ") && message.contains("geheim"), "{message}");
    }

    #[test]
    fn writing_a_compartment_without_reading_it_is_refused_with_its_line() {
        let text = "version = 2\n[roles.om]\nread = [\"basis\"]\nwrite = [\"basis\", \"justitie\"]\n";
        assert_eq!(
            invalid(text),
            (4, PolicyError::WriteWithoutRead { role: "om".into(), compartment: "justitie".into() })
        );
    }

    #[test]
    fn version_zero_is_refused_on_its_line() {
        assert_eq!(invalid("# comment\nversion = 0\n"), (2, PolicyError::NoVersion));
    }

    #[test]
    fn toml_that_is_not_a_policy_is_a_syntax_error_with_its_line() {
        let (line, message) = syntax("version = 2\n[roles.ggz]\nread = [\"basis\"]\nwirte = [\"basis\"]\n");
        assert_eq!(line, 4);
        assert!(message.contains("wirte"), "{message}");
        let (line, _) = syntax("version = 2\n[role.ggz]\nread = []\n");
        assert_eq!(line, 2);
        let (line, _) = syntax("version = -1\n");
        assert_eq!(line, 1);
        let (line, _) = syntax("version = 2\n[roles.ggz]\nread = \"basis\"\n");
        assert_eq!(line, 3);
        let (line, _) = syntax("version = 2\n\n[roles.ggz\n");
        assert_eq!(line, 3);
        assert!(syntax("[roles.ggz]\nread = []\n").1.contains("version"));
    }

    #[test]
    fn files_that_are_not_text_or_far_too_large_are_refused() {
        assert_eq!(parse_bytes(&[0xff, 0xfe, 0x00]), Err(PolicyFileError::NotText));
        let large = format!("version = 1\n{}", "# padding\n".repeat(MAX_FILE_LEN / 10 + 1));
        assert_eq!(parse_bytes(large.as_bytes()), Err(PolicyFileError::TooLarge));
    }

    #[test]
    fn roles_no_user_can_hold_are_named_as_a_warning_with_their_line() {
        let parsed =
            parse("version = 3\n[roles.politei]\nread = [\"basis\"]\n[roles.ggz]\nread = []\n").unwrap();
        assert_eq!(parsed.unknown_roles, vec![("politei".to_string(), 2)]);
        assert!(parsed.policy.roles.contains_key("politei"));
    }
}

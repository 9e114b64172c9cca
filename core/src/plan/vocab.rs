//! The plan's fixed vocabularies (phases, levels, roles, statuses) and limits.
//!
//! Each vocabulary is stored in the documents as its lowercase `snake_case` name, so that a
//! document stays readable by any automerge tool and a newer app can add values that an older
//! one shows as unknown instead of refusing to open the plan.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValidationError;

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident, $field:expr, { $($(#[$vdoc:meta])* $variant:ident = $text:expr => $label:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// What people read: the Dutch display label. Documents and JSON keep
            /// [`Self::as_str`], the stable code.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            /// The label of a stored code; a code this version does not know (written by a
            /// newer app) is shown as it is.
            pub fn label_of(code: &str) -> String {
                code.parse::<$name>().map_or_else(|_| code.to_owned(), |v| v.label().to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ValidationError::InvalidValue {
                        field: $field,
                        value: s.chars().take(64).collect(),
                        allowed: vec![$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

vocabulary!(
    /// Where the plan stands in its life cycle.
    Phase, "phase", {
        Aanmelding = "aanmelding" => "Aanmelding",
        Triage = "triage" => "Triage",
        Plan = "plan" => "Plan maken",
        Uitvoering = "uitvoering" => "Uitvoering",
        Evaluatie = "evaluatie" => "Evaluatie",
        /// Afschaling or overdracht: scaling down or handing over.
        Afschaling = "afschaling" => "Afschaling of overdracht",
        Afgesloten = "afgesloten" => "Afgesloten",
    }
);

vocabulary!(
    /// How far the case has been escalated.
    EscalationLevel, "escalation level", {
        Regulier = "regulier" => "Regulier",
        /// Lokaal: the wijkteam holds regie.
        Lokaal = "lokaal" => "Lokaal (wijkteam)",
        ZorgEnVeiligheidshuis = "zorg_en_veiligheidshuis" => "Zorg- en Veiligheidshuis",
    }
);

vocabulary!(
    /// A participant's professional role, which the sharing policy maps to compartments.
    /// Regie is not a role: it is a function per plan (DESIGN §3a).
    Role, "role", {
        Wijkteam = "wijkteam" => "Wijkteam",
        VeiligThuis = "veilig_thuis" => "Veilig Thuis",
        Politie = "politie" => "Politie",
        Om = "om" => "Openbaar Ministerie",
        RaadVoorDeKinderbescherming = "raad_kinderbescherming" => "Raad voor de Kinderbescherming",
        Reclassering = "reclassering" => "Reclassering",
        Ggz = "ggz" => "GGZ",
        Verslavingszorg = "verslavingszorg" => "Verslavingszorg",
        PgaExpert = "pga_expert" => "PGA-expert",
        /// The Zorg- en Veiligheidshuis' procesregisseur, who takes regie of escalated cases.
        ZvhProcesregisseur = "zvh_procesregisseur" => "Procesregisseur Zorg- en Veiligheidshuis",
        /// A Zorg- en Veiligheidshuis staff member who prepares and records its casusoverleg.
        ZvhMedewerker = "zvh_medewerker" => "Medewerker Zorg- en Veiligheidshuis",
        Woningcorporatie = "woningcorporatie" => "Woningcorporatie",
        School = "school" => "School",
        Gemeente = "gemeente" => "Gemeente",
        Overig = "overig" => "Overig",
    }
);

vocabulary!(
    GoalStatus, "goal status", {
        Open = "open" => "Open",
        InProgress = "in_progress" => "Bezig",
        Achieved = "achieved" => "Behaald",
        NotAchieved = "not_achieved" => "Niet behaald",
        Cancelled = "cancelled" => "Vervallen",
    }
);

vocabulary!(
    ActionStatus, "action status", {
        Todo = "todo" => "Te doen",
        InProgress = "in_progress" => "Bezig",
        Done = "done" => "Gedaan",
        Cancelled = "cancelled" => "Vervallen",
    }
);

vocabulary!(
    NoteKind, "note kind", {
        /// Written during or right after a home visit.
        HomeVisit = "home_visit" => "Huisbezoek",
        Note = "note" => "Notitie",
    }
);

/// The 13 life domains of the Zelfredzaamheid-Matrix 2017, the default domain set. Only the
/// names and the 1–5 scale ship; the criteria texts are copyrighted.
pub const ZRM_2017_DOMAINS: [&str; 13] = [
    "financiën",
    "werk & opleiding",
    "tijdsbesteding",
    "huisvesting",
    "huiselijke relaties",
    "geestelijke gezondheid",
    "lichamelijke gezondheid",
    "middelengebruik",
    "basale ADL",
    "instrumentele ADL",
    "sociaal netwerk",
    "maatschappelijke participatie",
    "justitie",
];

/// A life domain as a heading: the domain's own (Dutch) name with a capital, "Financiën".
pub fn domain_label(domain: &str) -> String {
    let mut chars = domain.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

pub const SCORE_MIN: i64 = 1;
pub const SCORE_MAX: i64 = 5;

/// Names, titles, organisations: one line of text.
pub const SHORT_TEXT_MAX_CHARS: usize = 200;
/// Notes, agreements, descriptions: generous, but a plan must stay small enough to open fast.
pub const LONG_TEXT_MAX_CHARS: usize = 20_000;
/// A domain set is configuration, not data: a handful of entries.
pub const MAX_DOMAINS: usize = 64;

/// Entries of one collection a device may add to: members, participants, goals, actions,
/// agreements, safety items, the notes of one compartment, ZRM scores, escalation steps. Two
/// busy years of a plan hold a few hundred notes and, for a family of eight scored monthly in
/// all 13 domains, 2,500 scores.
pub const MAX_ENTITIES: usize = 10_000;
/// Objects nested in objects. The layout nests three deep (`notes` → a note → its text).
pub const MAX_NESTING: usize = 8;
/// Characters of a map key. The longest the layout writes is a score key:
/// member (16) `|` domain (≤ 200) `|` date (10) = 228.
pub const MAX_KEY_CHARS: usize = 256;
/// Bytes of one received change. One edit writes at most two long texts (a safety item):
/// 2 × 20,000 characters of up to 4 bytes, far below this.
pub const MAX_CHANGE_BYTES: usize = 1024 * 1024;
/// Bytes of a document's columns (what `save` writes before compressing; the memory a loaded
/// document takes grows with it). Sized from a measured busy plan: 200 home-visit notes of
/// 2,000 characters, each typed on a phone one keystroke (one change) at a time, take about
/// 0.75 MB, so two busy years fit five times over. A device refuses edits to a document that
/// reached it (`ValidationError::DocumentFull`).
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// How many times a local limit a received document may reach in texts, entry counts and
/// size: concurrent edits from devices that each stayed within a limit merge into more (two
/// workers typing into one note offline, each near its limit). Values written whole (a
/// one-line value, the domain list) meet the local limit exactly.
pub const RECEIVED_HEADROOM: usize = 2;
/// The largest received document: its columns, and so also its saved form, which therefore
/// always fits in one snapshot bundle (`eenplan_protocol::bundle::MAX_BUNDLE_LEN`, 16 MiB).
pub const MAX_RECEIVED_DOCUMENT_BYTES: usize = MAX_DOCUMENT_BYTES * RECEIVED_HEADROOM;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_dutch_label_and_unknown_codes_show_as_they_are() {
        assert_eq!(Phase::Afschaling.label(), "Afschaling of overdracht");
        assert_eq!(ActionStatus::label_of("done"), "Gedaan");
        assert_eq!(Role::label_of("zvh_procesregisseur"), "Procesregisseur Zorg- en Veiligheidshuis");
        assert_eq!(Phase::label_of("iets_nieuws"), "iets_nieuws");
        for role in Role::ALL {
            assert_ne!(role.label(), role.as_str(), "{role} has a label of its own");
        }
        assert_eq!(domain_label("financiën"), "Financiën");
        assert_eq!(domain_label("basale ADL"), "Basale ADL");
    }
}

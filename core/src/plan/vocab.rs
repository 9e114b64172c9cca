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
    ($(#[$doc:meta])* $name:ident, $field:expr, { $($(#[$vdoc:meta])* $variant:ident = $text:expr),+ $(,)? }) => {
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
        Aanmelding = "aanmelding",
        Triage = "triage",
        Plan = "plan",
        Uitvoering = "uitvoering",
        Evaluatie = "evaluatie",
        /// Afschaling or overdracht: scaling down or handing over.
        Afschaling = "afschaling",
        Afgesloten = "afgesloten",
    }
);

vocabulary!(
    /// How far the case has been escalated.
    EscalationLevel, "escalation level", {
        Regulier = "regulier",
        /// Lokaal: the wijkteam holds regie.
        Lokaal = "lokaal",
        ZorgEnVeiligheidshuis = "zorg_en_veiligheidshuis",
    }
);

vocabulary!(
    /// A participant's professional role, which the sharing policy maps to compartments.
    /// Regie is not a role: it is a function per plan (DESIGN §3a).
    Role, "role", {
        Wijkteam = "wijkteam",
        VeiligThuis = "veilig_thuis",
        Politie = "politie",
        Om = "om",
        RaadVoorDeKinderbescherming = "raad_kinderbescherming",
        Reclassering = "reclassering",
        Ggz = "ggz",
        Verslavingszorg = "verslavingszorg",
        PgaExpert = "pga_expert",
        /// The Zorg- en Veiligheidshuis' procesregisseur, who takes regie of escalated cases.
        ZvhProcesregisseur = "zvh_procesregisseur",
        /// A Zorg- en Veiligheidshuis staff member who prepares and records its casusoverleg.
        ZvhMedewerker = "zvh_medewerker",
        Woningcorporatie = "woningcorporatie",
        School = "school",
        Gemeente = "gemeente",
        Overig = "overig",
    }
);

vocabulary!(
    GoalStatus, "goal status", {
        Open = "open",
        InProgress = "in_progress",
        Achieved = "achieved",
        NotAchieved = "not_achieved",
        Cancelled = "cancelled",
    }
);

vocabulary!(
    ActionStatus, "action status", {
        Todo = "todo",
        InProgress = "in_progress",
        Done = "done",
        Cancelled = "cancelled",
    }
);

vocabulary!(
    NoteKind, "note kind", {
        /// Written during or right after a home visit.
        HomeVisit = "home_visit",
        Note = "note",
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

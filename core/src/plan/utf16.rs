//! Text positions in UTF-16 code units, the way Kotlin, Java, Swift's `NSString` and
//! JavaScript count them.
//!
//! The documents count text in Unicode code points (automerge's default, and what
//! [`Plan::edit_note_text`] takes). A phone's text field reports its cursor and selection in
//! UTF-16 code units instead; the two differ after any character outside the Basic
//! Multilingual Plane (an emoji, many CJK characters). Converting here, against the note's
//! current text, keeps the bindings free of counting.

use automerge::{ObjType, ROOT};

use super::read::{self, Reader};
use super::{Compartment, Plan, PlanError, ValidationError};
use crate::ids::EntityId;

/// The span of `delete` UTF-16 code units at UTF-16 offset `position` in `text`, as
/// (position, delete) in code points. A bound beyond the text or inside a surrogate pair (the
/// middle of one character) is refused.
pub fn utf16_span_to_code_points(
    text: &str,
    position: usize,
    delete: usize,
) -> Result<(usize, usize), ValidationError> {
    let end = position.saturating_add(delete);
    let (mut start_cp, mut end_cp) = (None, None);
    let (mut units, mut code_points) = (0usize, 0usize);
    for c in text.chars() {
        if units == position {
            start_cp = Some(code_points);
        }
        if units == end {
            end_cp = Some(code_points);
            break;
        }
        units += c.len_utf16();
        code_points += 1;
    }
    // The end of the text is a valid bound too.
    if units == position && start_cp.is_none() {
        start_cp = Some(code_points);
    }
    if units == end && end_cp.is_none() {
        end_cp = Some(code_points);
    }
    match (start_cp, end_cp) {
        (Some(start), Some(end)) => Ok((start, end - start)),
        _ => Err(ValidationError::TextPosition { position: end, len: text.encode_utf16().count() }),
    }
}

impl Plan {
    /// [`Plan::edit_note_text`] with `position` and `delete` in UTF-16 code units.
    pub fn edit_note_text_utf16(
        &mut self,
        compartment: Compartment,
        note: EntityId,
        position: usize,
        delete: usize,
        insert: &str,
    ) -> Result<(), PlanError> {
        let current = {
            let reader = Reader::new(self.doc(compartment)?, compartment);
            let notes = reader.required_object(&ROOT, read::NOTES, ObjType::Map)?;
            let obj = reader
                .object(&notes, &note.to_string(), ObjType::Map)?
                .ok_or(ValidationError::UnknownNote(note, compartment))?;
            reader.text(&obj, "text")?
        };
        let (position, delete) = utf16_span_to_code_points(&current, position, delete)?;
        self.edit_note_text(compartment, note, position, delete, insert)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::ids::{DeviceId, PlanId};
    use crate::plan::NoteKind;

    #[test]
    fn ascii_offsets_are_the_same_in_both_counts() {
        assert_eq!(utf16_span_to_code_points("Huisbezoek", 5, 3), Ok((5, 3)));
        assert_eq!(utf16_span_to_code_points("Huisbezoek", 10, 0), Ok((10, 0)));
        assert_eq!(utf16_span_to_code_points("", 0, 0), Ok((0, 0)));
    }

    #[test]
    fn a_character_outside_the_bmp_counts_two_utf16_units_and_one_code_point() {
        // "Sanne 😀 lacht": the emoji is two UTF-16 units at 6..8.
        let text = "Sanne 😀 lacht";
        assert_eq!(utf16_span_to_code_points(text, 6, 2), Ok((6, 1)));
        assert_eq!(utf16_span_to_code_points(text, 9, 5), Ok((8, 5)));
        assert_eq!(utf16_span_to_code_points(text, 14, 0), Ok((13, 0)));
    }

    #[test]
    fn a_bound_inside_a_surrogate_pair_or_past_the_end_is_refused() {
        let text = "a😀b";
        assert!(matches!(utf16_span_to_code_points(text, 2, 0), Err(ValidationError::TextPosition { .. })));
        assert!(matches!(utf16_span_to_code_points(text, 1, 1), Err(ValidationError::TextPosition { .. })));
        assert!(matches!(utf16_span_to_code_points(text, 5, 0), Err(ValidationError::TextPosition { .. })));
        assert!(matches!(
            utf16_span_to_code_points(text, usize::MAX, usize::MAX),
            Err(ValidationError::TextPosition { .. })
        ));
    }

    #[test]
    fn a_note_edited_at_utf16_offsets_changes_the_characters_the_phone_meant() {
        let mut plan = Plan::create(
            PlanId::random(),
            DeviceId::from_bytes([7; 16]),
            "Jansen",
            None,
            Arc::new(SystemClock),
        )
        .unwrap();
        let note = plan.add_note(Compartment::Basis, NoteKind::HomeVisit, "Sanne 😀 lacht").unwrap();
        // A Kotlin cursor after the emoji is offset 8; replace " lacht" (6 units) there.
        plan.edit_note_text_utf16(Compartment::Basis, note, 8, 6, " huilt").unwrap();
        let view = plan.view().unwrap();
        assert_eq!(view.notes[0].text, "Sanne 😀 huilt");
        let unknown = EntityId::random();
        assert!(plan.edit_note_text_utf16(Compartment::Basis, unknown, 0, 0, "x").is_err());
    }
}

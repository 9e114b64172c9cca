//! A review as lines: "3 dec 14:02  Wim de Vries (Wijkteam Noord): zette de status van actie
//! ‘Huur betalen’ op Gedaan". Times are UTC (this host has no time zone database).

use eenplan_core::review::Review;

use super::Lines;

const MONTHS: [&str; 12] =
    ["jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"];

/// "3 dec 14:02", with the year when it is not the year of `now_ms`.
fn when(ms: i64, now_ms: i64) -> String {
    let at = |ms: i64| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok();
    let Some(t) = at(ms) else { return format!("{ms} ms") };
    let month = MONTHS.get(usize::from(u8::from(t.month())) - 1).copied().unwrap_or("?");
    let year = match at(now_ms) {
        Some(now) if now.year() == t.year() => String::new(),
        _ => format!(" {}", t.year()),
    };
    format!("{} {month}{year} {:02}:{:02}", t.day(), t.hour(), t.minute())
}

pub fn review_text(review: &Review) -> String {
    if review.lines.is_empty() {
        return "Niets nieuw sinds uw laatste review.".into();
    }
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp().saturating_mul(1000);
    let mut out = Lines::default();
    if review.left_out > 0 {
        out.line(0, format!("({} oudere regels weggelaten)", review.left_out));
    }
    for line in &review.lines {
        out.line(0, format!("{}  {}: {}", when(line.at_ms, now_ms), line.who_label(), line.text));
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_day_month_and_clock_with_the_year_only_when_it_is_another() {
        // 2026-12-03T14:02:00Z
        let ms = 1_796_306_520_000;
        assert_eq!(when(ms, ms), "3 dec 14:02");
        assert_eq!(when(ms, ms + 365 * 86_400_000), "3 dec 2026 14:02");
    }
}

//! Dates as the family reads them: "3 december 2026".

use time::{Date, Duration, Month, OffsetDateTime, Time};

const MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];

fn words(date: Date) -> String {
    let month = MONTHS[usize::from(u8::from(date.month())) - 1];
    format!("{} {month} {}", date.day(), date.year())
}

/// A YYYY-MM-DD date in Dutch words; anything else (a date a newer app wrote some other way)
/// as it is.
pub fn dutch_date(iso: &str) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(iso.trim(), &format).map_or_else(|_| iso.trim().to_owned(), words)
}

/// The day in the Netherlands of a time in ms since the epoch: a copy printed at half past
/// midnight carries that day, not UTC's yesterday.
fn day_of_ms(ms: i64) -> Date {
    let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let offset = if summer_time(utc) { Duration::hours(2) } else { Duration::hours(1) };
    utc.checked_add(offset).unwrap_or(utc).date()
}

/// Central European Summer Time: from 01:00 UTC on the last Sunday of March to 01:00 UTC on
/// the last Sunday of October (the EU rule; no time-zone database needed for one zone).
fn summer_time(utc: OffsetDateTime) -> bool {
    let switch = |month| {
        let last = Date::from_calendar_date(utc.year(), month, 31).ok()?;
        let sunday = last - Duration::days(i64::from(last.weekday().number_days_from_sunday()));
        Some(sunday.with_time(Time::from_hms(1, 0, 0).ok()?).assume_utc())
    };
    match (switch(Month::March), switch(Month::October)) {
        (Some(start), Some(end)) => start <= utc && utc < end,
        _ => false,
    }
}

/// The day of a time in ms since the epoch, in Dutch words.
pub fn dutch_date_of_ms(ms: i64) -> String {
    words(day_of_ms(ms))
}

/// The day of a time in ms since the epoch, as YYYY-MM-DD.
pub fn iso_date_of_ms(ms: i64) -> String {
    day_of_ms(ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_dutch_words_and_unknown_forms_stay_as_they_are() {
        assert_eq!(dutch_date("2026-12-03"), "3 december 2026");
        assert_eq!(dutch_date("2027-03-15"), "15 maart 2027");
        assert_eq!(dutch_date("volgende week"), "volgende week");
        assert_eq!(iso_date_of_ms(1_796_256_000_000), "2026-12-03");
        assert_eq!(dutch_date_of_ms(1_796_256_000_000), "3 december 2026");
        // 23:30 UTC is already the next day in Amsterdam, in winter (+1) and summer (+2).
        assert_eq!(iso_date_of_ms(1_796_254_200_000), "2026-12-03");
        assert_eq!(iso_date_of_ms(1_785_796_200_000), "2026-08-04");
        assert_eq!(iso_date_of_ms(1_796_250_600_000), "2026-12-02", "22:30 UTC is 23:30 in winter");
    }
}

//! Calendar days as the people who use eenplan count them: in the Netherlands' own time.
//! What is due "today" or "this week" turns over at midnight in Amsterdam, not in UTC.
//!
//! The Netherlands keeps Central European Time (UTC+1) and summer time (UTC+2) from the last
//! Sunday of March to the last Sunday of October, switching at 01:00 UTC (EU directive
//! 2000/84/EC). That fixed rule is all this needs; no time-zone database ships with the app.

use time::{Date, Duration, Month, OffsetDateTime, Weekday};

/// The date in the Netherlands at `ms` since the Unix epoch (UTC).
pub fn dutch_date(ms: i64) -> Date {
    let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let offset_hours = if in_summer_time(utc) { 2 } else { 1 };
    (utc + Duration::hours(offset_hours)).date()
}

/// `YYYY-MM-DD` of [`dutch_date`].
pub fn dutch_date_string(ms: i64) -> String {
    dutch_date(ms).to_string()
}

fn in_summer_time(utc: OffsetDateTime) -> bool {
    let year = utc.year();
    let (Some(start), Some(end)) = (last_sunday(year, Month::March), last_sunday(year, Month::October))
    else {
        return false;
    };
    let switch = |day: Date| day.with_hms(1, 0, 0).map(|t| t.assume_utc());
    match (switch(start), switch(end)) {
        (Ok(start), Ok(end)) => utc >= start && utc < end,
        _ => false,
    }
}

fn last_sunday(year: i32, month: Month) -> Option<Date> {
    let last = Date::from_calendar_date(year, month, month.length(year)).ok()?;
    let back = last.weekday().number_days_from_sunday();
    last.checked_sub(Duration::days(i64::from(back))).filter(|d| d.weekday() == Weekday::Sunday)
}

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

/// "2026-12-03" → "3 december 2026"; text that is not such a date is returned as it is.
pub fn dutch_long_date(date: &str) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match Date::parse(date.trim(), &format) {
        Ok(d) => format!("{} {} {}", d.day(), MONTHS[usize::from(u8::from(d.month())) - 1], d.year()),
        Err(_) => date.to_owned(),
    }
}

/// The day of a time in ms since the epoch, in the Netherlands, in Dutch words.
pub fn dutch_long_date_of_ms(ms: i64) -> String {
    dutch_long_date(&dutch_date_string(ms))
}

/// A YYYY-MM-DD text as a date, if it is one.
pub fn parse_date(date: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(date.trim(), &format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
    }

    #[test]
    fn the_day_turns_at_midnight_in_amsterdam_in_winter_and_in_summer() {
        assert_eq!(dutch_date_string(ms("2026-12-03T22:59:00Z")), "2026-12-03");
        assert_eq!(dutch_date_string(ms("2026-12-03T23:00:00Z")), "2026-12-04");
        assert_eq!(dutch_date_string(ms("2026-07-01T21:59:00Z")), "2026-07-01");
        assert_eq!(dutch_date_string(ms("2026-07-01T22:00:00Z")), "2026-07-02");
        // Summer time starts on the last Sunday of March 2026 (the 29th) at 01:00 UTC.
        assert_eq!(dutch_date_string(ms("2026-03-28T23:30:00Z")), "2026-03-29");
        assert_eq!(dutch_date_string(ms("2026-03-29T22:30:00Z")), "2026-03-30");
    }

    #[test]
    fn dates_read_as_people_say_them() {
        assert_eq!(dutch_long_date("2026-12-03"), "3 december 2026");
        assert_eq!(dutch_long_date("2027-01-15"), "15 januari 2027");
        assert_eq!(dutch_long_date("morgen"), "morgen");
        assert_eq!(dutch_long_date_of_ms(1_796_256_000_000), "3 december 2026");
        // 23:30 UTC is already the next day in Amsterdam; 22:30 UTC in winter is not.
        assert_eq!(dutch_date_string(1_796_254_200_000), "2026-12-03");
        assert_eq!(dutch_date_string(1_796_250_600_000), "2026-12-02");
        assert_eq!(dutch_date_string(1_785_796_200_000), "2026-08-04");
    }
}

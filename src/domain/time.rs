//! Timestamps: RFC 3339 UTC with milliseconds (`2026-11-25T16:37:48.123Z`). Stored as text
//! in this exact shape, so text order is time order in SQL.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The current time in the API's format.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Format a UTC time in the API's format.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    t.format(FORMAT)
        .expect("a UTC time always formats with a fixed description")
}

/// An RFC 3339 time (any offset, any precision) in the API's format, to compare with stored
/// times as text. Sub-millisecond precision rounds *up*: stored times have milliseconds,
/// so "at or after `12:00:00.0005`" is "at or after `12:00:00.001`". `None` if unparseable.
pub fn parse_rfc3339(raw: &str) -> Option<String> {
    let t = OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()?;
    let t = t.to_offset(time::UtcOffset::UTC);
    let sub_ms = t.nanosecond() % 1_000_000;
    let t = if sub_ms == 0 {
        t
    } else {
        t.checked_add(time::Duration::nanoseconds(i64::from(1_000_000 - sub_ms)))?
    };
    // Only four-digit years fit the stored shape (and sort as text).
    (0..=9999).contains(&t.year()).then(|| format_rfc3339(t))
}

/// A time given as nanoseconds since the Unix epoch (OTLP's `time_unix_nano`) in the API's
/// format; `None` for 0 (OTLP's "unknown") and for times outside four-digit years.
pub fn from_unix_nanos(nanos: u64) -> Option<String> {
    if nanos == 0 {
        return None;
    }
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).ok()?;
    (0..=9999).contains(&t.year()).then(|| format_rfc3339(t))
}

/// An API-format time moved back by `millis` (a call's start from its end and duration).
pub fn minus_millis(time: &str, millis: i64) -> Option<String> {
    let t = OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()?;
    let t = t.checked_sub(time::Duration::milliseconds(millis.max(0)))?;
    (0..=9999).contains(&t.year()).then(|| format_rfc3339(t))
}

/// A time as stored by any writer, in the API's shape. The API writes exactly that shape
/// (returned as is, without parsing); other programs write what SQLite reads as a time:
/// `datetime('now')`'s `YYYY-MM-DD HH:MM:SS` (UTC), with or without fractions, `T` or a
/// space, `Z`, a numeric offset or no zone (UTC, as SQLite assumes), or a bare date.
/// Anything else is returned as written: an odd time costs its own field, never the row.
pub fn normalize_stored(raw: String) -> String {
    if is_api_shape(&raw) {
        return raw;
    }
    parse_stored(&raw).map_or(raw, format_rfc3339)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, checked byte by byte (the fast path of every read).
fn is_api_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The forms SQLite's date functions read, without a zone (UTC is assumed).
const ZONELESS: &[FormatItem<'static>] = format_description!(
    "[year]-[month]-[day][first [T][t][ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
);
/// The same with a numeric offset (`+02:00`, `+0200`), as Python's `str(datetime)` writes.
const WITH_OFFSET: &[FormatItem<'static>] = format_description!(
    "[year]-[month]-[day][first [T][t][ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]][first [[offset_hour sign:mandatory]:[offset_minute]][[offset_hour sign:mandatory][offset_minute]]]"
);
const DATE_ONLY: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

fn parse_stored(raw: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::{Date, PrimitiveDateTime, UtcOffset};
    let s = raw.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.to_offset(UtcOffset::UTC));
    }
    if let Ok(t) = OffsetDateTime::parse(s, WITH_OFFSET) {
        return Some(t.to_offset(UtcOffset::UTC));
    }
    let zoneless = s.strip_suffix(['Z', 'z']).unwrap_or(s);
    if let Ok(t) = PrimitiveDateTime::parse(zoneless, ZONELESS) {
        return Some(t.assume_utc());
    }
    Date::parse(s, DATE_ONLY)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

#[cfg(test)]
mod stored_time_tests {
    use super::normalize_stored;

    #[track_caller]
    fn reads_as(raw: &str, expected: &str) {
        assert_eq!(normalize_stored(raw.to_owned()), expected, "{raw}");
    }

    #[test]
    fn sqlite_datetime_now_reads_as_rfc3339_with_milliseconds() {
        reads_as("2026-11-25 16:37:48", "2026-11-25T16:37:48.000Z");
        reads_as("2026-11-25 16:37:48.5", "2026-11-25T16:37:48.500Z");
        reads_as("2026-11-25 16:37", "2026-11-25T16:37:00.000Z");
    }

    #[test]
    fn other_writers_forms_are_converted_to_utc() {
        reads_as("2026-11-25T16:37:48.123456", "2026-11-25T16:37:48.123Z");
        reads_as("2026-11-25T18:37:48+02:00", "2026-11-25T16:37:48.000Z");
        reads_as("2026-11-25 18:37:48.250+02:00", "2026-11-25T16:37:48.250Z");
        reads_as("2026-11-25 16:37:48Z", "2026-11-25T16:37:48.000Z");
        reads_as("2026-11-25", "2026-11-25T00:00:00.000Z");
    }

    #[test]
    fn the_api_shape_is_kept_and_non_times_are_returned_as_written() {
        reads_as("2026-11-25T16:37:48.123Z", "2026-11-25T16:37:48.123Z");
        reads_as("yesterday", "yesterday");
        reads_as("", "");
        reads_as("2026-13-45 99:00:00", "2026-13-45 99:00:00");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_have_milliseconds_and_a_z() {
        let t = datetime!(2026-11-25 16:37:48.123456 UTC);
        assert_eq!(format_rfc3339(t), "2026-11-25T16:37:48.123Z");
        assert_eq!(now_rfc3339().len(), 24);
    }

    #[test]
    fn rfc3339_input_is_normalised_to_utc_milliseconds_rounding_up() {
        assert_eq!(
            parse_rfc3339("2026-11-25T18:37:48+02:00").unwrap(),
            "2026-11-25T16:37:48.000Z"
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T16:37:48.1231z").unwrap(),
            "2026-11-25T16:37:48.124Z"
        );
        for bad in ["yesterday", "2026-11-25", "2026-11-25 16:37:48", ""] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}

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

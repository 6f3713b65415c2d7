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
}

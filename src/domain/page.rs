//! Pagination: `limit` (1..=1000, default 100) and `offset` (≥ 0, default 0).

use std::fmt;

/// A validated page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// A query parameter of a page that is out of range or not a number: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    /// `limit` or `offset`.
    pub parameter: &'static str,
    pub message: String,
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PageError {}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1000;

    /// Parse the raw query values; a bad value is an error (a 400 at the API), never a
    /// silent clamp.
    pub fn parse(limit: Option<&str>, offset: Option<&str>) -> Result<Self, PageError> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=Self::MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(PageError {
                        parameter: "limit",
                        message: format!(
                            "limit must be an integer from 1 to {} (got {raw:?})",
                            Self::MAX_LIMIT
                        ),
                    })
                }
            },
        };
        let offset = match offset {
            None => 0,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if n >= 0 => n,
                _ => {
                    return Err(PageError {
                        parameter: "offset",
                        message: format!("offset must be a non-negative integer (got {raw:?})"),
                    })
                }
            },
        };
        Ok(Page { limit, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn defaults_are_100_and_0() {
        assert_eq!(
            Page::parse(None, None).unwrap(),
            Page {
                limit: 100,
                offset: 0
            }
        );
    }

    #[test]
    fn out_of_range_values_are_refused_not_clamped() {
        for bad in ["0", "1001", "-1", "ten", ""] {
            assert_eq!(Page::parse(Some(bad), None).unwrap_err().parameter, "limit");
        }
        assert_eq!(
            Page::parse(None, Some("-1")).unwrap_err().parameter,
            "offset"
        );
        assert_eq!(Page::parse(Some("1000"), Some("5")).unwrap().limit, 1000);
    }
}

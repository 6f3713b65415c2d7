//! Query-string parameters, percent-decoded. Unknown parameters are ignored (contract).

use crate::domain::Id;
use crate::error::ApiError;

/// Decoded query parameters; when a name repeats, the first value counts.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Self {
        Query {
            pairs: form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An enum-valued filter: a value outside the set is a 400 listing the set.
    pub fn enum_filter<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: impl Fn() -> String,
    ) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => parse(raw).map(Some).ok_or_else(|| {
                ApiError::bad_query(
                    name,
                    format!("{name} must be one of {} (got {raw:?})", allowed()),
                )
            }),
        }
    }

    /// An id-valued filter: a non-UUID is a 400.
    pub fn id_filter(&self, name: &str) -> Result<Option<Id>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => Id::parse(raw).map(Some).ok_or_else(|| {
                ApiError::bad_query(name, format!("{name} must be a UUID (got {raw:?})"))
            }),
        }
    }

    /// A free-text filter: must not be empty when given.
    pub fn text_filter(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("") => Err(ApiError::bad_query(
                name,
                format!("{name} must not be empty"),
            )),
            Some(raw) => Ok(Some(raw.to_owned())),
        }
    }

    /// An integer in `range`, or `default` when absent.
    pub fn int_in(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(ApiError::bad_query(
                    name,
                    format!(
                        "{name} must be an integer from {} to {} (got {raw:?})",
                        range.start(),
                        range.end()
                    ),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Query;
    use crate::domain::RunStatus;

    #[test]
    fn values_are_percent_decoded_and_the_first_repeat_wins() {
        let q = Query::parse("session_id=a%20b&x=1&x=2");
        assert_eq!(q.get("session_id"), Some("a b"));
        assert_eq!(q.get("x"), Some("1"));
    }

    #[test]
    fn an_enum_filter_outside_its_set_is_a_400() {
        let q = Query::parse("status=wizard");
        let err = q
            .enum_filter("status", RunStatus::parse, RunStatus::list)
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message.contains("initializing"));
    }
}

//! An agent definition's name.

/// A name of 1..=128 characters that is not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentName(String);

impl AgentName {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(s: String) -> Result<Self, String> {
        let chars = s.chars().count();
        if chars == 0 || s.trim().is_empty() {
            return Err("name must not be empty".into());
        }
        if chars > Self::MAX_CHARS {
            return Err(format!(
                "name must be at most {} characters (got {chars})",
                Self::MAX_CHARS
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("name must not contain control characters".into());
        }
        Ok(AgentName(s))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl AsRef<str> for AgentName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::AgentName;

    #[test]
    fn a_name_longer_than_128_chars_is_rejected() {
        assert!(AgentName::parse("x".repeat(129)).is_err());
        assert!(AgentName::parse("é".repeat(128)).is_ok());
    }

    #[test]
    fn an_empty_or_blank_name_is_rejected() {
        assert!(AgentName::parse(String::new()).is_err());
        assert!(AgentName::parse("   ".into()).is_err());
    }
}

//! Application names: Spin's rule, checked with an error that says it, and a valid name
//! suggested from an invalid one.

use std::fmt::Write as _;

use anyhow::{bail, Result};

/// True when `name` matches `^[a-z][a-z0-9]*(-[a-z0-9]+)*$`: lower-case kebab case
/// starting with a letter, as Spin requires of application names.
pub fn is_valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// Ok for a valid name ([`is_valid_name`]); otherwise an error that says the rule and,
/// when one can be derived, suggests a valid name.
pub fn validate_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        return Ok(());
    }
    let mut message = format!(
        "invalid application name {name:?}: Spin needs lower-case kebab case starting with \
         a letter (a-z, 0-9, single hyphens between)"
    );
    if let Some(suggestion) = suggest_name(name) {
        let _ = write!(message, ", e.g. {suggestion:?}");
    }
    bail!(message)
}

/// A valid name close to `name` (lower-cased, other characters turned into single
/// hyphens, leading non-letters dropped), or None when nothing is left.
pub fn suggest_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || (c.is_ascii_digit() && !out.is_empty()) {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    is_valid_name(&out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_spins_rule() {
        for good in ["a", "my-app", "app2", "a1-b2-c3", "agent-orchestrator"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "", "-a", "a-", "a--b", "1app", "My-App", "my_app", "my app", "my.app", "é",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(suggest_name("My_App 2").as_deref(), Some("my-app-2"));
        assert_eq!(suggest_name("2cool").as_deref(), Some("cool"));
        assert_eq!(suggest_name("__"), None);
    }
}

//! A definition's policy: what its agents may spend, which tool calls are refused, which
//! wait for a person, and how long a finished turn waits for a follow-up.
//!
//! `{"max_cost_usd": 5.0, "deny_tools": ["Bash(rm -rf:*)"], "ask_tools": ["Write"],
//!   "hold_on_stop_secs": 0}`; every field optional. A run's `config.policy` overrides its
//! definition's field by field.

use serde_json::{json, Map, Value as Json};

use super::rule::Rule;

/// The most rules one list may hold.
pub const MAX_RULES: usize = 256;
/// The longest a Stop may be held for a follow-up, in seconds (an hour).
pub const MAX_HOLD_ON_STOP_SECS: u64 = 3600;

const FIELDS: &[&str] = &[
    "max_cost_usd",
    "deny_tools",
    "ask_tools",
    "hold_on_stop_secs",
];

/// A policy as the steering reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub max_cost_usd: Option<f64>,
    pub deny_tools: Vec<Rule>,
    pub ask_tools: Vec<Rule>,
    pub hold_on_stop_secs: u64,
}

/// Why a policy was refused: the field (`policy.deny_tools[2]`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

impl Policy {
    /// Validate a policy a client sent (`field` names it in errors: `policy` or
    /// `config.policy`); returns its canonical JSON (rules trimmed, unknown fields refused).
    pub fn validate(value: &Json, field: &str) -> Result<Json, PolicyError> {
        let err = |sub: &str, message: String| PolicyError {
            field: if sub.is_empty() {
                field.to_owned()
            } else {
                format!("{field}.{sub}")
            },
            message,
        };
        let Json::Object(fields) = value else {
            return Err(err("", format!("{field} must be a JSON object")));
        };
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(err(
                unknown,
                format!(
                    "{unknown:?} is not a policy field; accepted: {}",
                    FIELDS.join(", ")
                ),
            ));
        }
        let mut out = Map::new();
        match fields.get("max_cost_usd") {
            None | Some(Json::Null) => {}
            Some(v) => match v.as_f64().filter(|n| n.is_finite() && *n >= 0.0) {
                Some(n) => {
                    out.insert("max_cost_usd".into(), json!(n));
                }
                None => {
                    return Err(err(
                        "max_cost_usd",
                        "max_cost_usd must be a number ≥ 0 (US dollars)".into(),
                    ))
                }
            },
        }
        for list in ["deny_tools", "ask_tools"] {
            match fields.get(list) {
                None | Some(Json::Null) => {}
                Some(Json::Array(items)) => {
                    if items.len() > MAX_RULES {
                        return Err(err(list, format!("{list} holds at most {MAX_RULES} rules")));
                    }
                    let mut rules = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("{list}[{i}]");
                        let Some(text) = item.as_str() else {
                            return Err(err(&at, format!("{field}.{at} must be a string")));
                        };
                        let rule = Rule::parse(text)
                            .map_err(|m| err(&at, format!("invalid rule {text:?}: {m}")))?;
                        rules.push(json!(rule.as_str()));
                    }
                    out.insert(list.into(), Json::Array(rules));
                }
                Some(_) => {
                    return Err(err(
                        list,
                        format!("{list} must be an array of rules such as \"Bash(rm -rf:*)\""),
                    ))
                }
            }
        }
        match fields.get("hold_on_stop_secs") {
            None | Some(Json::Null) => {}
            Some(v) => match v.as_u64().filter(|n| *n <= MAX_HOLD_ON_STOP_SECS) {
                Some(n) => {
                    out.insert("hold_on_stop_secs".into(), json!(n));
                }
                None => {
                    return Err(err(
                        "hold_on_stop_secs",
                        format!(
                            "hold_on_stop_secs must be a whole number of seconds from 0 to {MAX_HOLD_ON_STOP_SECS}"
                        ),
                    ))
                }
            },
        }
        Ok(Json::Object(out))
    }

    /// The policy in force for a run: the definition's, with the run's own fields on top.
    /// Read leniently: what another program stored and the schema admits (a rule that no
    /// longer parses, a field of the wrong type) is skipped, never an error.
    pub fn effective(definition: Option<&Json>, run: Option<&Json>) -> Policy {
        let mut policy = Policy::default();
        for layer in [definition, run].into_iter().flatten() {
            let Some(fields) = layer.as_object() else {
                continue;
            };
            if let Some(v) = fields.get("max_cost_usd") {
                policy.max_cost_usd = v.as_f64().filter(|n| n.is_finite() && *n >= 0.0);
            }
            if let Some(Json::Array(items)) = fields.get("deny_tools") {
                policy.deny_tools = rules(items);
            }
            if let Some(Json::Array(items)) = fields.get("ask_tools") {
                policy.ask_tools = rules(items);
            }
            if let Some(v) = fields.get("hold_on_stop_secs").and_then(Json::as_u64) {
                policy.hold_on_stop_secs = v.min(MAX_HOLD_ON_STOP_SECS);
            }
        }
        policy
    }

    /// The first rule of `list` a call matches.
    pub fn first_match<'a>(
        list: &'a [Rule],
        tool: &str,
        input: &Json,
        cwd: Option<&str>,
    ) -> Option<&'a Rule> {
        list.iter().find(|rule| rule.matches(tool, input, cwd))
    }
}

fn rules(items: &[Json]) -> Vec<Rule> {
    items
        .iter()
        .filter_map(Json::as_str)
        .filter_map(|text| Rule::parse(text).ok())
        .take(MAX_RULES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_policy_is_kept_in_canonical_form() {
        let canonical = Policy::validate(
            &json!({"max_cost_usd": 5, "deny_tools": [" Bash(rm -rf:*) "], "ask_tools": [],
                    "hold_on_stop_secs": 30}),
            "policy",
        )
        .unwrap();
        assert_eq!(
            canonical,
            json!({"max_cost_usd": 5.0, "deny_tools": ["Bash(rm -rf:*)"], "ask_tools": [],
                   "hold_on_stop_secs": 30})
        );
    }

    #[test]
    fn a_bad_rule_is_named_with_its_place() {
        let err =
            Policy::validate(&json!({"ask_tools": ["Write", "Bash("]}), "policy").unwrap_err();
        assert_eq!(err.field, "policy.ask_tools[1]");
        assert!(err.message.contains("Bash("), "{}", err.message);
        let err = Policy::validate(&json!({"max_cost": 1}), "config.policy").unwrap_err();
        assert_eq!(err.field, "config.policy.max_cost");
        assert!(Policy::validate(&json!({"max_cost_usd": -1}), "policy").is_err());
        assert!(Policy::validate(&json!({"hold_on_stop_secs": 999_999}), "policy").is_err());
        assert!(Policy::validate(&json!([]), "policy").is_err());
    }

    #[test]
    fn a_runs_fields_override_its_definitions_and_junk_is_skipped() {
        let definition = json!({"max_cost_usd": 5.0, "deny_tools": ["WebFetch", "Bash("],
                                "hold_on_stop_secs": 10});
        let run = json!({"max_cost_usd": 1.0, "deny_tools": "not a list"});
        let policy = Policy::effective(Some(&definition), Some(&run));
        assert_eq!(policy.max_cost_usd, Some(1.0));
        assert_eq!(
            policy.deny_tools.len(),
            1,
            "the unparseable rule is skipped"
        );
        assert_eq!(policy.hold_on_stop_secs, 10);
        assert_eq!(Policy::effective(None, None), Policy::default());
    }
}

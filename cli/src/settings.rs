//! Where configuration comes from: the environment (with `.env` read first, never
//! overriding what is already set), mapped onto the app's Spin variables.

use std::collections::HashMap;

/// Read `.env` from the working directory if present. Variables already in the
/// environment win, as with every dotenv tool.
pub fn load_dotenv() {
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("warning: cannot read .env: {err}");
        }
    }
}

/// Structured logs on stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The project's configuration names and the Spin variables they set.
pub const VARIABLE_NAMES: &[(&str, &str)] = &[
    ("WEB_UI_PORT", "web_ui_port"),
    ("CORS_ORIGINS", "cors_origins"),
    ("ORCHESTRATOR_API_TOKEN", "api_token"),
    ("MAX_BODY_BYTES", "max_body_bytes"),
    ("RETENTION_DAYS", "retention_days"),
    ("APPROVAL_WAIT_SECS", "approval_wait_secs"),
    ("RUNNER_LEASE_SECS", "runner_lease_secs"),
];

/// Spin variable overrides from an environment: `SPIN_VARIABLE_X` sets `x` (as Spin does),
/// then the project's names of [`VARIABLE_NAMES`] win over those.
pub fn spin_variables(env: impl Iterator<Item = (String, String)>) -> HashMap<String, String> {
    let env: Vec<(String, String)> = env.collect();
    let mut vars = HashMap::new();
    for (key, value) in &env {
        if let Some(name) = key.strip_prefix("SPIN_VARIABLE_") {
            vars.insert(name.to_ascii_lowercase(), value.clone());
        }
    }
    for (env_name, var) in VARIABLE_NAMES {
        if let Some((_, value)) = env.iter().find(|(k, _)| k == env_name) {
            vars.insert((*var).to_owned(), value.clone());
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_override_spin_variable_names() {
        let env = [
            ("SPIN_VARIABLE_WEB_UI_PORT", "3000"),
            ("WEB_UI_PORT", "4000"),
            ("SPIN_VARIABLE_OTHER", "x"),
            ("ORCHESTRATOR_API_TOKEN", "t"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let vars = spin_variables(env.into_iter());
        assert_eq!(vars["web_ui_port"], "4000");
        assert_eq!(vars["other"], "x");
        assert_eq!(vars["api_token"], "t");
        assert!(!vars.contains_key("cors_origins"));
    }
}

//! Settings the components read from Spin variables (lower snake case, as Spin requires).

use std::time::Duration;

/// What the API needs to know about its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bearer token for `/api` (and the sidecar's `/ws`); `None` means open.
    pub api_token: Option<String>,
    /// Origins allowed by CORS (exact match, e.g. `http://localhost:5173`).
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How long an SSE stream lasts before it ends itself (under every host's deadline).
    pub sse_max_duration: Duration,
    /// Silence after which an SSE stream sends a `: keep-alive` comment.
    pub sse_keepalive: Duration,
    /// Days a final run (and a system log) is kept after its last activity; 0 keeps
    /// everything (`POST /api/admin/prune` applies it).
    pub retention_days: u32,
    /// How long a runner's claim lasts without a heartbeat (`runner_lease_secs`); a run
    /// whose lease passes is failed, "runner lost".
    pub runner_lease: Duration,
    /// How long a Claude Code hook is held for a person's decision on an approval
    /// (`approval_wait_secs`); then it answers with no decision and the approval expires.
    pub approval_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_token: None,
            allowed_origins: Self::web_ui_origins(Self::DEFAULT_WEB_UI_PORT),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            sse_max_duration: Self::DEFAULT_SSE_MAX_DURATION,
            sse_keepalive: Self::DEFAULT_SSE_KEEPALIVE,
            retention_days: crate::store::retention::DEFAULT_DAYS,
            runner_lease: crate::store::dispatches::DEFAULT_LEASE,
            approval_wait: Self::DEFAULT_APPROVAL_WAIT,
        }
    }
}

impl Config {
    pub const DEFAULT_WEB_UI_PORT: u16 = 5173;
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    pub const DEFAULT_SSE_MAX_DURATION: Duration = Duration::from_secs(50);
    pub const DEFAULT_SSE_KEEPALIVE: Duration = Duration::from_secs(15);
    /// How long a hook waits for a person's decision on an approval (APPROVAL_WAIT_SECS).
    pub const DEFAULT_APPROVAL_WAIT: Duration = Duration::from_secs(300);

    fn web_ui_origins(port: u16) -> Vec<String> {
        vec![
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}"),
        ]
    }

    /// Build the configuration from the Spin variables `api_token`, `cors_origins`,
    /// `web_ui_port`, `max_body_bytes`, `sse_max_seconds`, `sse_keepalive_seconds`,
    /// `retention_days` and `runner_lease_secs`
    /// (`get` returns `None` or `""` for unset).
    /// A malformed value is an operator error, reported with the variable's name.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let port = match non_empty("web_ui_port") {
            None => Self::DEFAULT_WEB_UI_PORT,
            Some(v) => v
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("variable web_ui_port must be a port number, got {v:?}"))?,
        };
        let mut allowed_origins = Self::web_ui_origins(port);
        if let Some(extra) = non_empty("cors_origins") {
            allowed_origins.extend(
                extra
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty()),
            );
        }
        let max_body_bytes = match non_empty("max_body_bytes") {
            None => Self::DEFAULT_MAX_BODY_BYTES,
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                format!("variable max_body_bytes must be a number of bytes, got {v:?}")
            })?,
        };
        let seconds = |name: &str, default: Duration| match non_empty(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    format!("variable {name} must be a positive number of seconds, got {v:?}")
                }),
        };
        Ok(Config {
            api_token: non_empty("api_token"),
            allowed_origins,
            max_body_bytes,
            sse_max_duration: seconds("sse_max_seconds", Self::DEFAULT_SSE_MAX_DURATION)?,
            sse_keepalive: seconds("sse_keepalive_seconds", Self::DEFAULT_SSE_KEEPALIVE)?,
            retention_days: crate::store::retention::parse_days(get("retention_days").as_deref())
                .map_err(|e| format!("variable {e}"))?,
            approval_wait: seconds("approval_wait_secs", Self::DEFAULT_APPROVAL_WAIT)?,
            runner_lease: seconds("runner_lease_secs", crate::store::dispatches::DEFAULT_LEASE)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn unset_variables_give_the_documented_defaults() {
        let config = Config::from_variables(|_| None).unwrap();
        assert_eq!(config, Config::default());
        assert!(config
            .allowed_origins
            .contains(&"http://127.0.0.1:5173".to_owned()));
    }

    #[test]
    fn extra_origins_and_a_port_are_read() {
        let config = Config::from_variables(|name| match name {
            "web_ui_port" => Some("3000".into()),
            "cors_origins" => Some("https://a.example, https://b.example/".into()),
            "api_token" => Some("".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            config.allowed_origins,
            [
                "http://localhost:3000",
                "http://127.0.0.1:3000",
                "https://a.example",
                "https://b.example"
            ]
        );
        assert_eq!(config.api_token, None);
    }

    #[test]
    fn retention_days_default_to_30_zero_keeps_everything_and_junk_is_refused() {
        assert_eq!(Config::from_variables(|_| None).unwrap().retention_days, 30);
        let zero = Config::from_variables(|n| (n == "retention_days").then(|| "0".into()));
        assert_eq!(zero.unwrap().retention_days, 0);
        for bad in ["-1", "ten", "1.5", "99999999"] {
            let err = Config::from_variables(|n| (n == "retention_days").then(|| bad.into()));
            assert!(err.unwrap_err().contains("retention_days"), "{bad}");
        }
    }

    #[test]
    fn a_malformed_port_names_the_variable() {
        let err = Config::from_variables(|n| (n == "web_ui_port").then(|| "http".into()));
        assert!(err.unwrap_err().contains("web_ui_port"));
    }
}

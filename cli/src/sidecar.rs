//! `orchestrator sidecar`: only the WebSocket bridge, in front of any API base URL; and
//! the sidecar configuration `up` starts its own with.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use orchestrator_core::Config;
use orchestrator_sidecar::{Sidecar, SidecarConfig};

use crate::args::FeedArgs;
use crate::shutdown::Shutdown;

#[derive(clap::Args, Debug, Clone)]
pub struct SidecarArgs {
    /// Base URL of the API to follow, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub upstream: String,
    /// Address to listen on (default 127.0.0.1:WEBSOCKET_PORT).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Seconds each upstream long-poll waits (1..=30); keep it under the API's request
    /// deadline. A poll the deadline still ends (504) teaches the sidecar a shorter one.
    #[arg(long, default_value_t = 25)]
    pub upstream_wait: u64,
    #[command(flatten)]
    pub feed: FeedArgs,
}

pub async fn run(args: SidecarArgs) -> Result<()> {
    raise_open_file_limit();
    let listen = args.listen.unwrap_or(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        args.feed.websocket_port,
    ));
    let mut config = config(&args.feed, args.upstream.clone(), listen);
    config.poll_wait = Duration::from_secs(args.upstream_wait);
    let sidecar = Sidecar::start(config).await?;
    println!(
        "WebSocket: ws://{}/ws/agent-status following {}",
        sidecar.local_addr(),
        args.upstream
    );
    sidecar.serve(Shutdown::on_signals().wait()).await
}

/// The sidecar following `upstream` on `listen`, with the feed's token, origins and
/// heartbeat.
pub fn config(feed: &FeedArgs, upstream: String, listen: SocketAddr) -> SidecarConfig {
    let mut config = SidecarConfig::new(upstream, listen);
    config.token = feed.api_token.clone().filter(|t| !t.is_empty());
    config.allowed_origins = allowed_origins(feed);
    config.heartbeat = Duration::from_secs(feed.heartbeat_secs.max(1));
    config
}

/// The origins the API allows with the same settings (the core decides, so the two agree).
fn allowed_origins(feed: &FeedArgs) -> Vec<String> {
    let token = feed.api_token.clone().unwrap_or_default();
    let cors = feed.cors_origins.clone();
    let port = feed.web_ui_port.to_string();
    Config::from_variables(|name| match name {
        "web_ui_port" => Some(port.clone()),
        "cors_origins" => Some(cors.clone()),
        "api_token" => Some(token.clone()),
        _ => None,
    })
    .map(|c| c.allowed_origins)
    .unwrap_or_default()
}

/// So that a thousand WebSocket clients fit: as far as the system allows.
pub fn raise_open_file_limit() {
    match orchestrator_sidecar::raise_open_file_limit() {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(err) => tracing::warn!(%err, "cannot raise the open-file limit"),
    }
}

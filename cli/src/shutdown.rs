//! One shutdown signal (SIGINT or SIGTERM) shared by every server `up` runs.

use tokio::sync::watch;

/// A cloneable "shutdown has begun" signal.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Listen for SIGINT/SIGTERM; the returned signal fires on the first of them.
    pub fn on_signals() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    /// Resolves once shutdown has begun.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

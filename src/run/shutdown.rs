//! SIGINT and SIGTERM: the first stops new work, a second quits at once.

use crate::error::{exit_now, Exit};
use crate::output::Output;

/// Resolves on the first SIGINT or SIGTERM; a second one ends the process
/// at once (the next run marks what was in flight `uncertain`).
pub async fn graceful_shutdown(output: Output) {
    shutdown_signal().await;
    output.notice("stopping: no new batches; in-flight attempts finish and are recorded (signal again to quit at once)");
    tokio::spawn(async move {
        shutdown_signal().await;
        output.notice("quitting at once: the next run marks batches that were in flight uncertain");
        exit_now(Exit::TryLater);
    });
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

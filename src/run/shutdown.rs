//! SIGINT and SIGTERM: the first stops new work, a second quits at once.

use std::future::Future;

use crate::error::{exit_now, Exit};
use crate::output::Output;

/// Listens for SIGINT and SIGTERM from now on: the returned future resolves
/// on the first; a second one ends the process at once (the next run marks
/// what was in flight `uncertain`).
pub fn graceful_shutdown(output: Output) -> impl Future<Output = ()> + Send + 'static {
    let first = shutdown_signal();
    async move {
        first.await;
        output.notice("stopping: no new batches; in-flight attempts finish and are recorded (signal again to quit at once)");
        let second = shutdown_signal();
        tokio::spawn(async move {
            second.await;
            output.notice(
                "quitting at once: the next run marks batches that were in flight uncertain",
            );
            exit_now(Exit::TryLater);
        });
    }
}

/// Listens for SIGINT and SIGTERM from now on (a command announces that
/// it is ready only after this): the returned future resolves on the
/// first that arrives after the call, even before it is first polled.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        // A signal whose handler could not be installed keeps its default
        // action; the other still stops the command gracefully.
        async fn received(signal: Option<&mut Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        async move {
            tokio::select! {
                _ = received(interrupt.as_mut()) => {}
                _ = received(terminate.as_mut()) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

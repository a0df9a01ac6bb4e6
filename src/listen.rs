//! Taking connections on a listener without spinning: when accepting fails
//! (the process ran out of file descriptors, the kernel out of memory),
//! the loop backs off up to a second and says so at most once a second,
//! instead of retrying at once and flooding the log.
//!
//! It knows nothing of what the connections carry.

use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// The first wait after a failed accept; it doubles up to [`MOST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(5);
const MOST_WAIT: Duration = Duration::from_secs(1);
/// At most one warning in this long.
const SAY_EVERY: Duration = Duration::from_secs(1);

/// A listener that backs off when accepting fails.
pub struct Acceptor {
    listener: TcpListener,
    /// Who listens, for the warning (`webhook`, `sandbox`).
    who: &'static str,
    wait: Duration,
    last_said: Option<Instant>,
    /// Failures since the last warning.
    unsaid: u64,
}

impl Acceptor {
    pub fn new(listener: TcpListener, who: &'static str) -> Acceptor {
        Acceptor {
            listener,
            who,
            wait: FIRST_WAIT,
            last_said: None,
            unsaid: 0,
        }
    }

    /// The next connection; failures in between are waited out.
    pub async fn accept(&mut self) -> TcpStream {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    self.wait = FIRST_WAIT;
                    return stream;
                }
                Err(e) => {
                    self.unsaid += 1;
                    if self.last_said.is_none_or(|at| at.elapsed() >= SAY_EVERY) {
                        tracing::warn!(
                            error = %e,
                            failures = self.unsaid,
                            "{}: cannot accept connections (waiting up to {:?} between tries)",
                            self.who,
                            MOST_WAIT
                        );
                        self.last_said = Some(Instant::now());
                        self.unsaid = 0;
                    }
                    tokio::time::sleep(self.wait).await;
                    self.wait = (self.wait * 2).min(MOST_WAIT);
                }
            }
        }
    }
}

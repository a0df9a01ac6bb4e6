//! One run per campaign at a time: the lease a run holds while it ingests
//! and sends, renewed by a heartbeat, taken over only from a run that is
//! gone (no heartbeat for `lease.stale_after_ms`, or a dead process on
//! this host).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ledger::{CampaignId, LeaseGrant, LeaseHolder, Ledger, LedgerError};
use crate::nxlink::client::now_ms;

/// A held lease. Dropping it stops the heartbeat; `release` also gives the
/// lease back at once.
#[derive(Debug)]
pub struct Lease {
    ledger: Ledger,
    campaign: CampaignId,
    owner: String,
    heartbeat: JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

/// What asking for a campaign gave.
#[derive(Debug)]
pub enum Acquired {
    /// Ours; `took_over` is the abandoned run we replaced, if any.
    Lease {
        lease: Lease,
        took_over: Option<LeaseHolder>,
    },
    /// A live run holds it.
    Busy(LeaseHolder),
}

impl Lease {
    /// Takes the campaign's lease, or says who holds it.
    pub async fn acquire(
        ledger: &Ledger,
        campaign: CampaignId,
        stale_after: Duration,
    ) -> Result<Acquired, LedgerError> {
        let host = hostname();
        let pid = std::process::id();
        let now = now_ms();
        let me = LeaseHolder {
            owner: format!("{host}:{pid}:{:016x}", rand::random::<u64>()),
            host: host.clone(),
            pid,
            acquired_at_ms: now,
            heartbeat_ms: now,
        };
        let grant = ledger
            .acquire_lease(campaign, &me, |holder| {
                abandoned(holder, now, stale_after, &host)
            })
            .await?;
        let took_over = match grant {
            LeaseGrant::Held(holder) => return Ok(Acquired::Busy(holder)),
            LeaseGrant::Acquired { took_over } => took_over,
        };
        let (lost_tx, lost) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(
            ledger.clone(),
            campaign,
            me.owner.clone(),
            stale_after / 4,
            lost_tx,
        ));
        Ok(Acquired::Lease {
            lease: Lease {
                ledger: ledger.clone(),
                campaign,
                owner: me.owner,
                heartbeat,
                lost,
            },
            took_over,
        })
    }

    /// Resolves if another run took the lease (this one was presumed dead):
    /// the caller must stop sending.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        // An error means the heartbeat ended without losing the lease.
        if lost.wait_for(|lost| *lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Stops the heartbeat and gives the lease back.
    pub async fn release(self) -> Result<(), LedgerError> {
        self.heartbeat.abort();
        self.ledger.release_lease(self.campaign, &self.owner).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

async fn heartbeat(
    ledger: Ledger,
    campaign: CampaignId,
    owner: String,
    every: Duration,
    lost: watch::Sender<bool>,
) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match ledger.renew_lease(campaign, &owner, now_ms()).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = lost.send(true);
                return;
            }
            // A busy or failing ledger: try again at the next beat; the
            // lease only goes stale after several missed beats.
            Err(e) => tracing::warn!(error = %e, "cannot renew the campaign lease"),
        }
    }
}

/// A holder is gone when its heartbeat is too old, or when it ran on this
/// host and its process no longer exists.
fn abandoned(holder: &LeaseHolder, now_ms: i64, stale_after: Duration, host: &str) -> bool {
    let silent_for = now_ms.saturating_sub(holder.heartbeat_ms);
    silent_for > stale_after.as_millis() as i64
        || (holder.host == host && !process_alive(holder.pid))
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// Without /proc, only the heartbeat can tell.
#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    true
}

/// This machine's name, for leases and the re-send log.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(host: &str, pid: u32, heartbeat_ms: i64) -> LeaseHolder {
        LeaseHolder {
            owner: "x".into(),
            host: host.into(),
            pid,
            acquired_at_ms: 0,
            heartbeat_ms,
        }
    }

    #[test]
    fn a_holder_is_abandoned_when_silent_too_long_or_dead_on_this_host() {
        let minute = Duration::from_secs(60);
        let me = std::process::id();
        assert!(!abandoned(
            &holder("here", me, 100_000),
            130_000,
            minute,
            "here"
        ));
        assert!(abandoned(
            &holder("here", me, 100_000),
            170_001,
            minute,
            "here"
        ));
        // A pid that cannot exist on this host.
        assert!(abandoned(
            &holder("here", u32::MAX, 100_000),
            100_000,
            minute,
            "here"
        ));
        // On another host only the heartbeat counts.
        assert!(!abandoned(
            &holder("there", u32::MAX, 100_000),
            100_000,
            minute,
            "here"
        ));
    }
}

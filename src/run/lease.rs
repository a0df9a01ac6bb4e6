//! One run per campaign at a time: the lease a run holds while it ingests
//! and sends, renewed by a heartbeat, and taken over only from a run that
//! is gone: its process is dead on this host, or its heartbeat counter did
//! not move for `lease.stale_after_ms` as measured on the taker's own
//! monotonic clock. Wall clocks of two processes are never compared to take
//! a lease; a holder whose wall-clock heartbeat looks recent is busy at once.
//!
//! Every ledger write of a run checks the lease in its own transaction
//! ([`Fence`]), so a run that was taken over (paused, or with a clock far
//! off) writes nothing more, and takes no batch to send.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::ledger::{CampaignId, Fence, LeaseGrant, LeaseHolder, Ledger, LedgerError, Runners};

/// A held lease. Dropping it stops the heartbeat; `release` also gives the
/// lease back at once.
#[derive(Debug)]
pub struct Lease {
    ledger: Ledger,
    fence: Fence,
    heartbeat: JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

/// What asking for a campaign gave.
#[derive(Debug)]
pub enum Acquired {
    /// Ours; `took_over` is the run we replaced, if any, and `recovered`
    /// counts its batches that were being sent, now `uncertain`.
    Lease {
        lease: Lease,
        took_over: Option<TakenOver>,
        recovered: u64,
    },
    /// A live run holds it.
    Busy(LeaseHolder),
}

/// A run whose lease was taken.
#[derive(Debug, Clone)]
pub struct TakenOver {
    pub holder: LeaseHolder,
    /// Whether its process was seen dead; otherwise it was silent, and may
    /// still live (paused).
    pub dead: bool,
    /// Until when an operator may not re-send what it was sending (Unix ms).
    pub resend_after_ms: i64,
}

/// How a lease is judged and fenced.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// A holder whose heartbeat counter stays still this long is gone.
    pub stale_after: Duration,
    /// How long after it was sent a request may still be accepted by the
    /// vendor (its `ts` window).
    pub clock_window: Duration,
}

impl LeaseSettings {
    /// How long after taking over from a run that may live an operator must
    /// wait before re-sending its batches: the vendor's window twice (its
    /// requests carry a `ts` from its own clock, which may itself be up to a
    /// window off) and once more as a margin for the operator's clock.
    pub fn resend_fence(&self) -> Duration {
        self.clock_window * 3
    }
}

impl Lease {
    /// Takes the campaign's lease, or says who holds it. `watching` is told
    /// when a silent holder is about to be watched (it takes `stale_after`).
    pub async fn acquire(
        ledger: &Ledger,
        campaign: CampaignId,
        settings: LeaseSettings,
        watching: &mut dyn FnMut(&LeaseHolder),
    ) -> Result<Acquired, LedgerError> {
        let host = hostname();
        let pid = std::process::id();
        let owner = format!("{host}:{pid}:{:016x}", rand::random::<u64>());
        loop {
            let holder = ledger.lease_holder(campaign).await?;
            let taken_over = match holder {
                None => None,
                Some(holder) if holder.host == host && !process_alive(holder.pid) => {
                    Some(TakenOver {
                        holder,
                        dead: true,
                        resend_after_ms: 0,
                    })
                }
                Some(holder) if heartbeat_looks_recent(&holder, now_ms(), settings.stale_after) => {
                    return Ok(Acquired::Busy(holder))
                }
                Some(holder) => {
                    watching(&holder);
                    match watch_heartbeat(ledger, campaign, &holder, settings.stale_after).await? {
                        Watched::Silent => Some(TakenOver {
                            holder,
                            dead: false,
                            resend_after_ms: now_ms() + settings.resend_fence().as_millis() as i64,
                        }),
                        Watched::Beating(alive) => return Ok(Acquired::Busy(alive)),
                        Watched::Changed => continue,
                    }
                }
            };
            let now = now_ms();
            let me = LeaseHolder {
                owner: owner.clone(),
                host: host.clone(),
                pid,
                acquired_at_ms: now,
                heartbeat_ms: now,
                beats: 0,
            };
            let resend_after_ms = taken_over.as_ref().map_or(0, |t| t.resend_after_ms);
            let grant = ledger
                .take_lease(
                    campaign,
                    &me,
                    taken_over.as_ref().map(|t| &t.holder),
                    resend_after_ms,
                )
                .await?;
            let recovered = match grant {
                LeaseGrant::Changed => continue,
                LeaseGrant::Acquired { recovered, .. } => recovered,
            };
            let fence = Fence { campaign, owner };
            let (lost_tx, lost) = watch::channel(false);
            let heartbeat = tokio::spawn(heartbeat(
                ledger.clone(),
                fence.clone(),
                settings.stale_after / 4,
                lost_tx,
            ));
            return Ok(Acquired::Lease {
                lease: Lease {
                    ledger: ledger.clone(),
                    fence,
                    heartbeat,
                    lost,
                },
                took_over: taken_over,
                recovered,
            });
        }
    }

    /// What every write of this run shows the ledger.
    pub fn fence(&self) -> &Fence {
        &self.fence
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
        self.ledger.release_lease(&self.fence).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// One of several runners of a campaign on a server ledger. Each runner
/// has its own lease (a row with a heartbeat); every write of the runner
/// checks it. A watcher presumes other runners dead as [`Lease::acquire`]
/// does (dead on this host, or a heartbeat counter still for
/// `stale_after` on this process's own monotonic clock), and their
/// `sending` batches become `uncertain`.
#[derive(Debug)]
pub struct Runner {
    runners: Runners,
    fence: Fence,
    heartbeat: JoinHandle<()>,
    watcher: JoinHandle<()>,
    lost: watch::Receiver<bool>,
    /// How long a request of this runner may still be accepted after it
    /// was signed.
    clock_window: std::time::Duration,
}

/// What a runner's watcher tells: a runner it presumed dead, and how many
/// of its batches became `uncertain`.
pub type OnPresumedDead = Box<dyn Fn(&TakenOver, u64) + Send + Sync>;

impl Runner {
    /// Registers this process as a runner of the campaign, and starts its
    /// heartbeat and its watch over the other runners.
    pub async fn join(
        ledger: &Ledger,
        runners: &Runners,
        campaign: CampaignId,
        settings: LeaseSettings,
        on_presumed_dead: OnPresumedDead,
    ) -> Result<Runner, LedgerError> {
        let host = hostname();
        let pid = std::process::id();
        let now = now_ms();
        let me = LeaseHolder {
            owner: format!("{host}:{pid}:{:016x}", rand::random::<u64>()),
            host,
            pid,
            acquired_at_ms: now,
            heartbeat_ms: now,
            beats: 0,
        };
        runners.join(campaign, &me).await?;
        let fence = Fence {
            campaign,
            owner: me.owner.clone(),
        };
        let (lost_tx, lost) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(
            ledger.clone(),
            fence.clone(),
            settings.stale_after / 4,
            lost_tx,
        ));
        let clock_window = settings.clock_window;
        let watcher = tokio::spawn(watch_runners(
            runners.clone(),
            me,
            campaign,
            settings,
            on_presumed_dead,
        ));
        Ok(Runner {
            runners: runners.clone(),
            fence,
            heartbeat,
            watcher,
            lost,
            clock_window,
        })
    }

    /// What every write of this runner shows the ledger.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Resolves if another runner presumed this one dead: the caller must
    /// stop sending.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        if lost.wait_for(|lost| *lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Stops the heartbeat and the watch, and unregisters; a batch it
    /// could not record (the ledger failed) becomes `uncertain`.
    pub async fn release(self) -> Result<(), LedgerError> {
        self.heartbeat.abort();
        self.watcher.abort();
        let now = now_ms();
        let recovered = self
            .runners
            .leave(&self.fence, now + self.clock_window.as_millis() as i64, now)
            .await?;
        if recovered > 0 {
            tracing::warn!(
                batches = recovered,
                "left batches whose replies could not be recorded: they are uncertain now"
            );
        }
        Ok(())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.heartbeat.abort();
        self.watcher.abort();
    }
}

/// Watches the campaign's other runners and presumes dead those that are
/// gone: on this host with no process, or whose heartbeat counter did not
/// move for `stale_after` by this process's monotonic clock.
async fn watch_runners(
    runners: Runners,
    me: LeaseHolder,
    campaign: CampaignId,
    settings: LeaseSettings,
    on_presumed_dead: OnPresumedDead,
) {
    let every =
        (settings.stale_after / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
    // Each other runner's counter as last seen, and since when.
    let mut seen: std::collections::HashMap<String, (i64, Instant)> = Default::default();
    loop {
        let others = match runners.list(campaign).await {
            Ok(others) => others,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the campaign's runners");
                tokio::time::sleep(every).await;
                continue;
            }
        };
        seen.retain(|owner, _| others.iter().any(|r| &r.owner == owner));
        for runner in others.into_iter().filter(|r| r.owner != me.owner) {
            let dead = runner.host == me.host && !process_alive(runner.pid);
            let since = match seen.get(&runner.owner) {
                Some((beats, since)) if *beats == runner.beats => *since,
                _ => {
                    seen.insert(runner.owner.clone(), (runner.beats, Instant::now()));
                    Instant::now()
                }
            };
            let silent = since.elapsed() >= settings.stale_after;
            if !dead && !silent {
                continue;
            }
            let resend_after_ms = if dead {
                0
            } else {
                now_ms() + settings.resend_fence().as_millis() as i64
            };
            match runners
                .presume_dead(campaign, &runner, resend_after_ms, now_ms())
                .await
            {
                Ok(Some(recovered)) => {
                    seen.remove(&runner.owner);
                    let gone = TakenOver {
                        holder: runner,
                        dead,
                        resend_after_ms,
                    };
                    on_presumed_dead(&gone, recovered);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot presume a silent runner dead"),
            }
        }
        tokio::time::sleep(every).await;
    }
}

async fn heartbeat(ledger: Ledger, fence: Fence, every: Duration, lost: watch::Sender<bool>) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match ledger.renew_lease(&fence, now_ms()).await {
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

/// What watching a holder's heartbeat showed.
enum Watched {
    /// Its counter did not move for the whole time: it is gone.
    Silent,
    /// Its counter moved: it lives.
    Beating(LeaseHolder),
    /// The lease was given back or taken by another run meanwhile.
    Changed,
}

/// Watches `holder`'s heartbeat counter for `stale_after`, on this
/// process's monotonic clock.
async fn watch_heartbeat(
    ledger: &Ledger,
    campaign: CampaignId,
    holder: &LeaseHolder,
    stale_after: Duration,
) -> Result<Watched, LedgerError> {
    let until = Instant::now() + stale_after;
    let every = (stale_after / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
    loop {
        tokio::time::sleep(every.min(until.saturating_duration_since(Instant::now()))).await;
        match ledger.lease_holder(campaign).await? {
            Some(now) if now.owner == holder.owner && now.beats == holder.beats => {}
            Some(now) if now.owner == holder.owner => return Ok(Watched::Beating(now)),
            _ => return Ok(Watched::Changed),
        }
        if Instant::now() >= until {
            return Ok(Watched::Silent);
        }
    }
}

/// Whether the holder's last heartbeat, by its own clock, is within
/// `stale_after` of ours either way. Used only to say "busy" at once; a
/// holder that does not look recent is watched before it is taken over, so
/// a clock that differs only delays a takeover, never hastens one.
fn heartbeat_looks_recent(holder: &LeaseHolder, now_ms: i64, stale_after: Duration) -> bool {
    now_ms.abs_diff(holder.heartbeat_ms) <= stale_after.as_millis() as u64
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

/// Names this host in leases, where runs on one host judge each other by
/// their process ids: set it where hosts share a name but not their
/// processes (containers given one hostname).
pub const HOST_VAR: &str = "NXCAMPAIGN_HOSTNAME";

/// This machine's name, for leases and the re-send log: `NXCAMPAIGN_HOSTNAME`,
/// else the kernel's.
pub fn hostname() -> String {
    if let Some(name) = std::env::var(HOST_VAR)
        .ok()
        .filter(|n| !n.trim().is_empty())
    {
        return name.trim().to_owned();
    }
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

    fn holder(heartbeat_ms: i64) -> LeaseHolder {
        LeaseHolder {
            owner: "x".into(),
            host: "here".into(),
            pid: 1,
            acquired_at_ms: 0,
            heartbeat_ms,
            beats: 0,
        }
    }

    #[test]
    fn a_heartbeat_looks_recent_within_stale_after_either_way() {
        let minute = Duration::from_secs(60);
        assert!(heartbeat_looks_recent(&holder(100_000), 130_000, minute));
        assert!(heartbeat_looks_recent(&holder(160_000), 130_000, minute));
        assert!(!heartbeat_looks_recent(&holder(100_000), 170_001, minute));
        // A clock far ahead of ours is not "recent": it is watched.
        assert!(!heartbeat_looks_recent(&holder(800_000), 130_000, minute));
    }

    #[test]
    fn a_process_that_cannot_exist_is_not_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
    }

    #[test]
    fn the_resend_fence_is_three_vendor_windows() {
        let settings = LeaseSettings {
            stale_after: Duration::from_secs(60),
            clock_window: Duration::from_secs(60),
        };
        assert_eq!(settings.resend_fence(), Duration::from_secs(180));
    }
}

//! Ledger side of the campaign lease: who holds it, taking it (only from
//! the holder the taker watched), renewing it, giving it back, and the
//! fence every write of a run checks in its own transaction.

use rusqlite::{params, Connection, OptionalExtension as _};

use super::{CampaignId, LedgerError, Sqlite};
use crate::ledger::model::{Fence, LeaseGrant, LeaseHolder};
use crate::state::{BatchState, Verdict};

/// Selects the holder of campaign `?1`.
const HOLDER: &str =
    "SELECT owner, host, pid, acquired_at_ms, heartbeat_ms, beats FROM leases WHERE campaign_id = ?";

impl Sqlite {
    /// The campaign's lease holder, if any.
    pub async fn lease_holder(
        &self,
        campaign: CampaignId,
    ) -> Result<Option<LeaseHolder>, LedgerError> {
        self.read(move |this, conn| this.holder_on(conn, campaign))
            .await
    }

    /// Takes the campaign's lease for `me` if its holder is still exactly
    /// `expected` (same run, same heartbeat count; `None`: no holder), in
    /// one write transaction. Batches left in `sending` become `uncertain`
    /// in the same transaction, not to be re-sent by an operator before
    /// `resend_after_ms`.
    pub async fn take_lease(
        &self,
        campaign: CampaignId,
        me: &LeaseHolder,
        expected: Option<&LeaseHolder>,
        resend_after_ms: i64,
    ) -> Result<LeaseGrant, LedgerError> {
        let me = me.clone();
        let expected = expected.cloned();
        self.write(move |this, tx| {
            let e = this.error();
            let holder = this.holder_on(tx, campaign)?;
            if holder != expected {
                return Ok(LeaseGrant::Changed);
            }
            tx.execute(
                "INSERT INTO leases (campaign_id, owner, host, pid, acquired_at_ms, heartbeat_ms, beats)
                 VALUES (?, ?, ?, ?, ?, ?, 0)
                 ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid,
                     acquired_at_ms = excluded.acquired_at_ms, heartbeat_ms = excluded.heartbeat_ms, beats = 0",
                params![campaign.0, me.owner, me.host, me.pid, me.acquired_at_ms, me.heartbeat_ms],
            )
            .map_err(e)?;
            tx.execute(
                "UPDATE attempts SET decision = ?, message = 'the run ended before the reply was recorded'
                 WHERE campaign_id = ? AND decision IS NULL",
                params![Verdict::Interrupted.as_str(), campaign.0],
            )
            .map_err(e)?;
            let recovered = tx
                .execute(
                    "UPDATE batches SET state = ?, updated_at_ms = ?, resend_after_ms = ?,
                            message = 'a run ended or lost its lease while this batch was being sent; it may have arrived'
                     WHERE campaign_id = ? AND state = ?",
                    params![
                        BatchState::Uncertain.as_str(),
                        me.acquired_at_ms,
                        resend_after_ms,
                        campaign.0,
                        BatchState::Sending.as_str(),
                    ],
                )
                .map_err(e)?;
            Ok(LeaseGrant::Acquired {
                took_over: holder,
                recovered: recovered as u64,
            })
        })
        .await
    }

    /// Renews the lease (time and counter); false when it is no longer
    /// `fence`'s.
    pub async fn renew_lease(&self, fence: &Fence, now_ms: i64) -> Result<bool, LedgerError> {
        self.check_file()?;
        let fence = fence.clone();
        self.read(move |this, conn| {
            let renewed = conn
                .execute(
                    "UPDATE leases SET heartbeat_ms = ?, beats = beats + 1 WHERE campaign_id = ? AND owner = ?",
                    params![now_ms, fence.campaign.0, fence.owner],
                )
                .map_err(this.error())?;
            Ok(renewed == 1)
        })
        .await
    }

    /// Gives the lease back if it is still `fence`'s.
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), LedgerError> {
        let fence = fence.clone();
        self.read(move |this, conn| {
            conn.execute(
                "DELETE FROM leases WHERE campaign_id = ? AND owner = ?",
                params![fence.campaign.0, fence.owner],
            )
            .map_err(this.error())?;
            Ok(())
        })
        .await
    }

    /// Fails with `LeaseLost` unless `fence` still holds its campaign; call
    /// it inside the write transaction it guards.
    pub(super) fn check_fence_on(
        &self,
        conn: &Connection,
        fence: &Fence,
    ) -> Result<(), LedgerError> {
        match self.holder_on(conn, fence.campaign)? {
            Some(holder) if holder.owner == fence.owner => Ok(()),
            holder => Err(LedgerError::LeaseLost {
                path: self.path.clone(),
                by: holder.map_or_else(
                    || "(which has finished since)".to_owned(),
                    |h| format!("(pid {} on {})", h.pid, h.host),
                ),
            }),
        }
    }

    /// The campaign's lease holder, read on `conn`.
    fn holder_on(
        &self,
        conn: &Connection,
        campaign: CampaignId,
    ) -> Result<Option<LeaseHolder>, LedgerError> {
        conn.query_row(HOLDER, [campaign.0], |row| {
            Ok(LeaseHolder {
                owner: row.get(0)?,
                host: row.get(1)?,
                pid: row.get::<_, i64>(2)? as u32,
                acquired_at_ms: row.get(3)?,
                heartbeat_ms: row.get(4)?,
                beats: row.get(5)?,
            })
        })
        .optional()
        .map_err(self.error())
    }
}

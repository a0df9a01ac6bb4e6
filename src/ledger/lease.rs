//! Ledger side of the campaign lease: take it (or learn who holds it),
//! renew it, give it back.

use sqlx::Row as _;

use super::{CampaignId, Ledger, LedgerError};

/// Who holds (or wants) a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at_ms: i64,
    pub heartbeat_ms: i64,
}

/// What asking for the lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseGrant {
    /// It is ours; `took_over` names an abandoned holder we replaced.
    Acquired { took_over: Option<LeaseHolder> },
    /// Another run holds it and is alive.
    Held(LeaseHolder),
}

impl Ledger {
    /// Takes the campaign's lease for `me` unless a live run holds it. A
    /// holder is abandoned when `abandoned` says so (no heartbeat for too
    /// long, or a dead process on this host).
    ///
    /// Read and write happen in one write transaction, so two runs asking at
    /// once cannot both get it.
    pub async fn acquire_lease(
        &self,
        campaign: CampaignId,
        me: &LeaseHolder,
        abandoned: impl Fn(&LeaseHolder) -> bool,
    ) -> Result<LeaseGrant, LedgerError> {
        let mut tx = self.write_transaction().await?;
        let holder = sqlx::query(
            "SELECT owner, host, pid, acquired_at_ms, heartbeat_ms FROM leases WHERE campaign_id = ?",
        )
        .bind(campaign.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?
        .map(|row| LeaseHolder {
            owner: row.get(0),
            host: row.get(1),
            pid: row.get::<i64, _>(2) as u32,
            acquired_at_ms: row.get(3),
            heartbeat_ms: row.get(4),
        });
        if let Some(holder) = &holder {
            if holder.owner != me.owner && !abandoned(holder) {
                return Ok(LeaseGrant::Held(holder.clone()));
            }
        }
        sqlx::query(
            "INSERT INTO leases (campaign_id, owner, host, pid, acquired_at_ms, heartbeat_ms) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid,
                 acquired_at_ms = excluded.acquired_at_ms, heartbeat_ms = excluded.heartbeat_ms",
        )
        .bind(campaign.0)
        .bind(&me.owner)
        .bind(&me.host)
        .bind(me.pid)
        .bind(me.acquired_at_ms)
        .bind(me.heartbeat_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(LeaseGrant::Acquired {
            took_over: holder.filter(|h| h.owner != me.owner),
        })
    }

    /// Renews the lease; false when it is no longer `owner`'s.
    pub async fn renew_lease(
        &self,
        campaign: CampaignId,
        owner: &str,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        let renewed =
            sqlx::query("UPDATE leases SET heartbeat_ms = ? WHERE campaign_id = ? AND owner = ?")
                .bind(now_ms)
                .bind(campaign.0)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map_err(|e| self.query_error(e))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the lease back if it is still `owner`'s.
    pub async fn release_lease(
        &self,
        campaign: CampaignId,
        owner: &str,
    ) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM leases WHERE campaign_id = ? AND owner = ?")
            .bind(campaign.0)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }
}

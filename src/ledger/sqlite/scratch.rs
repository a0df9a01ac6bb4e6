//! A throwaway ledger for `check`: the job's file is ingested into it
//! exactly as `run` would ingest it into the real one, and what the run
//! would do is read back from it. The real ledger is only read.

use crate::ledger::model::window_key_sql;
use rusqlite::params;

use super::{CampaignId, LedgerError, Sqlite};
use crate::ledger::model::{KeyKind, Preview};
use crate::state::OrderState;

/// Live orders looked up in the real ledger per round trip.
pub const KNOWN_CHUNK: usize = 5_000;

impl Sqlite {
    /// Makes this new ledger derive order ids as the ledger `salt` comes
    /// from does, so that its rows have the ids a run there would give them.
    pub(in crate::ledger) async fn adopt_salt(mut self, salt: &str) -> Result<Sqlite, LedgerError> {
        let adopted = salt.to_owned();
        self.write(move |this, tx| {
            tx.execute("UPDATE ledger_salt SET salt = ?", [adopted])
                .map_err(this.error())?;
            Ok(())
        })
        .await?;
        self.salt = salt.into();
        Ok(self)
    }

    /// Up to [`KNOWN_CHUNK`] live orders with a row id above `after`, in
    /// row order: (row id, phone, order id).
    pub(in crate::ledger) async fn live_orders_after(
        &self,
        campaign: CampaignId,
        after: i64,
    ) -> Result<Vec<(i64, String, String)>, LedgerError> {
        self.read(move |this, conn| {
            let e = this.error();
            let mut statement = conn
                .prepare_cached(
                    "SELECT id, phone, order_id FROM orders
                     WHERE campaign_id = ?1 AND id > ?2 AND set_aside IS NULL
                     ORDER BY id LIMIT ?3",
                )
                .map_err(e)?;
            let rows = statement
                .query_map(params![campaign.0, after, KNOWN_CHUNK as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .map_err(e)?;
            rows.collect::<Result<_, _>>().map_err(e)
        })
        .await
    }

    /// Sets these orders aside in `state`, each with its reason; their
    /// batches shrink.
    pub(in crate::ledger) async fn set_aside_as(
        &self,
        orders: Vec<(i64, String)>,
        state: OrderState,
    ) -> Result<(), LedgerError> {
        self.write(move |this, tx| {
            let e = this.error();
            let mut shrink = tx
                .prepare_cached(
                    "UPDATE batches SET size = size - 1
                     WHERE (campaign_id, seq) = (SELECT campaign_id, batch_seq FROM orders WHERE id = ?1)",
                )
                .map_err(e)?;
            let mut set_aside = tx
                .prepare_cached(
                    "UPDATE orders SET set_aside = ?2, batch_seq = NULL, reason = ?3
                     WHERE id = ?1 AND set_aside IS NULL",
                )
                .map_err(e)?;
            for (id, reason) in &orders {
                shrink.execute([id]).map_err(e)?;
                set_aside
                    .execute(params![id, state.as_str(), reason])
                    .map_err(e)?;
            }
            Ok(())
        })
        .await
    }

    /// What a run would make of the campaign's orders: the commonest
    /// reasons rows are invalid, the orders and batches to send per
    /// country, and the first batch to send.
    pub(in crate::ledger) async fn preview(
        &self,
        campaign: CampaignId,
    ) -> Result<Preview, LedgerError> {
        self.read(move |this, conn| {
            let e = this.error();
            let mut preview = Preview::default();
            let mut statement = conn
                .prepare(
                    "SELECT reason FROM orders WHERE campaign_id = ?1 AND set_aside = ?2 ORDER BY id",
                )
                .map_err(e)?;
            let mut rows = statement
                .query(params![campaign.0, OrderState::Invalid.as_str()])
                .map_err(e)?;
            while let Some(row) = rows.next().map_err(e)? {
                let reason: Option<String> = row.get(0).map_err(e)?;
                preview.count_invalid(reason.as_deref().unwrap_or("unreadable"));
            }
            let mut statement = conn
                .prepare(
                    concat!("SELECT ", window_key_sql!(), " AS window_key, COUNT(*), SUM(size) FROM batches
                     WHERE campaign_id = ?1 AND size > 0 GROUP BY window_key ORDER BY window_key"),
                )
                .map_err(e)?;
            preview.countries = statement
                .query_map([campaign.0], |row| {
                    Ok((row.get(0)?, row.get::<_, i64>(2)? as u64, row.get::<_, i64>(1)? as u64))
                })
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            let first: Option<(i64, String)> = conn
                .query_row(
                    "SELECT seq, country FROM batches WHERE campaign_id = ?1 AND size > 0 ORDER BY seq LIMIT 1",
                    [campaign.0],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(e)?;
            if let Some((seq, country)) = first {
                let orders = super::dispatch::orders_of_batch(conn, campaign.0, seq).map_err(e)?;
                preview.first_batch = Some((this.batch_seq(seq)?, country, orders));
            }
            Ok(preview)
        })
        .await
    }

    /// Which of `keys` (of one kind) the campaign's live orders hold, with
    /// the line of the order holding each.
    pub async fn known_keys(
        &self,
        campaign: CampaignId,
        kind: KeyKind,
        keys: Vec<String>,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        let keys = serde_json::to_string(&keys).expect("strings serialize");
        self.read(move |this, conn| {
            let e = this.error();
            let mut statement = conn
                .prepare_cached(
                    "SELECT key, line FROM order_keys
                     WHERE campaign_id = ?1 AND kind = ?2 AND key IN (SELECT value FROM json_each(?3))",
                )
                .map_err(e)?;
            let rows = statement
                .query_map(params![campaign.0, kind as u8, keys], |row| {
                    Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
                })
                .map_err(e)?;
            rows.collect::<Result<_, _>>().map_err(e)
        })
        .await
    }

    pub async fn order_ids_elsewhere(
        &self,
        except: Option<CampaignId>,
        ids: Vec<String>,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        let ids = serde_json::to_string(&ids).expect("strings serialize");
        let except = except.map_or(0, |c| c.0);
        self.read(move |this, conn| {
            let e = this.error();
            let mut statement = conn
                .prepare_cached(
                    "SELECT k.key, MIN(c.name) FROM json_each(?2) j
                     CROSS JOIN order_keys k ON k.kind = 1 AND k.key = j.value AND k.campaign_id <> ?1
                     CROSS JOIN campaigns c ON c.id = k.campaign_id
                     GROUP BY k.key",
                )
                .map_err(e)?;
            let rows = statement
                .query_map(params![except, ids], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(e)?;
            rows.collect::<Result<_, _>>().map_err(e)
        })
        .await
    }
}

//! A throwaway SQLite ledger in a temporary folder, for `check`: the job's
//! file goes into it exactly as `run` would put it into the real ledger,
//! which is only read.

use std::collections::{HashMap, HashSet};

use super::sqlite::Sqlite;
use super::{CampaignId, KeyKind, Ledger, LedgerError, Preview};
use crate::state::OrderState;

/// A scratch ledger; its folder is removed when it is dropped.
pub struct Scratch {
    sqlite: Sqlite,
    ledger: Ledger,
    _dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates an empty scratch ledger in the temporary folder (`TMPDIR`),
    /// deriving order ids with `salt` (the real ledger's; a new one of its
    /// own when there is no real ledger yet).
    pub async fn create(salt: Option<&str>) -> Result<Scratch, LedgerError> {
        let dir = tempfile::Builder::new()
            .prefix("nxcampaign-check-")
            .tempdir()
            .map_err(|e| LedgerError::Corrupt {
                path: std::env::temp_dir(),
                message: format!("cannot make a scratch folder for the check (set TMPDIR to another folder): {e}"),
            })?;
        let mut sqlite = Sqlite::open(&dir.path().join("check.db")).await?;
        if let Some(salt) = salt {
            sqlite = sqlite.adopt_salt(salt).await?;
        }
        Ok(Scratch {
            ledger: Ledger::Sqlite(sqlite.clone()),
            sqlite,
            _dir: dir,
        })
    }

    /// The scratch ledger, to ingest into.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Sets aside, as duplicates, the live orders whose phone or order id a
    /// live order of `known`'s campaign holds (what a run on `known` would
    /// set aside); returns how many. Memory holds one chunk of orders.
    pub async fn set_aside_known(
        &self,
        campaign: CampaignId,
        known: &Ledger,
        known_campaign: CampaignId,
    ) -> Result<u64, LedgerError> {
        self.set_aside_where(campaign, OrderState::Duplicate, |chunk| async move {
            let lookup = |kind, keys: Vec<String>| known.known_keys(known_campaign, kind, keys);
            let phones: HashMap<String, u64> = lookup(
                KeyKind::Phone,
                chunk.iter().map(|(_, phone, _)| phone.clone()).collect(),
            )
            .await?
            .into_iter()
            .collect();
            let order_ids: HashMap<String, u64> = lookup(
                KeyKind::OrderId,
                chunk.iter().map(|(_, _, order)| order.clone()).collect(),
            )
            .await?
            .into_iter()
            .collect();
            Ok(chunk
                .iter()
                .filter_map(|(id, phone, order)| {
                    let (what, line) = match (phones.get(phone), order_ids.get(order)) {
                        (Some(line), _) => ("phone", line),
                        (None, Some(line)) => ("order id", line),
                        (None, None) => return None,
                    };
                    Some((
                        *id,
                        format!("same {what} as line {line}, already in the ledger"),
                    ))
                })
                .collect())
        })
        .await
    }

    /// Sets aside, as duplicates, the live orders whose order id a campaign
    /// of `known` other than `known_campaign` holds (what a run would set
    /// aside when the ids come from the file); returns how many.
    pub async fn set_aside_used_elsewhere(
        &self,
        campaign: CampaignId,
        known: &Ledger,
        known_campaign: Option<CampaignId>,
    ) -> Result<u64, LedgerError> {
        self.set_aside_where(campaign, OrderState::Duplicate, |chunk| async move {
            let ids = chunk.iter().map(|(_, _, order)| order.clone()).collect();
            let used: HashMap<String, String> = known
                .order_ids_elsewhere(known_campaign, ids)
                .await?
                .into_iter()
                .collect();
            Ok(chunk
                .iter()
                .filter_map(|(id, _, order)| {
                    used.get(order)
                        .map(|other| (*id, format!("order id already used by campaign {other:?}")))
                })
                .collect())
        })
        .await
    }

    /// Sets aside, as suppressed, the live orders whose number `known`'s
    /// do-not-call list holds at `now_ms` for `known_campaign` (what a run
    /// there would set aside); returns how many.
    pub async fn set_aside_listed(
        &self,
        campaign: CampaignId,
        known: &Ledger,
        known_campaign: Option<CampaignId>,
        now_ms: i64,
    ) -> Result<u64, LedgerError> {
        self.set_aside_where(campaign, OrderState::Suppressed, |chunk| async move {
            let phones = chunk.iter().map(|(_, phone, _)| phone.clone()).collect();
            let listed: HashSet<String> = known
                .suppressed_among(known_campaign, phones, now_ms)
                .await?
                .into_iter()
                .collect();
            Ok(chunk
                .iter()
                .filter(|(_, phone, _)| listed.contains(phone))
                .map(|(id, _, _)| (*id, "on the ledger's do-not-call list".to_owned()))
                .collect())
        })
        .await
    }

    /// Goes through the live orders a chunk at a time; `choose` says which
    /// of a chunk's (row id, phone, order id) to set aside in `state`, and
    /// why. Returns how many it set aside.
    async fn set_aside_where<F, Fut>(
        &self,
        campaign: CampaignId,
        state: OrderState,
        mut choose: F,
    ) -> Result<u64, LedgerError>
    where
        F: FnMut(Vec<(i64, String, String)>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(i64, String)>, LedgerError>>,
    {
        let mut after = 0;
        let mut total = 0;
        loop {
            let chunk = self.sqlite.live_orders_after(campaign, after).await?;
            let Some(last) = chunk.last() else {
                return Ok(total);
            };
            after = last.0;
            let chosen = choose(chunk).await?;
            total += chosen.len() as u64;
            if !chosen.is_empty() {
                self.sqlite.set_aside_as(chosen, state).await?;
            }
        }
    }

    /// What a run would send: see [`Preview`].
    pub async fn preview(&self, campaign: CampaignId) -> Result<Preview, LedgerError> {
        self.sqlite.preview(campaign).await
    }

    /// Closes the scratch ledger; its folder goes when it is dropped.
    pub async fn close(&self) {
        self.sqlite.close().await;
    }
}

//! Redials on PostgreSQL: the walk over a campaign's contacts through a
//! cursor (see `ledger::redials`), and the due redials kept in a temporary
//! table of the transaction.

use sqlx::{PgConnection, Row as _};

use crate::ledger::redials::{ContactRow, DueRedial, Walk, CONTACT_ROWS_POSTGRES};
use crate::redial::CallSeen;

/// Rows fetched at a time.
const PAGE: usize = 5_000;

/// Walks the contacts of `campaign` (a page of rows at a time, through a
/// cursor of `tx`); with `store`, each page's due redials go to the
/// transaction's `redials_due` table before the next page is read.
pub(super) async fn walk_contacts(
    tx: &mut PgConnection,
    campaign: i64,
    walk: &mut Walk<'_>,
    store: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "DECLARE contacts_out NO SCROLL CURSOR FOR {CONTACT_ROWS_POSTGRES}"
    ))
    .bind(campaign)
    .execute(&mut *tx)
    .await?;
    loop {
        let page = sqlx::query(&format!("FETCH {PAGE} FROM contacts_out"))
            .fetch_all(&mut *tx)
            .await?;
        let mut due = Vec::new();
        for row in &page {
            due.extend(walk.take(contact_row(row)?));
        }
        if page.len() < PAGE {
            due.extend(walk.finish());
        }
        if store {
            store_due(tx, due).await?;
        }
        if page.len() < PAGE {
            break;
        }
    }
    sqlx::query("CLOSE contacts_out").execute(&mut *tx).await?;
    Ok(())
}

/// A row of [`CONTACT_ROWS_POSTGRES`] as PostgreSQL gives it.
fn contact_row(row: &sqlx::postgres::PgRow) -> Result<ContactRow, sqlx::Error> {
    let contact: i64 = row.try_get(0)?;
    Ok(if row.try_get::<i32, _>(1)? == 0 {
        ContactRow::Order {
            contact,
            row: row.try_get(2)?,
            attempt: row.try_get::<i32, _>(3)? as u32,
            country: row.try_get(4)?,
            order_id: row.try_get(5)?,
            accepted: row.try_get(6)?,
            zones: row.try_get(13)?,
        }
    } else {
        ContactRow::Call {
            contact,
            order_row: row.try_get(2)?,
            call: CallSeen {
                start_ms: row.try_get(7)?,
                end_ms: row.try_get(8)?,
                answered: row.try_get::<Option<bool>, _>(9)?.unwrap_or(false),
                hangup_code: row.try_get(10)?,
                call_status: row.try_get(11)?,
                intent: row.try_get(12)?,
                of_latest: false,
            },
        }
    })
}

/// Due redials into the temporary table, in one statement.
async fn store_due(tx: &mut sqlx::PgConnection, due: Vec<DueRedial>) -> Result<(), sqlx::Error> {
    if due.is_empty() {
        return Ok(());
    }
    let contacts: Vec<i64> = due.iter().map(|d| d.contact).collect();
    let attempts: Vec<i32> = due.iter().map(|d| d.attempt as i32).collect();
    let ids: Vec<&str> = due.iter().map(|d| d.order_id.as_str()).collect();
    let seqs: Vec<i64> = due.iter().map(|d| i64::from(d.batch_seq)).collect();
    let countries: Vec<&str> = due.iter().map(|d| d.country.as_str()).collect();
    let zones: Vec<&str> = due.iter().map(|d| d.zones.as_str()).collect();
    sqlx::query(
        "INSERT INTO redials_due (contact, attempt, order_id, batch_seq, country, zones)
         SELECT * FROM UNNEST($1::BIGINT[], $2::INTEGER[], $3::TEXT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[])",
    )
    .bind(&contacts)
    .bind(&attempts)
    .bind(&ids)
    .bind(&seqs)
    .bind(&countries)
    .bind(&zones)
    .execute(tx)
    .await
    .map(drop)
}

//! The inbox: the ids of the events received, so that a redelivery triggers nothing.

use coordinator::id::now_ms;
use coordinator::store::StoreError;

use crate::conn::SqlConn;
use crate::sql::{Arg, ms_to_db};

/// Records that `external_id` from `source` was received, on `conn` (in a transaction):
/// `true` the first time, `false` when it already was.
pub async fn record_intake<C: SqlConn>(
    conn: &mut C,
    source: &str,
    external_id: &str,
) -> Result<bool, StoreError> {
    let mut sql =
        conn.sql("INSERT INTO coordinator_inbox (source, external_id, received_at_ms) VALUES (");
    sql.bind(Arg::Text(source.to_owned()))
        .push(", ")
        .bind(Arg::Text(external_id.to_owned()))
        .push(", ")
        .bind(Arg::Int(ms_to_db(now_ms())))
        .push(") ON CONFLICT DO NOTHING");
    Ok(conn.execute("record an intake key", &sql).await? == 1)
}

/// Forgets the entries received before `received_before_ms`; returns how many.
pub async fn purge_inbox<C: SqlConn>(
    conn: &mut C,
    received_before_ms: u64,
) -> Result<u64, StoreError> {
    let mut sql = conn.sql("DELETE FROM coordinator_inbox WHERE received_at_ms < ");
    sql.bind(Arg::Int(ms_to_db(received_before_ms)));
    conn.execute("purge the inbox", &sql).await
}

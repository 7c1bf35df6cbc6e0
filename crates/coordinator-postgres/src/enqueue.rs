//! Enqueues on PostgreSQL: on a connection kept for them when it is free, else on a pooled one.
//!
//! A pooled connection is pinged each time it is returned: a round trip per enqueue. The kept
//! connection is taken out of the pool (`detach`), so the store may hold `max_connections` + 1.
//! Concurrent enqueues take pooled connections and share PostgreSQL's WAL flushes.

use std::time::Instant;

use coordinator::store::StoreError;
use coordinator::task::NewTask;
use coordinator_sql::conn::PING_IDLE_AFTER;
use coordinator_sql::tasks::enqueue::{ACTION, insert_task};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::NAME;
use crate::conn::{Conn, Detached};

/// The connection kept for enqueues made one at a time, and when it was last used.
pub(crate) type Kept = Mutex<Option<(PgConnection, Instant)>>;

/// Inserts `task` on the kept connection when it is free, else on a pooled one.
pub(crate) async fn enqueue(
    pool: &PgPool,
    kept: &Kept,
    task: &NewTask,
) -> Result<Uuid, StoreError> {
    let Ok(mut kept) = kept.try_lock() else {
        let conn = pool
            .acquire()
            .await
            .map_err(StoreError::database(NAME, ACTION))?;
        return insert_task(&mut Conn(conn), task).await;
    };
    // Like the pool: a connection idle for a while is checked before use (the server or a
    // proxy may have closed it), and replaced if it does not answer.
    let stale = match kept.as_mut() {
        Some((conn, used)) if used.elapsed() >= PING_IDLE_AFTER => {
            sqlx::Connection::ping(conn).await.is_err()
        }
        _ => false,
    };
    if stale {
        *kept = None;
    }
    let (conn, used) = match kept.as_mut() {
        Some(kept) => kept,
        None => {
            let conn = pool
                .acquire()
                .await
                .map_err(StoreError::database(NAME, ACTION))?;
            kept.insert((conn.detach(), Instant::now()))
        }
    };
    let result = insert_task(&mut Detached(conn), task).await;
    *used = Instant::now();
    if result.is_err() {
        // The connection may be broken: the next enqueue opens another.
        *kept = None;
    }
    result
}

//! What the coordinator's SQL backends share: the statement builder ([`Sql`]), the framework's
//! schema ([`schema`]), and the queries written once for every dialect ([`tasks`],
//! [`dispatches`], [`inbox`], [`migrate`]) over a connection trait ([`SqlConn`]).
//!
//! A backend crate (`coordinator-sqlite`, `coordinator-postgres`) implements [`SqlDriver`]:
//! its connections, its transactions, and what truly differs by database (enqueueing, claiming,
//! keeping migrating processes apart). [`SqlStore`] then implements every storage trait of the
//! core over it, so the backends share all the rest and never each other. This crate names no
//! driver: it compiles `sqlx` without any database.

pub mod conn;
pub mod dispatches;
pub mod driver;
pub mod inbox;
pub mod migrate;
pub mod schema;
mod sql;
mod store;
pub mod tasks;

pub use conn::{RowMap, RowRead, SqlConn};
pub use driver::SqlDriver;
pub use sql::{Arg, Dialect, Sql, ms_to_db, storable};
pub use store::SqlStore;

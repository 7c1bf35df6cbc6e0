//! The task queue's queries, written once for every dialect: enqueue, outcomes, listing and the
//! operator's actions, and the parts of claiming that the backends share.
//!
//! Claiming itself differs by backend (one statement with `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, a write transaction on SQLite's one writer) and lives in each backend's
//! `claim.rs`, built from the conditions and row readers of [`claim`].

pub mod claim;
pub mod enqueue;
pub mod listing;
pub mod operate;
pub mod outcomes;
mod rows;

pub use rows::{TASK_COLUMNS, attempt_from_row, task_from_row};

//! Store stories, each run against SQLite and (when configured) Postgres.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod commit;
mod idempotency;
mod lake_conformance;
mod shared;
mod sql;
mod writers;

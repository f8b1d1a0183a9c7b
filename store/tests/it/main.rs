//! Store stories, each run against SQLite and (when configured) Postgres.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod commit;
mod idempotency;
mod sql;
mod writers;

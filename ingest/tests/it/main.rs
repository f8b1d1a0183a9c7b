//! Ingest stories, each run against SQLite and (when configured) Postgres.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod apim;
mod appinsights;
mod costs;
mod dlp;
mod helpers;
mod hostile;
mod kong;
mod litellm;
mod otel;
mod stories;

//! The FinOps side of Tollgate: what the facts in the lake cost, and who pays.
//!
//! Reference data comes in first: the price book ([`price_book`]) is read from
//! CSV, checked whole (every problem named by line and field, nothing stored
//! unless all of it is good) and stored in the state database, replacing the
//! previous book in one transaction; the ownership mapping ([`ownership`]) says
//! which cost centre pays for a request, or that nobody does (`unallocated`).
//! Rates are exact integers ([`rate`]), and [`cost`] prices tokens and splits
//! each PTU hour with integer parts that add up exactly, so that costs add up to
//! the cent in every grouping; tokens no price covers are counted and their
//! causes named with what to import ([`unpriced`]). The chargeback ([`chargeback`]) reads the hourly
//! rollups the store maintains, never raw rows; a month close ([`close`]) freezes
//! it as a checksummed snapshot ([`snapshot`]), and later data for a closed month
//! is charged as an adjustment in the next open month. Budgets ([`budgets`]) are
//! checked as written and evaluated ([`budget_eval`]) from the same chargeback at
//! data time; their state changes become events, and each gateway's entries a
//! versioned view that the server hands out. Alert rules ([`alerts`]) judge
//! the same rollups hour by hour for operators, and the SLA report ([`sla`])
//! gives each month's availability and error budget.

// The budget evaluation awaits deep futures (a chargeback inside, then a
// generic store transaction); the default limit is too small to lay them out.
#![recursion_limit = "256"]

pub mod alerts;
pub mod budget_eval;
pub mod budgets;
pub mod capacity;
pub mod chargeback;
pub mod close;
pub mod cost;
mod csv_table;
mod error;
mod fine;
pub mod focus;
pub mod invoice;
pub mod meter;
pub mod month;
pub mod ownership;
pub mod price_book;
mod priced;
pub mod reconcile;
pub use tollgate_store::rate;
pub mod sla;
pub mod snapshot;
pub mod table;
pub mod trueup;
pub mod unpriced;
pub mod unseen;

pub use error::{ReportsError, Result};

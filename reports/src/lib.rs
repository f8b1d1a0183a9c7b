//! The FinOps side of Tollgate: what the facts in the lake cost, and who pays.
//!
//! Reference data comes in first: the price book ([`price_book`]) is read from
//! CSV, checked whole (every problem named by line and field, nothing stored
//! unless all of it is good) and stored in the state database, replacing the
//! previous book in one transaction; the ownership mapping ([`ownership`]) says
//! which cost centre pays for a request, or that nobody does (`unallocated`).
//! Rates are exact integers ([`rate`]), and [`cost`] prices tokens and splits
//! each PTU hour with integer parts that add up exactly, so that costs add up to
//! the cent in every grouping. The chargeback ([`chargeback`]) reads the hourly
//! rollups the store maintains, never raw rows; a month close ([`close`]) freezes
//! it as a checksummed snapshot ([`snapshot`]), and later data for a closed month
//! is charged as an adjustment in the next open month.

pub mod capacity;
pub mod chargeback;
pub mod close;
pub mod cost;
mod csv_table;
mod error;
mod fine;
pub mod focus;
pub mod month;
pub mod ownership;
pub mod price_book;
pub mod rate;
pub mod snapshot;

pub use error::{ReportsError, Result};

//! The FinOps side of Tollgate: what the facts in the lake cost, and who pays.
//!
//! Reference data comes in first: the price book ([`price_book`]) is read from
//! CSV, checked whole (every problem named by line and field, nothing stored
//! unless all of it is good) and stored in the state database, replacing the
//! previous book in one transaction; the ownership mapping ([`ownership`]) says
//! which cost centre pays for a request, or that nobody does (`unallocated`).
//! Rates are exact integers ([`rate`]), and [`cost`] prices tokens and splits
//! each PTU hour with integer parts that add up exactly, so that costs add up to
//! the cent in every grouping.

pub mod capacity;
pub mod chargeback;
pub mod cost;
mod csv_table;
mod error;
pub mod ownership;
pub mod price_book;
pub mod rate;

pub use error::{ReportsError, Result};

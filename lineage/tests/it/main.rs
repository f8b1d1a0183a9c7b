// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod catalog;
mod propagation;
mod stored;

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod catalog;
mod hostile;
mod propagation;
mod stored;

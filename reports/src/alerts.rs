//! Alerting for operators: rules ([`rule`]) over operational measures read
//! from the hourly rollups ([`series`]), judged hour by hour at data time by a
//! Prometheus-style state machine ([`engine`]) with burn-rate SLOs ([`burn`])
//! and a seasonal anomaly detector ([`anomaly`]); the episodes found are stored
//! with their notifications in Alertmanager's formats ([`payload`]), and a
//! firing rule's load shedding cuts budgets' per-minute limits ([`evaluate`]).
//! One kind reads the invoice instead of the rollups: a day's bill off its
//! estimate by more than a share ([`variance`]).

pub mod anomaly;
pub mod apply;
pub mod burn;
pub mod engine;
pub mod evaluate;
pub mod payload;
pub mod rule;
pub mod series;
pub mod variance;

pub use evaluate::{
    AlertOptions, AlertRun, evaluate, evaluate_bill, evaluate_live, install_rules, load_rules,
};
pub use rule::{Rule, RuleSpec, RulesFile, defaults};

//! Times the chargeback report: the store is opened once and the report run once
//! to warm up (rollups caught up, caches filled); then `N` times computed from the
//! rollups, and `N` times as a long-running process answers it (its cache checked
//! against the state's inputs version), then the month's SLA report per
//! backend `N` times; prints the medians.
//!
//!   cargo run --release --example chargeback_timing -- DATA_DIR YYYY-MM [N] [BY]
//!
//! Used by `bench/report.sh`; a benchmark, not a test.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tollgate_reports::chargeback::{ChargebackCache, chargeback, chargeback_cached};
use tollgate_reports::month::Month;
use tollgate_store::{Store, StoreConfig};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data_dir, month, rest @ ..] = args.as_slice() else {
        bail!("usage: chargeback_timing DATA_DIR YYYY-MM [N] [BY]");
    };
    let runs: usize = rest
        .first()
        .map_or(Ok(50), |n| n.parse())
        .context("N")?
        .max(1);
    let by: Vec<String> = rest
        .get(1)
        .map_or("cost_centre,model", String::as_str)
        .split(',')
        .map(str::to_owned)
        .collect();
    let month: Month = month.parse()?;
    let store = Store::open(&StoreConfig::embedded(data_dir)).await?;

    let cache = ChargebackCache::default();
    let started = Instant::now();
    let first = chargeback_cached(&store, &cache, month, &by).await?;
    let cold = started.elapsed();
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64() * 1e3
    };
    // Computed from the rollups every time (what a one-shot CLI run does).
    let mut computed = Vec::with_capacity(runs);
    // Answered by a long-running process whose inputs have not changed.
    let mut cached = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let report = chargeback(&store, month, &by).await?;
        computed.push(started.elapsed());
        assert_eq!(report.total, first.total, "the report changed between runs");
        let started = Instant::now();
        let report = chargeback_cached(&store, &cache, month, &by).await?;
        cached.push(started.elapsed());
        assert_eq!(report.total, first.total, "the cached report differs");
    }
    // The SLA report of the month, per backend (each run reads the rollups).
    let slo = tollgate_reports::sla::slo_of(&[]);
    let backend = vec!["backend".to_owned()];
    let mut sla = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        tollgate_reports::sla::sla(&store, month, &backend, &slo).await?;
        sla.push(started.elapsed());
    }
    println!(
        "chargeback {month} by {}: {} groups; first run {:.2} ms; computed from rollups: median {:.2} ms; \
         warm (cached, inputs unchanged): median {:.3} ms ({runs} runs each)",
        by.join(","),
        first.rows.len(),
        cold.as_secs_f64() * 1e3,
        median(computed),
        median(cached),
    );
    println!("sla {month} by backend: median {:.2} ms", median(sla));
    Ok(())
}

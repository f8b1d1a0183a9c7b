//! Times the chargeback report warm, as a long-running server answers it: the
//! store is opened once, the report runs once to warm up (rollups caught up,
//! caches filled), then `N` more times; prints the median and the fastest run.
//!
//!   cargo run --release --example chargeback_timing -- DATA_DIR YYYY-MM [N] [BY]
//!
//! Used by `bench/report.sh`; a benchmark, not a test.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use tollgate_reports::chargeback::chargeback;
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

    let started = Instant::now();
    let first = chargeback(&store, month, &by).await?;
    let cold = started.elapsed();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let report = chargeback(&store, month, &by).await?;
        times.push(started.elapsed());
        assert_eq!(report.total, first.total, "the report changed between runs");
    }
    times.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "chargeback {month} by {}: {} groups, first run {:.2} ms, warm median {:.2} ms, fastest {:.2} ms ({runs} runs)",
        by.join(","),
        first.rows.len(),
        ms(cold),
        ms(times[times.len() / 2]),
        ms(times[0]),
    );
    Ok(())
}

//! Times the chargeback and the SLA report of a month as a long-running server
//! answers them, on a store already ingested (a benchmark, not a test):
//!   - cold: the process's first chargeback (rollup files decoded, every hour
//!     priced);
//!   - cached: asked again while nothing changed (the answer is kept by the
//!     state's inputs version);
//!   - after a new batch: 100 requests ingested into the month's last hour
//!     (rolled up), then the chargeback asked again (`N` times, median);
//!   - after a new price book: one rate moved by a pico-unit, then the
//!     chargeback asked again (every hour priced again; `N` times, median);
//!   - the month's SLA report per backend after a new batch (`N` times).
//!
//!   cargo run --release --example chargeback_timing -- DATA_DIR YYYY-MM [N] [BY]
//!
//! Used by `bench/report.sh`. It adds batches of its own to the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tollgate_ingest::{Derive, Format, IngestOptions, NoProgress};
use tollgate_reports::chargeback::{ChargebackCache, chargeback_cached};
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
        .map_or(Ok(20), |n| n.parse())
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
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64() * 1e3
    };
    let timed = async |what: &mut Vec<Duration>| -> Result<usize> {
        let started = Instant::now();
        let report = chargeback_cached(&store, &cache, month, &by).await?;
        what.push(started.elapsed());
        Ok(report.rows.len())
    };

    let mut cold = Vec::new();
    let groups = timed(&mut cold).await?;
    let mut cached = Vec::new();
    for _ in 0..runs {
        timed(&mut cached).await?;
    }
    let scratch = tempfile_dir(data_dir)?;
    let mut after_batch = Vec::new();
    let mut sla = Vec::new();
    let slo = tollgate_reports::sla::slo_of(&[]);
    let backend = vec!["backend".to_owned()];
    for run in 0..runs {
        push_batch(&store, &scratch, month, run).await?;
        timed(&mut after_batch).await?;
        let started = Instant::now();
        tollgate_reports::sla::sla(&store, month, &backend, &slo).await?;
        sla.push(started.elapsed());
    }
    let mut after_prices = Vec::new();
    let book = store.db.price_book().await?;
    for run in 0..runs {
        let mut moved = book.clone();
        if let Some(first) = moved.first_mut() {
            first.input_rate_pico += 1 + run as i64;
        }
        store.db.replace_price_book(&moved).await?;
        timed(&mut after_prices).await?;
    }
    store.db.replace_price_book(&book).await?;
    std::fs::remove_dir_all(&scratch).ok();
    println!(
        "chargeback {month} by {}: {groups} groups; cold {:.1} ms; cached {:.3} ms; \
         after a new batch {:.1} ms; after a new price book {:.1} ms (medians of {runs})",
        by.join(","),
        cold[0].as_secs_f64() * 1e3,
        median(cached),
        median(after_batch),
        median(after_prices),
    );
    println!(
        "sla {month} by backend after a new batch: median {:.1} ms",
        median(sla)
    );
    Ok(())
}

fn tempfile_dir(data_dir: &str) -> Result<std::path::PathBuf> {
    let dir = std::path::Path::new(data_dir).join("timing-batches");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// 100 canonical requests in the month's last hour, ingested and rolled up.
async fn push_batch(store: &Store, dir: &std::path::Path, month: Month, run: usize) -> Result<()> {
    let last = month
        .next()?
        .first_day()
        .pred_opt()
        .context("a day before")?;
    let mut lines = String::new();
    for i in 0..100 {
        let line = serde_json::json!({
            "request_id": format!("timing-{}-{run}-{i}", std::process::id()),
            "time": format!("{last}T23:{:02}:00Z", i % 60),
            "gateway_kind": "apim", "gateway_id": "gw-timing", "region": "East US",
            "subscription": format!("sub-timing-{}", i % 7), "product": "gold",
            "api": "azure-openai", "backend": "aoai-swedencentral-paygo",
            "status_code": 200, "backend_status_code": 200, "total_latency_ms": 400 + i,
            "deployment": "gpt-4o", "model": "gpt-4o",
            "prompt_tokens": 1000, "cached_tokens": 0, "completion_tokens": 200,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    let path = dir.join(format!("batch-{run}.jsonl"));
    std::fs::write(&path, lines)?;
    let options = IngestOptions {
        format: Format::Canonical,
        derive: Derive::Inline,
        ..IngestOptions::default()
    };
    tollgate_ingest::ingest_file(store, &path, &options, Arc::new(NoProgress)).await?;
    Ok(())
}

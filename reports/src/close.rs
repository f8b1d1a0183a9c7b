//! Month close: a month's chargeback frozen as a stored snapshot (JSON and
//! Parquet, each with its sha256, plus the manifest watermark and the batches
//! it used). A closed month is reported from its snapshot and never changes;
//! data arriving later for it shows as adjustment rows in the next open month.
//! Re-opening needs `--force` and is recorded with its reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tollgate_store::Store;
use tollgate_store::state::{MonthClose, NewMonthClose};

use crate::chargeback::{
    ChargebackRow, DIMENSIONS, Keyed, MonthData, Reference, add, fine_charges, fine_charges_with,
};
use crate::invoice::CostFile;
use crate::month::Month;
use crate::rate::format_pico_wide;
use crate::trueup::Basis;
use crate::{ReportsError, Result, snapshot};

/// A closed month's snapshot, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Closure {
    pub month: String,
    pub closed_at: String,
    pub json_path: String,
    pub json_sha256: String,
    pub parquet_path: String,
    pub parquet_sha256: String,
    pub batches: usize,
    pub total: String,
    /// What the frozen money is: the estimate, or the bill allocated.
    pub basis: Basis,
    /// For a billed-basis close: the cost files the bill was read from.
    pub cost_files: Vec<CostFile>,
}

/// The stored snapshot: every fine row (all dimensions), adjustment rows for
/// earlier closed months included.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub month: String,
    pub dimensions: Vec<String>,
    pub watermark: i64,
    pub batch_ids: Vec<i64>,
    pub rows: Vec<ChargebackRow>,
    /// What the month was priced with when closed: late data for it is priced
    /// with this, so an adjustment is only ever late data, never a changed table.
    #[serde(default)]
    pub reference: Option<Reference>,
    /// Estimated (the book) or billed (the invoice allocated by usage).
    #[serde(default)]
    pub basis: Basis,
    /// The cost files a billed-basis close allocated.
    #[serde(default)]
    pub cost_files: Vec<CostFile>,
}

/// Closes `month` on the estimated basis: refused before the month has ended
/// or if it is closed.
pub async fn close_month(store: &Store, month: Month) -> Result<Closure> {
    close_month_on(store, month, Basis::Estimated).await
}

/// The month's fine rows on `basis`, and the cost files a billed one read.
async fn rows_on(
    store: &Store,
    month: Month,
    basis: Basis,
    reference: &Reference,
) -> Result<(Vec<ChargebackRow>, Vec<CostFile>)> {
    match basis {
        Basis::Estimated => {
            let mut rows = fine_charges_with(store, month, reference).await?;
            rows.extend(adjustments(store, month).await?);
            Ok((rows, Vec::new()))
        }
        Basis::Billed => {
            let billed = crate::trueup::billed_rows(store, month).await?;
            if billed.cost_files.is_empty() {
                return Err(ReportsError::Argument(format!(
                    "no cost export is imported for {month}: import the invoice \
                     (tollgate costs import) or close on the estimated basis"
                )));
            }
            let rows = billed.rows.into_iter().map(Keyed::into_row).collect();
            Ok((rows, billed.cost_files))
        }
    }
}

/// Closes `month` on `basis`. A billed-basis close freezes the invoice
/// allocated by usage and names the cost files it read; data arriving late
/// for it changes no bill, so it adjusts nothing later.
#[tracing::instrument(skip(store), err)]
pub async fn close_month_on(store: &Store, month: Month, basis: Basis) -> Result<Closure> {
    let today = store.clock.now().date_naive();
    if month.next()?.first_day() > today {
        return Err(ReportsError::Argument(format!(
            "{month} has not ended yet: a month can be closed from its next month's first day"
        )));
    }
    if closed(store, month).await?.is_some() {
        return Err(ReportsError::Argument(format!(
            "{month} is closed already (re-open it with `tollgate month reopen {month} --force`)"
        )));
    }
    store.catch_up_rollups().await?;
    let watermark = store.db.manifest_watermark().await?;
    let reference = Reference::load(&store.db).await?;
    let (rows, cost_files) = rows_on(store, month, basis, &reference).await?;
    let batch_ids = batches_of(store, month, watermark).await?;
    let snapshot = Snapshot {
        month: month.to_string(),
        dimensions: DIMENSIONS.iter().map(|d| (*d).to_owned()).collect(),
        watermark,
        batch_ids: batch_ids.clone(),
        rows,
        reference: Some(reference),
        basis,
        cost_files: cost_files.clone(),
    };
    let mut total = ChargebackRow::default();
    snapshot.rows.iter().for_each(|r| add(&mut total, r));
    let written = snapshot::write(&store.snapshots_dir, &snapshot)?;
    let batches = batch_ids.len();
    let record = NewMonthClose {
        month: month.to_string(),
        watermark,
        batch_ids,
        json_path: written.json_path.display().to_string(),
        json_sha256: written.json_sha256,
        parquet_path: written.parquet_path.display().to_string(),
        parquet_sha256: written.parquet_sha256,
        total: format_pico_wide(total.total_pico()),
    };
    let recorded = store
        .db
        .record_month_close(&record)
        .await
        .map_err(month_state)?;
    Ok(closure(recorded, batches, basis, cost_files))
}

/// A close or re-open the month's state refuses is the user's error.
fn month_state(e: tollgate_store::StoreError) -> ReportsError {
    match e {
        tollgate_store::StoreError::MonthState(what) => ReportsError::Argument(what),
        other => other.into(),
    }
}

fn closure(close: MonthClose, batches: usize, basis: Basis, cost_files: Vec<CostFile>) -> Closure {
    Closure {
        month: close.month,
        closed_at: close.at,
        json_path: close.json_path.unwrap_or_default(),
        json_sha256: close.json_sha256.unwrap_or_default(),
        parquet_path: close.parquet_path.unwrap_or_default(),
        parquet_sha256: close.parquet_sha256.unwrap_or_default(),
        batches,
        total: close.total.unwrap_or_default(),
        basis,
        cost_files,
    }
}

/// Re-opens a closed month. Its snapshot files stay, and the history keeps both.
#[tracing::instrument(skip(store), err)]
pub async fn reopen_month(store: &Store, month: Month, force: bool, reason: &str) -> Result<()> {
    if !force {
        return Err(ReportsError::Argument(format!(
            "re-opening {month} changes a report finance has seen: pass --force (and --reason)"
        )));
    }
    // A later closed month may hold adjustments for this one in its snapshot:
    // re-opened, this month would count that late data a second time.
    let later: Vec<String> = store
        .db
        .closed_months()
        .await?
        .into_iter()
        .map(|c| c.month)
        .filter(|m| *m > month.to_string())
        .collect();
    if !later.is_empty() {
        return Err(ReportsError::Argument(format!(
            "{} closed after {month}: re-open {} first (latest first), since a later snapshot may hold adjustments for {month}",
            later.join(", "),
            if later.len() == 1 { "it" } else { "them" }
        )));
    }
    store
        .db
        .record_month_reopen(&month.to_string(), reason)
        .await
        .map_err(month_state)
}

/// The close and re-open history.
pub async fn history(store: &Store) -> Result<Vec<MonthClose>> {
    Ok(store.db.month_close_history().await?)
}

/// The month's fine rows: its snapshot if closed, else computed now with
/// adjustments for the closed months this is the next open month of.
pub async fn month_rows(
    store: &Store,
    month: Month,
) -> Result<(Vec<ChargebackRow>, Option<Closure>)> {
    if let Some((closure, snapshot)) = closed(store, month).await? {
        return Ok((snapshot.rows, Some(closure)));
    }
    let mut rows = fine_charges(store, month).await?;
    rows.extend(adjustments(store, month).await?);
    Ok((rows, None))
}

/// [`month_rows`] as the chargeback groups them: the snapshot's rows, or the
/// month priced now with its adjustments.
pub(crate) async fn month_data(
    store: &Store,
    month: Month,
) -> Result<(MonthData, Option<Closure>)> {
    if let Some((closure, snapshot)) = closed(store, month).await? {
        let rows = snapshot.rows.into_iter().map(Keyed::from_row).collect();
        return Ok((MonthData::Stored(rows), Some(closure)));
    }
    let reference = Reference::load(&store.db).await?;
    let priced = crate::priced::price_month(store, month, &reference).await?;
    let adjustments = adjustments(store, month)
        .await?
        .into_iter()
        .map(Keyed::from_row)
        .collect();
    Ok((
        MonthData::Priced {
            priced,
            adjustments,
        },
        None,
    ))
}

/// The reference data a closed month was priced with; `None` for an open month
/// (or one closed before snapshots kept it).
pub async fn frozen_reference(store: &Store, month: Month) -> Result<Option<Reference>> {
    Ok(closed(store, month)
        .await?
        .and_then(|(_, snapshot)| snapshot.reference))
}

/// The snapshot of `month` if it is closed, checked against its sha256.
async fn closed(store: &Store, month: Month) -> Result<Option<(Closure, Snapshot)>> {
    let closes = store.db.closed_months().await?;
    let Some(close) = closes.into_iter().find(|c| c.month == month.to_string()) else {
        return Ok(None);
    };
    let path = PathBuf::from(close.json_path.clone().unwrap_or_default());
    let snapshot = snapshot::read(&path, close.json_sha256.as_deref().unwrap_or_default())?;
    let batches = snapshot.batch_ids.len();
    let closure = closure(close, batches, snapshot.basis, snapshot.cost_files.clone());
    Ok(Some((closure, snapshot)))
}

/// For each closed month whose next open month is `month`: what it costs now
/// minus what its snapshot and the closed months after it already charged.
pub(crate) async fn adjustments(store: &Store, month: Month) -> Result<Vec<ChargebackRow>> {
    let closed: Vec<Month> = store
        .db
        .closed_months()
        .await?
        .iter()
        .map(|c| c.month.parse())
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    // Walk back over the closed months right before this one.
    let mut corrected = month.previous()?;
    let mut frozen_after: Vec<Snapshot> = Vec::new();
    while closed.contains(&corrected) {
        let Some((_, snapshot)) = self::closed(store, corrected).await? else {
            break;
        };
        if snapshot.basis == Basis::Billed {
            // The invoice is final: traffic logged late for a billed month
            // changes no bill, and is not charged again.
            frozen_after.push(snapshot);
            corrected = corrected.previous()?;
            continue;
        }
        let name = corrected.to_string();
        let mut charged: BTreeMap<Vec<String>, i128> = BTreeMap::new();
        let frozen = snapshot.rows.iter().filter(|r| r.adjusts.is_none());
        let adjusted = frozen_after
            .iter()
            .flat_map(|s| s.rows.iter())
            .filter(|r| r.adjusts.as_deref() == Some(name.as_str()));
        for r in frozen.chain(adjusted) {
            *charged.entry(r.group.clone()).or_default() -= r.total_pico();
        }
        let priced_with = match &snapshot.reference {
            Some(frozen) => frozen.clone(),
            None => Reference::load(&store.db).await?,
        };
        for r in fine_charges_with(store, corrected, &priced_with).await? {
            *charged.entry(r.group.clone()).or_default() += r.total_pico();
        }
        rows.extend(
            charged
                .into_iter()
                .filter(|(_, pico)| *pico != 0)
                .map(|(group, pico)| ChargebackRow {
                    group,
                    adjustment_pico: pico,
                    adjusts: Some(name.clone()),
                    ..ChargebackRow::default()
                }),
        );
        frozen_after.push(snapshot);
        corrected = corrected.previous()?;
    }
    Ok(rows)
}

/// The committed batches with rows in the month, up to the watermark.
async fn batches_of(store: &Store, month: Month, watermark: i64) -> Result<Vec<i64>> {
    let (from, to) = (
        crate::fine::micros(month.first_day()),
        crate::fine::micros(month.next()?.first_day()),
    );
    let mut ids = std::collections::BTreeSet::new();
    for table in tollgate_store::schema::LAKE_TABLES {
        for f in store.db.lake_files_upto(table, watermark).await? {
            if f.file.min_time.timestamp_micros() < to && f.file.max_time.timestamp_micros() >= from
            {
                ids.insert(f.batch_id);
            }
        }
    }
    Ok(ids.into_iter().collect())
}

pub(crate) fn month_dir(root: &Path, month: &str) -> PathBuf {
    root.join(format!("month={month}"))
}

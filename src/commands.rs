//! One function per verb; each opens the store and calls the library crates.

mod alerts;
mod capacity;
mod costs;
mod demo;
mod lineage;
mod month;
mod ownership;
mod prices;
mod report;
mod server;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use futures::StreamExt;
use tollgate_ingest::{Derive, Format, IngestOptions, Outcome, Progress};
use tollgate_store::Store;
use tollgate_store::output::{OutputFormat, write_batches};

use crate::cli::{
    BackendsCommand, Basis, BudgetsCommand, Command, CostsCommand, ExportCommand, FixturesCommand,
    KeysCommand, LakeCommand, MonthCommand, OwnershipCommand, PricesCommand, PtuCommand,
    ReportCommand, RollupsCommand,
};
use crate::config::Config;
use crate::progress_bar::Bar;

pub async fn run(command: Command, config: &Config) -> Result<ExitCode> {
    // Generating fixtures needs no store.
    if let Command::Fixtures { command } = command {
        return generate_fixtures(command).await;
    }
    let store = Store::open(&config.store)
        .await
        .context("opening the Tollgate store")?;
    if reads_derived(&command) {
        let report = store
            .catch_up_rollups()
            .await
            .context("rolling up committed batches")?;
        if report.batches > 0 {
            eprintln!(
                "rolled up {} committed batches first ({} hours)",
                report.batches, report.hours
            );
        }
    }
    match command {
        Command::Migrate => {
            println!("state database is up to date ({:?})", store.db.backend());
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest {
            format,
            jobs,
            files,
        } => ingest(&store, config, format, jobs, &files).await,
        Command::Sql { query, format } => {
            let result = store.sql_read_only(&query).await?;
            print(format, &result.schema, &result.batches)
        }
        Command::Lake { command } => lake(&store, command).await,
        Command::Prices { command } => match command {
            PricesCommand::Import { file } => prices::import(&store, &file).await,
            PricesCommand::List { format } => prices::list(&store, format).await,
        },
        Command::Report { command } => report(&store, config, command).await,
        Command::Costs { command } => costs_command(&store, config, command).await,
        Command::Alerts { command } => alerts::run(&store, config, command).await,
        Command::Month { command } => match command {
            MonthCommand::Close { month, basis } => month::close(&store, month, basis).await,
            MonthCommand::Reopen {
                month,
                force,
                reason,
            } => month::reopen(&store, month, force, &reason).await,
            MonthCommand::List { format } => month::list(&store, format).await,
        },
        Command::Export { command } => match command {
            ExportCommand::Chargeback {
                month,
                by,
                format,
                output,
            } => report::export_chargeback(&store, month, &by, format, &output).await,
            ExportCommand::Focus { month, output } => {
                report::export_focus(&store, month, &output).await
            }
        },
        Command::Rollups { command } => rollups(&store, command).await,
        Command::Backends { command } => match command {
            BackendsCommand::Import { file } => capacity::import_backends(&store, &file).await,
            BackendsCommand::List { format } => capacity::list_backends(&store, format).await,
        },
        Command::Ptu { command } => match command {
            PtuCommand::Import { file } => capacity::import_ptu(&store, &file).await,
            PtuCommand::List { format } => capacity::list_ptu(&store, format).await,
        },
        Command::Ownership { command } => match command {
            OwnershipCommand::Import { file } => ownership::import(&store, &file).await,
            OwnershipCommand::List { format } => ownership::list(&store, format).await,
        },
        Command::Serve {
            listen,
            webhook_url,
        } => server::serve(store, config, listen, webhook_url).await,
        Command::Demo(args) => demo::run(store, config, args).await,
        Command::Keys { command } => keys(&store, command).await,
        Command::Budgets { command } => budgets(&store, command).await,
        Command::Lineage { command } => lineage::run(&store, config, command).await,
        Command::Batches { limit, format } => batches(&store, limit, format).await,
        Command::Quarantine { batch_id, format } => quarantine(&store, batch_id, format).await,
        Command::Fixtures { .. } => unreachable!("handled before the store opens"),
    }
}

/// `tollgate fixtures generate`: a month of synthetic traffic and its bill.
async fn generate_fixtures(command: FixturesCommand) -> Result<ExitCode> {
    let FixturesCommand::Generate {
        month,
        requests,
        out,
        seed,
        subscriptions,
        agents,
        users,
    } = command;
    let options = tollgate_fixtures::GenerateOptions {
        year: month.year(),
        month: month.number(),
        requests,
        seed,
        traffic_seed: None,
        until: None,
        out: out.clone(),
        scale: tollgate_fixtures::Scale {
            subscriptions: subscriptions as usize,
            agents: agents as usize,
            users: users as usize,
        },
    };
    let report = tokio::task::spawn_blocking(move || tollgate_fixtures::generate(&options))
        .await?
        .with_context(|| format!("writing fixtures to {}", out.display()))?;
    println!(
        "wrote {} requests, {} LLM log rows and {} DLP events in {} files under {}",
        report.requests,
        report.llm_rows,
        report.dlp_events,
        report.files.len(),
        out.display()
    );
    for bill in &report.cost_files {
        println!(
            "the month's bill (tollgate costs import): {}",
            bill.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn lake(store: &Store, command: LakeCommand) -> Result<ExitCode> {
    match command {
        LakeCommand::Ls {
            files: false,
            format,
        } => lake_ls(store, format).await,
        LakeCommand::Ls {
            files: true,
            format,
        } => lake_files(store, format).await,
        LakeCommand::Gc { grace } => {
            let report = store.gc(grace).await?;
            println!(
                "removed {} unreferenced files ({} bytes); kept {} younger than the grace period",
                report.files_removed, report.bytes_removed, report.files_kept_young
            );
            Ok(ExitCode::SUCCESS)
        }
        LakeCommand::Publish { format } => lake_publish(store, format).await,
    }
}

async fn report(store: &Store, config: &Config, command: ReportCommand) -> Result<ExitCode> {
    match command {
        ReportCommand::Chargeback {
            month,
            by,
            basis: Basis::Estimated,
            format,
        } => report::chargeback_report(store, config, month, &by, format).await,
        ReportCommand::Chargeback {
            month,
            by,
            basis: Basis::Billed,
            format,
        } => costs::billed_chargeback(store, month, &by, format).await,
        ReportCommand::Reconcile { month, by, format } => {
            costs::reconcile(store, month, &by, format).await
        }
        ReportCommand::Unseen { month, format } => {
            report::unseen_report(store, config, month, format).await
        }
        ReportCommand::Sla { month, by, format } => {
            alerts::sla(store, config, month, &by, format).await
        }
    }
}

async fn costs_command(store: &Store, config: &Config, command: CostsCommand) -> Result<ExitCode> {
    match command {
        // One file at a time, in the order given: a later file's lines
        // restate an earlier one's, and batch order says which is later.
        CostsCommand::Import { files } => {
            let one = std::num::NonZeroUsize::new(1);
            let imported = ingest(store, config, Format::AzureCost, one, &files).await?;
            server::evaluate_bill_alerts(store, config).await;
            Ok(imported)
        }
        CostsCommand::ImportMeters { file } => costs::import_meters(store, &file).await,
        CostsCommand::Meters { format } => costs::list_meters(store, format).await,
    }
}

async fn rollups(store: &Store, command: RollupsCommand) -> Result<ExitCode> {
    match command {
        RollupsCommand::Rebuild => month::rebuild_rollups(store).await,
        RollupsCommand::CatchUp => {
            let report = store.catch_up_rollups().await?;
            warn_lake_faults(store).await?;
            println!(
                "rolled up {} owed batches: {} hours, {} rows",
                report.batches, report.hours, report.rows
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn keys(store: &Store, command: KeysCommand) -> Result<ExitCode> {
    match command {
        KeysCommand::Create {
            role,
            gateways,
            name,
            expires_at,
        } => server::create_key(store, role, gateways, name, expires_at).await,
        KeysCommand::List { format } => server::list_keys(store, format).await,
        KeysCommand::Revoke { id } => server::revoke_key(store, id).await,
    }
}

async fn budgets(store: &Store, command: BudgetsCommand) -> Result<ExitCode> {
    match command {
        BudgetsCommand::Import { file } => server::import_budgets(store, &file).await,
        BudgetsCommand::List { format } => server::list_budgets(store, format).await,
        BudgetsCommand::Delete { id } => {
            let row = store.db.delete_budget(id, &server::cli_actor()).await?;
            let line = format!("deleted budget {} ({})", row.id, row.budget.name);
            println!("{}", tollgate_store::output::terminal_text(&line));
            server::evaluate_budgets(store, &Default::default(), None).await;
            Ok(ExitCode::SUCCESS)
        }
        BudgetsCommand::Evaluate => server::evaluate_now(store).await,
    }
}

/// Whether a command answers from derived data (rollups, and what budgets,
/// alerts and lineage make of them), which is then brought up to date first:
/// batches a deferring or crashed ingest left owed their rollups. The server
/// derives in the background instead, and an ingest once its files are in.
fn reads_derived(command: &Command) -> bool {
    !matches!(
        command,
        Command::Serve { .. }
            | Command::Demo(_)
            | Command::Ingest { .. }
            | Command::Rollups { .. }
            | Command::Migrate
            | Command::Keys { .. }
            | Command::Lake { .. }
            | Command::Fixtures { .. }
    )
}

async fn ingest(
    store: &Store,
    config: &Config,
    format: Format,
    jobs: Option<std::num::NonZeroUsize>,
    files: &[std::path::PathBuf],
) -> Result<ExitCode> {
    let options = IngestOptions {
        format,
        dimensions: config.dimensions.clone(),
        limits: config.limits.clone(),
        // Rolled up once the files are in (or by the budget evaluator as
        // they arrive): a day's requests and its LLM rows, in two files,
        // then make one computation of their hours instead of two.
        derive: Derive::Deferred,
        ..IngestOptions::default()
    };
    let jobs = jobs
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, |n| n.get());
    // Unreadable files fail in their own ingest, with their own error.
    let total_bytes = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = Arc::new(Bar::new(total_bytes));
    // Budgets move after every committed batch, as they do for a pushed one. The
    // evaluation runs in a task of its own: awaited here, it would pause the
    // other files' ingests mid-transaction while it waits for their lock.
    let mut committed = false;
    let evaluator = if store.db.budgets().await?.is_empty() {
        None
    } else {
        Some(server::BudgetEvaluator::spawn(store.clone(), bar.clone()))
    };
    let progress: Arc<dyn Progress> = bar.clone();
    let options = &options;
    // Up to `jobs` files at a time; reports print in the order the files were
    // given, whatever order they finish in.
    let mut running = futures::stream::iter(files.iter().enumerate())
        .map(|(i, path)| {
            let progress = progress.clone();
            async move {
                let outcome = tollgate_ingest::ingest_file(store, path, options, progress).await;
                (i, path, outcome)
            }
        })
        .buffer_unordered(jobs);
    let mut finished = std::collections::BTreeMap::new();
    let mut next = 0;
    let mut failed = 0;
    while let Some((i, path, outcome)) = running.next().await {
        finished.insert(i, (path, outcome));
        while let Some((path, outcome)) = finished.remove(&next) {
            next += 1;
            match outcome {
                Ok(report) => {
                    if report.outcome == Outcome::AlreadyIngested {
                        // Not read again: its bytes count as done.
                        bar.skip(std::fs::metadata(path).map_or(0, |m| m.len()));
                    }
                    bar.println(&report.to_string());
                    committed |= report.outcome == Outcome::Committed;
                    if let Some(evaluator) = &evaluator
                        && report.outcome == Outcome::Committed
                    {
                        evaluator.batch_committed();
                    }
                }
                Err(e) => {
                    bar.eprintln(&format!("error: {e}"));
                    failed += 1;
                }
            }
        }
    }
    if let Some(evaluator) = evaluator {
        evaluator.finish().await;
    }
    bar.done();
    if committed {
        derive_committed(store, config).await?;
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} files failed; the others were committed",
            files.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What follows files committed: their rollups, the Delta logs, the lineage
/// their traffic shows and the alert rules' judgement of it.
async fn derive_committed(store: &Store, config: &Config) -> Result<()> {
    let started = std::time::Instant::now();
    let rolled = store
        .catch_up_rollups()
        .await
        .context("rolling up the committed batches (`tollgate rollups catch-up` retries)")?;
    if rolled.batches > 0 {
        eprintln!(
            "rolled up {} batches: {} hours, {} rows in {:.1} s",
            rolled.batches,
            rolled.hours,
            rolled.rows,
            started.elapsed().as_secs_f64()
        );
    }
    // Readers outside Tollgate see the batches once published; a failure
    // here loses nothing (the next publish starts from the log's last one).
    if let Err(e) = store.publish_delta().await {
        eprintln!(
            "warning: the Delta logs were not published (`tollgate lake publish` retries): {e}"
        );
    }
    // The traffic just committed is lineage too (observed edges), and is
    // judged by the alert rules once its files are all in.
    lineage::observe_now(store, config).await?;
    if let Err(e) = server::evaluate_alerts(store, config, false).await {
        eprintln!("warning: alerts not evaluated: {e:#}");
    }
    Ok(())
}

/// Records a reference-data import made from the command line in the audit log.
async fn audit_import(
    store: &Store,
    action: &str,
    target: &str,
    path: &std::path::Path,
    rows: usize,
) -> Result<()> {
    let after = std::collections::BTreeMap::from([
        ("file", path.display().to_string()),
        ("rows", rows.to_string()),
    ]);
    let entry =
        tollgate_store::state::NewAudit::new(&server::cli_actor(), action, target).after(&after);
    store.db.record_audit(&entry).await?;
    Ok(())
}

fn print(
    format: OutputFormat,
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_batches(format, schema, batches, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A table of an answer: its schema and its one batch.
type Table = (arrow::datatypes::SchemaRef, RecordBatch);

/// Prints `value` as the format asks: JSON as it serializes (nested, whole),
/// else the table `tabled` makes of it, as a table or CSV. The one way a
/// command that has a JSON shape of its own answers.
fn answer<T: serde::Serialize + ?Sized>(
    format: OutputFormat,
    value: &T,
    tabled: impl FnOnce(&T) -> Result<Table>,
) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (schema, batch) = tabled(value)?;
    print(format, &schema, &[batch])
}

use tollgate_reports::table::{ints, strings, table, texts};

/// Says which committed files hold times readers leave out.
pub(crate) async fn warn_lake_faults(store: &Store) -> Result<()> {
    for fault in store.lake_faults().await? {
        eprintln!("warning: {}", tollgate_store::output::terminal_text(&fault));
    }
    Ok(())
}

async fn lake_ls(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    warn_lake_faults(store).await?;
    let rows = store.db.lake_summary().await?;
    let (schema, batch) = table(vec![
        (
            "table",
            strings(rows.iter().map(|r| Some(r.table_name.as_str()))),
        ),
        (
            "date",
            strings(rows.iter().map(|r| Some(r.partition_date.as_str()))),
        ),
        ("files", ints(rows.iter().map(|r| r.files))),
        ("rows", ints(rows.iter().map(|r| r.rows))),
        ("bytes", ints(rows.iter().map(|r| r.bytes))),
    ])?;
    print(format, &schema, &[batch])
}

async fn lake_publish(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let published = store
        .publish_delta()
        .await
        .context("publishing the lake's Delta logs")?;
    let (schema, batch) = table(vec![
        ("table", strings(published.iter().map(|p| Some(p.table)))),
        (
            "committed",
            texts(
                &published
                    .iter()
                    .map(|p| {
                        p.version
                            .map_or_else(|| "up to date".into(), |v| format!("version {v}"))
                    })
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "files_added",
            ints(published.iter().map(|p| p.files_added as i64)),
        ),
        ("rows_added", ints(published.iter().map(|p| p.rows_added))),
        ("watermark", ints(published.iter().map(|p| p.watermark))),
    ])?;
    print(format, &schema, &[batch])
}

async fn lake_files(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let watermark = store.db.manifest_watermark().await?;
    let mut files = Vec::new();
    for table in tollgate_store::schema::LAKE_TABLES {
        files.extend(store.db.lake_files_upto(table, watermark).await?);
    }
    let paths: Vec<String> = files
        .iter()
        .map(|f| store.lake.absolute(&f.file.path).display().to_string())
        .collect();
    let (schema, batch) = table(vec![
        (
            "table",
            strings(files.iter().map(|f| Some(f.file.table_name.as_str()))),
        ),
        (
            "date",
            strings(files.iter().map(|f| Some(f.file.partition_date.as_str()))),
        ),
        ("batch", ints(files.iter().map(|f| f.batch_id))),
        ("rows", ints(files.iter().map(|f| f.file.row_count))),
        ("bytes", ints(files.iter().map(|f| f.file.byte_size))),
        ("path", strings(paths.iter().map(|p| Some(p.as_str())))),
    ])?;
    print(format, &schema, &[batch])
}

async fn batches(store: &Store, limit: i64, format: OutputFormat) -> Result<ExitCode> {
    let rows = store.db.recent_batches(limit).await?;
    let started: Vec<String> = rows.iter().map(|b| b.started_at.to_rfc3339()).collect();
    let (schema, batch) = table(vec![
        ("id", ints(rows.iter().map(|b| b.id))),
        (
            "source",
            strings(rows.iter().map(|b| Some(b.source_name.as_str()))),
        ),
        (
            "format",
            strings(rows.iter().map(|b| Some(b.format.as_str()))),
        ),
        (
            "status",
            strings(rows.iter().map(|b| Some(b.status.as_str()))),
        ),
        ("read", ints(rows.iter().map(|b| b.rows_read))),
        ("written", ints(rows.iter().map(|b| b.rows_written))),
        ("duplicate", ints(rows.iter().map(|b| b.rows_duplicate))),
        ("quarantined", ints(rows.iter().map(|b| b.rows_quarantined))),
        (
            "started_at",
            strings(started.iter().map(|s| Some(s.as_str()))),
        ),
        ("error", strings(rows.iter().map(|b| b.error.as_deref()))),
    ])?;
    print(format, &schema, &[batch])
}

async fn quarantine(store: &Store, batch_id: i64, format: OutputFormat) -> Result<ExitCode> {
    let Some(batch) = store.db.batch(batch_id).await? else {
        anyhow::bail!("no batch {batch_id}; `tollgate batches` lists them");
    };
    let rows = store.db.quarantined_lines(batch_id).await?;
    if (rows.len() as i64) < batch.rows_quarantined {
        eprintln!(
            "batch {batch_id} quarantined {} records; the first {} are kept with their reasons",
            batch.rows_quarantined,
            rows.len()
        );
    }
    let raw: Vec<String> = rows
        .iter()
        .map(|q| String::from_utf8_lossy(&q.raw_line).into_owned())
        .collect();
    let (schema, batch) = table(vec![
        ("line", ints(rows.iter().map(|q| q.line_number))),
        ("byte_offset", ints(rows.iter().map(|q| q.byte_offset))),
        (
            "reason",
            strings(rows.iter().map(|q| Some(q.reason.as_str()))),
        ),
        ("raw_line", strings(raw.iter().map(|s| Some(s.as_str())))),
    ])?;
    print(format, &schema, &[batch])
}

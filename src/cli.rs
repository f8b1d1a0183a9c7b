//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tollgate_reports::month::Month;
pub use tollgate_reports::trueup::Basis;
use tollgate_store::output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Governance, lineage and chargeback for an AI gateway estate",
    long_about = "Tollgate ingests AI gateway logs into a date-partitioned Parquet lake, \
                  keeps its state in SQLite (default) or Postgres, and answers SQL over it.\n\n\
                  Configuration, lowest to highest precedence: built-in defaults, \
                  tollgate.toml (./tollgate.toml or --config), TOLLGATE_* environment \
                  variables, flags. Global flags come before the command."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    /// More log output on stderr (-v info, -vv debug); TOLLGATE_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding the lake and the embedded SQLite database [default: ./tollgate-data]
    #[arg(long, env = "TOLLGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// State database: postgres://user:pass@host/db or sqlite://path [default: SQLite in the data dir]
    #[arg(
        long,
        env = "TOLLGATE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Where the lake is: a local directory, az://container/prefix (or
    /// abfss://container@account.dfs.core.windows.net/prefix), s3://bucket/prefix or
    /// gs://bucket/prefix. Credentials come from the environment (AZURE_STORAGE_*,
    /// AWS_*, GOOGLE_*), never from the URL [default: the lake directory of the data dir]
    #[arg(long, env = "TOLLGATE_LAKE_URL", value_name = "URL")]
    pub lake_url: Option<String>,

    /// Configuration file [default: ./tollgate.toml when it exists]
    #[arg(long, env = "TOLLGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Act as if the wall clock said T (RFC 3339): budgets follow T's calendar
    /// month and ingest refuses data dated after T plus the allowed skew. For
    /// demos, replays and tests; leave it out in production [default: the system clock]
    #[arg(long, global = true, env = "TOLLGATE_NOW", value_name = "T", value_parser = parse_time)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the state database migrations (also done on every start).
    Migrate,

    /// Ingest gateway log files into the lake, one batch per file.
    ///
    /// Each file is committed whole or not at all; bad lines are quarantined with
    /// their line number while the good ones commit. Prints the reconciliation
    /// `read = written + duplicate + quarantined` per file. Ingesting the same
    /// content again changes nothing.
    Ingest {
        /// Input format: `canonical` (Tollgate's own, docs/canonical-format.md),
        /// `apim` (Azure API Management diagnostic export: GatewayLogs and
        /// GatewayLlmLogs, JSON lines or {"records": [...]} envelopes), `kong`
        /// (Kong AI Gateway file-log / http-log entries), `litellm` (LiteLLM spend
        /// logs: JSON lines, a JSON array or CSV), `appinsights` (token metrics
        /// from Application Insights customMetrics) or `purview-dlp` (DLP hits
        /// modelled on Purview DLP alerts, docs/dlp-events.md), `otlp` (OTLP JSON
        /// lines, docs/otel.md) or `azure-cost` (Azure cost exports, CSV or
        /// Parquet: prefer `tollgate costs import`, docs/reconciliation.md).
        /// The default, `auto`, recognises each file's format from its content.
        #[arg(long, default_value = "auto", value_name = "FORMAT")]
        format: tollgate_ingest::Format,
        /// Files ingested side by side, each still its own batch; rows shared by
        /// files of the same day are still counted once [default: the number of CPUs]
        #[arg(long, short = 'j', env = "TOLLGATE_INGEST_JOBS", value_name = "N")]
        jobs: Option<std::num::NonZeroUsize>,
        /// Files to ingest: JSON lines, plain or gzip.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },

    /// Run one read-only SQL query over the committed lake.
    ///
    /// Tables: requests, token_usage, token_metrics, dlp_hits, genai_spans, billed_costs (the
    /// imported cost exports, docs/reconciliation.md), and the views usage
    /// (requests joined to their token usage) and security_hits (DLP hits beside
    /// the requests gateways blocked for content safety). Statements that write or
    /// define anything are refused.
    Sql {
        /// The query, e.g. "SELECT model, sum(prompt_tokens) FROM usage GROUP BY model".
        query: String,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },

    /// Inspect and maintain the lake.
    Lake {
        #[command(subcommand)]
        command: LakeCommand,
    },

    /// The price book: per-token rates by model, deployment type and region.
    Prices {
        #[command(subcommand)]
        command: PricesCommand,
    },

    /// Reports: the monthly chargeback.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },

    /// Close a month (its chargeback then never changes) or re-open one.
    Month {
        #[command(subcommand)]
        command: MonthCommand,
    },

    /// Export a month's chargeback as files for finance tools: CSV, Parquet, FOCUS 1.0.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },

    /// Serve the JSON API, the budget pull API for gateways and push ingest.
    ///
    /// Requests need an API key (`tollgate keys create`). Budgets are evaluated
    /// after every pushed batch and on a timer; their state changes are POSTed
    /// to the webhook when one is configured. Stops cleanly on Ctrl-C / SIGTERM:
    /// requests in flight (a push being committed) finish first.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080, or [server] listen]
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Where budget events are POSTed (LiteLLM budget-alert JSON)
        /// [default: [server] webhook_url]
        #[arg(long, value_name = "URL")]
        webhook_url: Option<String>,
    },

    /// The whole product in one command, on a fictional organisation.
    ///
    /// Generates its previous month and its current month up to now (a month to
    /// close, live budgets and alerts) under <data dir>/demo-input, loads prices,
    /// backends, PTU reservations, ownership, budgets, alert rules and the
    /// lineage catalog, ingests the traffic and its cost exports (the bills to
    /// reconcile), evaluates everything, creates one key per role (admin,
    /// finops, operator, security), prints them with the URL, and serves the
    /// web pages and the API. Running it again on the same data dir ingests
    /// only what is new and replaces the demo keys.
    Demo(DemoArgs),

    /// API keys: who may call the server, in which role.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },

    /// Alerting: rules judged hour by hour over the rollups at data time
    /// (429s by source, latency, burn-rate SLOs, anomalies, token budgets), their
    /// episodes, and replays of past periods.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },

    /// Budgets: quotas per subscription, product, cost centre or agent, whose
    /// state gateways pull.
    Budgets {
        #[command(subcommand)]
        command: BudgetsCommand,
    },

    /// The hourly rollups reports read (kept up to date by every ingest).
    Rollups {
        #[command(subcommand)]
        command: RollupsCommand,
    },

    /// What each gateway backend is: deployment type and region.
    Backends {
        #[command(subcommand)]
        command: BackendsCommand,
    },

    /// Provisioned throughput (PTU) reservations, paid whatever the traffic.
    Ptu {
        #[command(subcommand)]
        command: PtuCommand,
    },

    /// The provider's bill: cost exports, and the meter map that says what
    /// each meter bills (docs/reconciliation.md).
    Costs {
        #[command(subcommand)]
        command: CostsCommand,
    },

    /// Cost centres and the subscriptions, agents and products they pay for.
    Ownership {
        #[command(subcommand)]
        command: OwnershipCommand,
    },

    /// List recent ingest batches with their reconciliation counts.
    Batches {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },

    /// The lineage graph: data sources, MCP tools, agents, model deployments
    /// and gateways, with sensitivity labels propagated along the data flow.
    ///
    /// Labels flow the way data does (source -> tool -> agent -> deployment ->
    /// gateway); a node's effective label is the highest that reaches it, and
    /// `why` shows the path that gave it. Nodes are named by `--node NAME`, with
    /// `--namespace` when the name alone is ambiguous.
    Lineage {
        #[command(subcommand)]
        command: LineageCommand,
    },

    /// The synthetic estate, for demos, tests and benchmarks.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },

    /// Show the quarantined lines of a batch, with line numbers and reasons.
    Quarantine {
        batch_id: i64,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Import lineage. `catalog`: the declarative YAML catalog
    /// (docs/reference-data.md), which replaces the catalog's edges whole and is
    /// refused whole, every problem named, when anything in it is wrong.
    /// `foundry`: Foundry gateway connections, replacing Foundry's edges.
    Import {
        #[arg(value_enum)]
        source: LineageSource,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Recompute the edges observed in the committed traffic (tool -> agent ->
    /// deployment -> gateway -> subscription, with call counts); ingest does
    /// this after committing, this does it again from the lake.
    Observe,
    /// Blast radius: every node data from this one reaches, nearest first.
    Downstream(TraversalArgs),
    /// Provenance: every node this one's data comes from, nearest first.
    Upstream(TraversalArgs),
    /// A shortest data-flow path from one node to another.
    Path {
        #[arg(long, value_name = "NAME")]
        from: String,
        #[arg(long, value_name = "NAME")]
        to: String,
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// Longest path looked for, in edges.
        #[arg(long, default_value_t = 10)]
        depth: u32,
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: OutputFormat,
    },
    /// Why a node carries its label: the path from the node it came from.
    Why {
        #[command(flatten)]
        node: NodeArg,
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: OutputFormat,
    },
    /// Every node at or above a label, each with the path that proves it
    /// (e.g. `--label "Highly Confidential" --kind agent`).
    Reach {
        #[arg(long, value_name = "LABEL")]
        label: String,
        /// Only nodes of this kind (repeatable): data_source, api, mcp_server,
        /// mcp_tool, agent, model_deployment, model, gateway, subscription,
        /// project, connection, process.
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<String>,
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: OutputFormat,
    },
    /// Policy findings: data above a deployment's allowed label or outside its
    /// boundary, agents above their clearance, hand-set labels below what flows in.
    Findings {
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: OutputFormat,
    },
    /// Model calls that traces show going around the gateways (docs/otel.md):
    /// where they went, from which agent and service, how many tokens, and a
    /// trace to start from. Gateways are `[lineage] gateway_hosts` and the
    /// graph's gateway nodes.
    Bypass {
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: OutputFormat,
    },
    /// DLP and content-safety hits (the security_hits view) per day and agent,
    /// policy, label, severity or action.
    Hits {
        /// agent, policy, label, severity or action.
        #[arg(long, default_value = "agent")]
        by: String,
        /// From this time on (RFC 3339).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: OutputFormat,
    },
    /// One hit and the labelled lineage upstream of its agent: which sensitive
    /// sources the agent can reach, each with the path.
    Hit {
        #[arg(value_name = "HIT_ID")]
        hit_id: String,
        #[arg(long, default_value = "json", value_name = "FORMAT")]
        format: OutputFormat,
    },
    /// External-facing nodes (by boundary) and the labelled data upstream of them.
    Exposure {
        /// Lowest label reported [default: the most sensitive]
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
        #[arg(long, default_value_t = 10)]
        depth: u32,
        #[arg(long, default_value = "table", value_name = "FORMAT")]
        format: OutputFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LineageSource {
    /// The declarative YAML catalog: replaces what the catalog declared.
    Catalog,
    /// Microsoft Foundry connections to an AI gateway (JSON: one object, an
    /// array or an ARM list): project -> connection -> gateway -> models, with
    /// the known misconfigurations reported; credentials are never stored.
    Foundry,
    /// Apache Atlas / Purview entities (entity/bulk JSON): Process inputs and
    /// outputs become edges; classifications become labels when they name one
    /// or `[lineage] atlas_classifications` maps them.
    Atlas,
}

#[derive(Debug, Args)]
pub struct NodeArg {
    /// The node's name.
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// Its namespace, when the name alone is ambiguous.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct TraversalArgs {
    #[command(flatten)]
    pub node: NodeArg,
    /// How many edges away to look.
    #[arg(long, default_value_t = 5)]
    pub depth: u32,
    /// Only report nodes of this kind (repeatable); all kinds are traversed.
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Most nodes reported; the answer says when it was cut.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// Write a month of a fictional organisation's gateway traffic as real APIM
    /// export files (gateway-logs/ and llm-logs/, one file a day), reproducibly.
    ///
    /// It carries daily and weekly seasonality, a PTU saturation episode with
    /// backend 429s and spillover (day 14, 10:00-12:00 UTC), a latency incident
    /// (day 21, 14:00-15:30 UTC), token-limit 429s, content-safety blocks and cache
    /// hits. Output is streamed: memory does not grow with --requests.
    Generate {
        /// The month, as YYYY-MM.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// How many gateway requests in the month.
        #[arg(long, default_value_t = 100_000)]
        requests: u64,
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The same seed gives the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Subscriptions in the estate (realistic cardinality for benchmarks:
        /// hundreds).
        #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        subscriptions: u32,
        /// Distinct agent instances (at least the 12 agent kinds; above that,
        /// each subscription runs three numbered instances of its kind).
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        agents: u32,
        /// Distinct users calling.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        users: u32,
    },
}

fn parse_month(s: &str) -> Result<Month, String> {
    let err = || format!("{s:?}: expected YYYY-MM, e.g. 2026-10");
    let month: Month = s.parse().map_err(|_| err())?;
    if month.year() < 1970 {
        return Err(err());
    }
    Ok(month)
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to serve on [default: 127.0.0.1:8080, or [server] listen]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Gateway requests in a whole month; the current month gets its share up to now.
    #[arg(long, default_value_t = 100_000)]
    pub requests: u64,
    /// The same seed gives the same organisation and traffic.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also write the URL and the keys as JSON to this file (mode 0600), for scripts.
    #[arg(long, value_name = "FILE")]
    pub keys_file: Option<PathBuf>,
    /// Prepare everything and print the keys, but do not serve.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// Replace the price book with a CSV file (docs/reference-data.md, prices.csv).
    ///
    /// The file is checked whole: a missing or unknown unit, a bad rate or date, or
    /// two rows whose effective ranges overlap refuse the file, every problem named
    /// by line and field, and the current book stays as it was.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The current price book; rates are per `unit` (1K or 1M tokens).
    List {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Who spent what in a month: requests, tokens, pay-as-you-go cost at the
    /// price in force on each day, PTU hours split by weighted tokens, idle PTU
    /// capacity, total and share, grouped as asked. Spend nobody owns shows as
    /// `unallocated`; tokens no price covers are counted as `unpriced_tokens`.
    /// Money columns are rounded so that they add up to the TOTAL row.
    Chargeback {
        /// The month, as YYYY-MM.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Group by any of cost_centre, subscription, product, model,
        /// deployment_type, region, api, agent (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "cost_centre")]
        by: Vec<String>,
        /// `estimated`: logs priced by the book. `billed`: the imported
        /// invoice allocated to those who used it (docs/reconciliation.md),
        /// equal to the invoice to the cent, with an `unattributed` line.
        #[arg(long, default_value = "estimated", value_name = "estimated|billed")]
        basis: Basis,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
    /// The invoice against the estimate: billed vs estimated per resource,
    /// model, token kind and day, the variance in money and %, explained by
    /// cause (tokens no gateway logged, tokens not billed, rate differences
    /// naming the price-book row, PTU hours, discounts, commitments, unmapped
    /// meters and resources) with the residual shown.
    Reconcile {
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Group by any of resource, model, token_kind, day (comma-separated).
        #[arg(long, default_value = "resource,model,token_kind", value_name = "DIMS")]
        by: String,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
    /// Traffic no gateway saw: model calls that traces show going around the
    /// gateways (docs/otel.md), priced with the price book as an estimate
    /// (GlobalStandard, else Standard, any region). Never in the chargeback's
    /// total: no gateway logged these calls.
    Unseen {
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
    /// A month's SLA per group against the SLO of the first burn-rate rule:
    /// availability, latency percentiles, 429s by source, the error budget used
    /// and left, and what each alert episode of the month cost.
    Sla {
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Group by any of backend, deployment, model, api, gateway, region,
        /// subscription, product, agent (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "backend")]
        by: Vec<String>,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// The rules: the shipped defaults, `[[alerts.rule]]` of tollgate.toml, and
    /// those set through the API.
    Rules {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
    /// Evaluate the rules over everything rolled up since they last ran (the
    /// server does this after each push and on a timer).
    Evaluate,
    /// Alert episodes, newest first, with when they became active, fired and
    /// resolved (data time).
    List {
        /// Only `pending`, `firing` or `resolved` ones.
        #[arg(long)]
        state: Option<tollgate_store::EpisodeState>,
        #[arg(long)]
        rule: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
    /// Judge the rules again over a past period, from the rollups as they are
    /// now, replacing the period's episodes: a backfilled month shows its
    /// incidents. Sends nothing and changes no budget.
    Replay {
        /// RFC 3339 or YYYY-MM-DD (UTC midnight).
        #[arg(long, value_parser = parse_instant)]
        from: i64,
        #[arg(long, value_parser = parse_instant)]
        to: i64,
    },
}

/// An RFC 3339 time, or a day (its midnight, UTC).
fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    parse_instant(s).and_then(|us| {
        chrono::DateTime::from_timestamp_micros(us).ok_or_else(|| format!("{s:?}: out of range"))
    })
}

/// An instant as RFC 3339 or a UTC date, in microseconds.
fn parse_instant(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
        .ok_or_else(|| format!("{s:?}: expected RFC 3339 or YYYY-MM-DD"))
}

#[derive(Debug, Subcommand)]
pub enum MonthCommand {
    /// Freeze a month's chargeback: stores a snapshot (JSON and Parquet under
    /// <data dir>/snapshots, each with its sha256) and the batches it used. The
    /// month's report is then served from the snapshot; data arriving later for
    /// it is charged as an adjustment in the next open month.
    Close {
        #[arg(value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// `estimated` (the logs priced by the book) or `billed` (the imported
        /// invoice allocated by usage, docs/reconciliation.md; its cost files
        /// are recorded, and data arriving late adjusts nothing: the bill is
        /// final).
        #[arg(long, default_value = "estimated", value_name = "estimated|billed")]
        basis: Basis,
    },
    /// Re-open a closed month. Needs --force; the re-open and its reason are recorded.
    Reopen {
        #[arg(value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Yes, change a report finance has already seen.
        #[arg(long)]
        force: bool,
        /// Why, for the record.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Every close and re-open, oldest first.
    List {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A chargeback view as a file: `csv` (amounts rounded to cents, adding up
    /// to the TOTAL row, as the report shows them) or `parquet` (exact decimals).
    Chargeback {
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Group by any of cost_centre, subscription, product, model,
        /// deployment_type, region, api, agent (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "cost_centre")]
        by: Vec<String>,
        #[arg(long, value_name = "csv|parquet")]
        format: ExportFormat,
        /// The file to write (refused if it exists).
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
    /// The month as a FOCUS 1.0 cost and usage file (CSV): token usage as Usage,
    /// PTU reservations as Purchase, late data for a closed month as Adjustment,
    /// with cost centre, subscription and model in Tags.
    Focus {
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// The file to write (refused if it exists).
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and stored only as a hash.
    Create {
        /// admin, finops, security, operator, gateway or ingest
        #[arg(long)]
        role: String,
        /// For a gateway key: a gateway id it may read (repeat for more)
        #[arg(long = "gateway", value_name = "ID")]
        gateways: Vec<String>,
        /// A name to tell the key apart in lists and the audit log
        #[arg(long)]
        name: Option<String>,
        /// Expiry, RFC 3339 (e.g. 2027-01-01T00:00:00Z); none: never
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// Every key (never the secret), revoked ones too.
    List {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
    /// Revoke a key for good.
    Revoke {
        #[arg(value_name = "ID")]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum BudgetsCommand {
    /// Create or update budgets from a TOML file (docs/reference-data.md,
    /// budgets.toml), matched by name; a bad file is refused whole.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Every budget with its state, month-to-date use and forecast.
    List {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
    /// Delete a budget.
    Delete {
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// Evaluate every budget now (as ingest and the server do after each batch).
    Evaluate,
}

#[derive(Debug, Subcommand)]
pub enum RollupsCommand {
    /// Recompute every hour's rollup from the committed lake (after a restore,
    /// or to check them), and drop those of hours no file covers any more.
    Rebuild,
    /// Roll up batches committed by a process that died before doing so.
    CatchUp,
}

#[derive(Debug, Subcommand)]
pub enum CostsCommand {
    /// Import Azure Cost Management exports into the lake table billed_costs:
    /// the FOCUS cost-and-usage export (FOCUS 1.0 or 1.2) or the classic actual
    /// or amortised cost-details export, as CSV (plain or gzip) or Parquet,
    /// one batch per file, in the order given. Importing the same file again
    /// changes nothing; a later export's lines replace the lines they restate;
    /// bad lines are quarantined naming line and field (`tollgate quarantine
    /// BATCH`).
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Replace the meter map with a CSV file (docs/reconciliation.md,
    /// meters.csv): meter, model, token_kind, deployment_type, unit. Meters it
    /// does not list are read by Azure OpenAI's default naming
    /// (`gpt-4o 0806 Inp glbl 1M Tokens`). A bad file is refused whole.
    ImportMeters {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The meter map as stored.
    Meters {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackendsCommand {
    /// Replace the backends with a CSV file (docs/reference-data.md, backends.csv):
    /// backend, deployment_type, region, and optionally resource_id (the Azure
    /// resource its cost lines name). A bad file is refused whole.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The current backends.
    List {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum PtuCommand {
    /// Replace the PTU reservations with a CSV file (docs/reference-data.md,
    /// ptu-reservations.csv). Each row costs per PTU-hour or per PTU-month; ranges
    /// of one deployment must not overlap. A bad file is refused whole.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The current PTU reservations.
    List {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum OwnershipCommand {
    /// Replace cost centres and the mapping with a TOML file
    /// (docs/reference-data.md, ownership.toml).
    ///
    /// A request is charged to its subscription's cost centre, failing that its
    /// agent's, failing that its product's; otherwise it is unallocated. A mapping
    /// to an undeclared cost centre refuses the file and nothing changes.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The current mapping.
    List {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Dates, files, rows and bytes of the committed lake, per table.
    Ls {
        /// List every committed file (absolute path) instead: what another engine
        /// such as DuckDB or Spark should read.
        #[arg(long)]
        files: bool,
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
    /// Remove lake files that no committed batch names.
    ///
    /// Files younger than the grace period are kept: they may belong to an ingest
    /// that is still running. Batches left `writing` for longer are marked abandoned.
    Gc {
        /// Minimum age of an unreferenced file before it is removed, e.g. 30s, 15m, 1h.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        grace: std::time::Duration,
    },
    /// Publish every fact table as a Delta table (`<lake>/<table>/_delta_log/`).
    ///
    /// Adds to each table's log the files the manifest committed since its last
    /// Delta commit, and only those: files no committed batch names (a crashed
    /// ingest's) are never published. Ingest and the server publish as they
    /// commit; this command publishes a lake written before, or catches up after
    /// a crash. Running it again with nothing new writes nothing.
    Publish {
        #[arg(long, default_value = "table", value_name = "table|json|csv")]
        format: OutputFormat,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 30s, 15m, 1h"))?;
    let factor = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h or d)")),
    };
    // Up to ten years; anything longer is a typo.
    n.checked_mul(factor)
        .filter(|secs| *secs <= 10 * 365 * 86_400)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: longer than ten years"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("0").unwrap().as_secs(), 0);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert!(parse_duration("2w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("100000000d").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn months() {
        assert_eq!(parse_month("2026-10"), Ok(Month::new(2026, 10).unwrap()));
        assert!(parse_month("1969-12").is_err());
        assert!(parse_month("2026-13").is_err());
        assert!(parse_month("10/2026").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

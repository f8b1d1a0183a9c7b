//! Configuration layering: built-in defaults, then `tollgate.toml`, then `TOLLGATE_*`
//! environment variables, then flags (clap already merges the last two).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use tollgate_ingest::{DimensionSources, Dimensions};
use tollgate_store::{Clock, DatabaseUrl, LakeUrl, StoreConfig, TimeWindow};

use crate::cli::GlobalArgs;

const DEFAULT_DATA_DIR: &str = "./tollgate-data";
const DEFAULT_CONFIG_FILE: &str = "tollgate.toml";

/// What `tollgate.toml` may say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    lake_url: Option<String>,
    #[serde(default)]
    ingest: IngestFileConfig,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    lineage: LineageSection,
    #[serde(default)]
    alerts: AlertsSection,
}

/// `[alerts]` of tollgate.toml: receivers, and rules (`[[alerts.rule]]`) added
/// to the shipped defaults (a rule of the same name replaces one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    /// Where notifications go as Alertmanager v4 webhook payloads.
    pub webhook_url: Option<String>,
    /// An Alertmanager (`http://host:9093`) to push alerts to.
    pub alertmanager_url: Option<String>,
    /// This server's URL as people reach it, for links in notifications.
    pub external_url: Option<String>,
    #[serde(default)]
    pub rule: Vec<tollgate_reports::alerts::RuleSpec>,
}

/// `[lineage]` of tollgate.toml: the label taxonomy and what counts as outside.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineageSection {
    /// Sensitivity labels, least sensitive first (default: Purview's taxonomy).
    labels: Option<Vec<String>>,
    /// Node boundaries that face the outside world (default: external, public, global).
    external_boundaries: Option<Vec<String>>,
    /// Hosts model calls should go to: a traced call elsewhere bypassed the gateways.
    gateway_hosts: Option<Vec<String>>,
    /// Atlas / Purview classification -> label, for classifications that are
    /// not label names themselves.
    #[serde(default)]
    atlas_classifications: std::collections::HashMap<String, String>,
}

/// `[server]` of tollgate.toml: how `tollgate serve` behaves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on (default 127.0.0.1:8080).
    pub listen: Option<std::net::SocketAddr>,
    /// Where budget events are POSTed.
    pub webhook_url: Option<String>,
    /// `Cache-Control: max-age` on budget pulls, in seconds (default 30).
    pub budget_max_age_seconds: Option<u64>,
    /// Largest push-ingest body in MiB (default 64).
    pub max_ingest_mib: Option<usize>,
    /// Seconds between derivations (rollups, alerts, budgets) without a push
    /// (default 60).
    pub evaluate_every_seconds: Option<u64>,
    /// Milliseconds the deriver waits after a push before it starts, so a
    /// burst of pushes is derived once (default 0).
    pub derive_delay_ms: Option<u64>,
    /// Seconds a client has to send a request's headers (default 10).
    pub header_read_timeout_seconds: Option<u64>,
    /// Seconds a request's body has to arrive, plus one per 64 KiB it brings (default 30).
    pub body_timeout_seconds: Option<u64>,
    /// Seconds requests in flight get at shutdown before they are cut (default 30).
    pub shutdown_grace_seconds: Option<u64>,
    /// Seconds the background lease lasts unrenewed (default 15): with servers
    /// side by side, how soon another takes the background work over when its
    /// holder dies.
    pub lease_ttl_seconds: Option<u64>,
}

/// `[ingest]` of tollgate.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestFileConfig {
    /// `[ingest.dimensions]`: where agent, user, tool and priority come from.
    #[serde(default)]
    dimensions: DimensionSources,
    /// `[ingest.limits]`: what a record, a file and a batch may hold.
    #[serde(default)]
    limits: LimitsSection,
}

/// `[ingest.limits]` of tollgate.toml (docs/security.md); each key left out
/// keeps its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    /// The earliest day a record may be dated (default 2000-01-01), as a TOML
    /// date or a string.
    earliest: Option<DateValue>,
    /// How far past the wall clock a record may be dated (default 24).
    future_skew_hours: Option<u32>,
    /// Each token count of one request (default 1,000,000,000).
    max_tokens_per_request: Option<i64>,
    /// Ids and dimension values (default 4096).
    max_id_bytes: Option<usize>,
    /// Free text such as an error reason (default 65536).
    max_text_bytes: Option<usize>,
    /// One line, array element or CSV row (default 16).
    max_record_mib: Option<u64>,
    /// A JSON document read whole (default 32).
    max_document_mib: Option<u64>,
    /// A file after decompression (default 65536, 64 GiB).
    max_content_mib: Option<u64>,
    /// Quarantined records kept with their reasons per batch (default 1000).
    max_quarantine_rows: Option<usize>,
}

/// `2020-01-01` or `"2020-01-01"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DateValue {
    Toml(toml::value::Datetime),
    Text(String),
}

impl DateValue {
    fn day(&self) -> Result<chrono::NaiveDate> {
        let text = match self {
            DateValue::Toml(d) => d.to_string(),
            DateValue::Text(t) => t.clone(),
        };
        chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
            anyhow::anyhow!(
                "configuration [ingest.limits] earliest: {text:?} is not a YYYY-MM-DD day"
            )
        })
    }
}

impl LimitsSection {
    fn apply(&self) -> Result<(tollgate_ingest::Limits, TimeWindow)> {
        let mut limits = tollgate_ingest::Limits::default();
        let mut window = TimeWindow::default();
        // Within what the query engine's nanosecond times hold (1677 to 2262):
        // a wider window would let in the times that broke every report.
        if let Some(day) = &self.earliest {
            let day = day.day()?;
            if chrono::Datelike::year(&day) < 1970 {
                anyhow::bail!("configuration [ingest.limits] earliest: {day} is before 1970-01-01");
            }
            window.earliest = day.and_time(chrono::NaiveTime::MIN).and_utc();
        }
        if let Some(hours) = self.future_skew_hours {
            if hours > 168 {
                anyhow::bail!(
                    "configuration [ingest.limits] future_skew_hours: {hours} is more than a week (168)"
                );
            }
            window.future_skew = chrono::Duration::hours(i64::from(hours));
        }
        let positive = |name: &str, v: u64| {
            if v == 0 {
                anyhow::bail!("configuration [ingest.limits] {name}: must be at least 1");
            }
            Ok(v)
        };
        if let Some(v) = self.max_tokens_per_request {
            limits.max_tokens = positive("max_tokens_per_request", v.max(0) as u64)? as i64;
        }
        if let Some(v) = self.max_id_bytes {
            limits.max_id_bytes = positive("max_id_bytes", v as u64)? as usize;
        }
        if let Some(v) = self.max_text_bytes {
            limits.max_text_bytes = positive("max_text_bytes", v as u64)? as usize;
        }
        let mib = |name: &str, v: u64| -> Result<u64> {
            positive(name, v)?
                .checked_mul(tollgate_ingest::limits::MIB)
                .ok_or_else(|| anyhow::anyhow!("configuration [ingest.limits] {name}: too large"))
        };
        if let Some(v) = self.max_record_mib {
            limits.max_record_bytes = mib("max_record_mib", v)? as usize;
        }
        if let Some(v) = self.max_document_mib {
            limits.max_document_bytes = mib("max_document_mib", v)?;
        }
        if let Some(v) = self.max_content_mib {
            limits.max_content_bytes = mib("max_content_mib", v)?;
        }
        if let Some(v) = self.max_quarantine_rows {
            limits.max_quarantine_rows = v;
        }
        Ok((limits, window))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub dimensions: Dimensions,
    pub limits: tollgate_ingest::Limits,
    pub server: ServerSection,
    pub taxonomy: tollgate_lineage::Taxonomy,
    pub lineage_policy: tollgate_lineage::Policy,
    pub atlas_classifications: std::collections::HashMap<String, String>,
    pub alerts: AlertsSection,
}

impl Config {
    pub fn load(args: &GlobalArgs) -> Result<Config> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                read_file_config(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => FileConfig::default(),
        };
        Self::layer(args, file)
    }

    fn layer(args: &GlobalArgs, file: FileConfig) -> Result<Config> {
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .filter(|url| !url.is_empty())
            .map(|url| DatabaseUrl::parse(&url))
            .transpose()?;
        let lake_url = args
            .lake_url
            .clone()
            .or(file.lake_url)
            .filter(|url| !url.is_empty())
            .map(|url| LakeUrl::parse(&url))
            .transpose()?;
        let dimensions = Dimensions::from_sources(&file.ingest.dimensions)
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        let (limits, window) = file.ingest.limits.apply()?;
        let clock = args.now.map_or_else(Clock::system, Clock::fixed);
        let taxonomy = match file.lineage.labels {
            Some(labels) => tollgate_lineage::Taxonomy::new(labels)
                .map_err(|e| anyhow::anyhow!("configuration [lineage] labels: {e}"))?,
            None => tollgate_lineage::Taxonomy::default(),
        };
        for (class, label) in &file.lineage.atlas_classifications {
            taxonomy.rank(label).map_err(|e| {
                anyhow::anyhow!("configuration [lineage] atlas_classifications.{class}: {e}")
            })?;
        }
        let mut lineage_policy = tollgate_lineage::Policy::default();
        if let Some(hosts) = file.lineage.gateway_hosts {
            lineage_policy.gateway_hosts = hosts;
        }
        if let Some(boundaries) = file.lineage.external_boundaries {
            lineage_policy.external_boundaries = boundaries;
        }
        Ok(Config {
            store: StoreConfig {
                data_dir,
                database_url,
                lake_url,
                clock,
                window,
            },
            dimensions,
            limits,
            server: file.server,
            taxonomy,
            lineage_policy,
            atlas_classifications: file.lineage.atlas_classifications,
            alerts: file.alerts,
        })
    }
}

fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading configuration {}", path.display()))?;
    // The toml error quotes the offending line, which may hold a database password:
    // report the message and position only.
    toml::from_str(&text).map_err(|e| {
        let position = e.span().map(|span| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        });
        anyhow::anyhow!(
            "configuration {}: {}{}",
            path.display(),
            e.message(),
            position.unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(data_dir: Option<&str>, url: Option<&str>) -> GlobalArgs {
        GlobalArgs {
            data_dir: data_dir.map(PathBuf::from),
            database_url: url.map(str::to_owned),
            lake_url: None,
            config: None,
            now: None,
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let config = Config::layer(&args(None, None), FileConfig::default()).unwrap();
        assert_eq!(config.store.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(config.store.database_url.is_none());
        assert_eq!(
            config.store.lake_url(),
            LakeUrl::Local(PathBuf::from(DEFAULT_DATA_DIR).join("lake"))
        );
    }

    #[test]
    fn the_lake_url_flag_wins_over_the_file_and_a_bad_one_is_refused() {
        let file = FileConfig {
            lake_url: Some("s3://from-file/p".into()),
            ..FileConfig::default()
        };
        let mut flags = args(None, None);
        flags.lake_url = Some("az://from-flag/p".into());
        let config = Config::layer(&flags, file).unwrap();
        assert_eq!(config.store.lake_url().to_string(), "az://from-flag/p");
        flags.lake_url = Some("ftp://x/y".into());
        let err = Config::layer(&flags, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("unknown scheme ftp"), "{err}");
    }

    #[test]
    fn a_lineage_section_sets_the_taxonomy_and_a_bad_one_is_named() {
        let file: FileConfig = toml::from_str(
            "[lineage]\nlabels = [\"Open\", \"Secret\"]\nexternal_boundaries = [\"internet\"]\n",
        )
        .unwrap();
        let config = Config::layer(&args(None, None), file).unwrap();
        assert_eq!(config.taxonomy.rank("secret").unwrap().0, 1);
        assert_eq!(config.lineage_policy.external_boundaries, ["internet"]);
        let file: FileConfig =
            toml::from_str("[lineage.atlas_classifications]\n\"PII\" = \"Top\"\n").unwrap();
        let err = Config::layer(&args(None, None), file)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("atlas_classifications.PII") && err.contains("\"Top\""),
            "{err}"
        );
        let file: FileConfig = toml::from_str("[lineage]\nlabels = [\"A\", \"a\"]\n").unwrap();
        let err = Config::layer(&args(None, None), file)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[lineage] labels") && err.contains("twice"),
            "{err}"
        );
    }

    #[test]
    fn flags_and_env_win_over_the_file() {
        let file = FileConfig {
            data_dir: Some("/from/file".into()),
            database_url: Some("postgres://u:filepw@h/db".into()),
            lake_url: None,
            ingest: IngestFileConfig::default(),
            server: ServerSection::default(),
            lineage: LineageSection::default(),
            alerts: AlertsSection::default(),
        };
        let config = Config::layer(&args(Some("/from/flag"), None), file).unwrap();
        assert_eq!(config.store.data_dir, PathBuf::from("/from/flag"));
        let url = config.store.database_url.unwrap();
        assert_eq!(url.expose(), "postgres://u:filepw@h/db");
        assert!(!format!("{config:?}", config = url).contains("filepw"));
    }

    #[test]
    fn dimension_sources_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.toml");
        std::fs::write(
            &path,
            "[ingest.dimensions]\nagent = [\"header:x-copilot\"]\n",
        )
        .unwrap();
        let config = Config::layer(&args(None, None), read_file_config(&path).unwrap()).unwrap();
        assert_ne!(config.dimensions, Dimensions::default());

        std::fs::write(&path, "[ingest.dimensions]\nagent = [\"cookie:x\"]\n").unwrap();
        let err = Config::layer(&args(None, None), read_file_config(&path).unwrap()).unwrap_err();
        assert!(err.to_string().contains("ingest.dimensions.agent"), "{err}");
    }

    #[test]
    fn ingest_limits_come_from_the_file_and_are_checked() {
        let file: FileConfig = toml::from_str(
            "[ingest.limits]\nearliest = 2020-01-01\nfuture_skew_hours = 2\nmax_record_mib = 4\nmax_quarantine_rows = 5\n",
        )
        .unwrap();
        let config = Config::layer(&args(None, None), file).unwrap();
        assert_eq!(config.store.window.future_skew, chrono::Duration::hours(2));
        assert_eq!(
            config.store.window.earliest.to_rfc3339(),
            "2020-01-01T00:00:00+00:00"
        );
        assert_eq!(config.limits.max_record_bytes, 4 << 20);
        assert_eq!(config.limits.max_quarantine_rows, 5);
        let file: FileConfig = toml::from_str("[ingest.limits]\nmax_content_mib = 0\n").unwrap();
        let err = Config::layer(&args(None, None), file).unwrap_err();
        assert!(err.to_string().contains("max_content_mib"), "{err}");
        assert!(toml::from_str::<FileConfig>("[ingest.limits]\nmax_tokens = 5\n").is_err());
        let file: FileConfig =
            toml::from_str("[ingest.limits]\nearliest = \"2021-02-03\"\n").unwrap();
        let config = Config::layer(&args(None, None), file).unwrap();
        assert_eq!(
            config.store.window.earliest.to_rfc3339(),
            "2021-02-03T00:00:00+00:00"
        );
        for bad in [
            "earliest = \"soon\"",
            "earliest = 1500-01-01",
            "future_skew_hours = 4000000000",
        ] {
            let file: FileConfig = toml::from_str(&format!("[ingest.limits]\n{bad}\n")).unwrap();
            let err = Config::layer(&args(None, None), file)
                .unwrap_err()
                .to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, "data_dri = \"x\"\n").unwrap();
        let err = format!("{:#}", read_file_config(&path).unwrap_err());
        assert!(
            err.contains("tollgate.toml") && err.contains("data_dri"),
            "{err}"
        );

        std::fs::write(&path, "database_uri = \"postgres://tg:s3cret@h/db\"\n").unwrap();
        let err = format!("{:#}", read_file_config(&path).unwrap_err());
        assert!(
            err.contains("database_uri") && err.contains("line 1"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");

        let err = Config::layer(&args(None, Some("mysql://x")), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("expected postgres://"), "{err}");
    }
}

//! What a cloud cost line's meter bills: a model's input, cached input or output
//! tokens at a deployment type, or provisioned hours. Invoice reconciliation
//! reads billed cost lines (Azure Cost Management exports) through it to set
//! them against the chargeback estimated from gateway logs.
//!
//! A meter is read from the meter map (`meters.csv`, [`parse_meter_map`]) when
//! it lists the meter, and otherwise by the default Azure OpenAI / Foundry
//! naming ([`parse_meter_name`]); a meter neither can read is unmapped, and the
//! caller reports it as such.
//!
//! # The default naming
//!
//! Azure's real meter names vary (`gpt-4o 0806 Inp glbl 1M Tokens`,
//! `gpt-4o-mini-0718-Outp-DZone Tokens`, `GPT 4.1 Inp regnl 1M Tokens`), so
//! the reading is tolerant. The name is lower-cased and split on spaces,
//! hyphens and underscores into words (a name longer than 256 characters is not
//! read at all); then:
//!
//! - `provisioned managed unit` (anywhere, possibly with `global` or `data
//!   zone`/`datazone`/`dzone` before it) bills provisioned hours: no model, a
//!   unit of 1, and GlobalProvisionedManaged, DataZoneProvisionedManaged or
//!   ProvisionedManaged.
//! - The kind word: `inp`/`input` is input, or cached input when preceded by
//!   (or joined with) `cchd`/`cached`/`cache`/`cd` (`cchd Inp`, `cached-inp`,
//!   `Cached Input`, `cchdinp`); `outp`/`output`/`out` is output. A name with
//!   no kind word is not read.
//! - Scope words: `glbl`/`global`/`gl` for global; `dzone`/`dz`/`datazone` or
//!   `data zone` for data zone; `regnl`/`regional`/`rgnl`, or none, for
//!   regional. The first one wins.
//! - `batch`/`btch` anywhere means batch. Global is GlobalStandard (GlobalBatch
//!   when batch), data zone DataZoneStandard (DataZoneBatch), regional Standard;
//!   regional batch does not exist, so it is read as GlobalBatch.
//! - The unit: `1m`, `1k`, `<n>k`, `<n>m` or `<n>` followed by `tokens` gives
//!   its size; `tokens` alone leaves it to the line's unit column.
//! - The version: a 4-digit word (`0806`) or a date (`2024 08 06`: three
//!   numeric words yyyy mm dd) directly after the model words is dropped.
//! - The model: the words before the first version, kind, cached, batch, scope
//!   or unit word, joined with `-` (`gpt 4o mini` is `gpt-4o-mini`, `gpt-4.1`
//!   stays `gpt-4.1`). A name with no model words is not read.
//!
//! Other words after the model are ignored.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use tollgate_store::state::MeterRow;

use crate::Result;
use crate::csv_table::{self, Fields};
use crate::price_book::DEPLOYMENT_TYPES;

/// What a billed unit is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Input,
    CachedInput,
    Output,
    ProvisionedHour,
}

impl TokenKind {
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Input,
        TokenKind::CachedInput,
        TokenKind::Output,
        TokenKind::ProvisionedHour,
    ];

    /// The name in `meters.csv` and the state database.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Input => "input",
            TokenKind::CachedInput => "cached_input",
            TokenKind::Output => "output",
            TokenKind::ProvisionedHour => "provisioned_hour",
        }
    }
}

impl std::str::FromStr for TokenKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        TokenKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of {}", kind_names().join(", ")))
    }
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn kind_names() -> [&'static str; 4] {
    TokenKind::ALL.map(TokenKind::as_str)
}

/// What one meter bills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    /// None for provisioned hours, which bill a deployment, not a model.
    pub model: Option<String>,
    pub kind: TokenKind,
    /// One of [`DEPLOYMENT_TYPES`].
    pub deployment_type: &'static str,
    /// Tokens (or hours) one unit of the line's quantity stands for, when the meter's
    /// name says it (`1M Tokens` -> 1_000_000, `1K` -> 1_000); None when only the
    /// line's unit column can say.
    pub unit: Option<i64>,
}

/// Names longer than this are not meter names; reading them is not worth it.
const MAX_NAME_CHARS: usize = 256;

/// Where a deployment serves from, as a meter name says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Global,
    DataZone,
    Regional,
}

/// What a word (or a few) of a meter name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Version,
    Kind(TokenKind),
    Cached,
    Scope(Scope),
    Batch,
    Unit(Option<i64>),
    /// A model word before the first of the others; ignored after it.
    Other,
}

/// Reads an Azure OpenAI / Foundry meter name by the default naming (the module
/// documentation). None when the name is not one (an unmapped meter, reported
/// as such by the caller).
pub fn parse_meter_name(name: &str) -> Option<Meter> {
    if name.chars().nth(MAX_NAME_CHARS).is_some() {
        return None;
    }
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect();
    provisioned(&words).or_else(|| tokens(&words))
}

/// A provisioned managed unit meter: hours of a deployment.
fn provisioned(words: &[&str]) -> Option<Meter> {
    let at = words
        .windows(3)
        .position(|w| matches!(w, ["provisioned", "managed", "unit" | "units"]))?;
    let deployment_type = match first_scope(words.get(..at).unwrap_or_default()) {
        Scope::Global => "GlobalProvisionedManaged",
        Scope::DataZone => "DataZoneProvisionedManaged",
        Scope::Regional => "ProvisionedManaged",
    };
    Some(Meter {
        model: None,
        kind: TokenKind::ProvisionedHour,
        deployment_type,
        unit: Some(1),
    })
}

/// The first scope the words name, regional if none.
fn first_scope(mut words: &[&str]) -> Scope {
    while !words.is_empty() {
        let (word, n) = classify(words);
        if let Word::Scope(scope) = word {
            return scope;
        }
        words = words.get(n..).unwrap_or_default();
    }
    Scope::Regional
}

/// What a token meter's name says, word by word.
#[derive(Debug, Default)]
struct Reading<'w> {
    model: Vec<&'w str>,
    past_model: bool,
    kind: Option<TokenKind>,
    cached: bool,
    scope: Option<Scope>,
    batch: bool,
    unit: Option<i64>,
}

impl<'w> Reading<'w> {
    fn note(&mut self, word: Word, first: &'w str) {
        if word != Word::Other {
            self.past_model = true;
        }
        match word {
            Word::Other if !self.past_model => self.model.push(first),
            Word::Kind(kind) if self.kind.is_none() => {
                self.kind = Some(match kind {
                    TokenKind::Input if self.cached => TokenKind::CachedInput,
                    other => other,
                });
            }
            Word::Cached => self.cached = true,
            Word::Scope(scope) => {
                self.scope.get_or_insert(scope);
            }
            Word::Batch => self.batch = true,
            Word::Unit(unit) => self.unit = unit,
            _ => {}
        }
    }
}

/// A token meter: a model's input, cached input or output tokens.
fn tokens(words: &[&str]) -> Option<Meter> {
    let mut reading = Reading::default();
    let mut rest = words;
    while let [first, ..] = rest {
        let (word, n) = classify(rest);
        reading.note(word, first);
        rest = rest.get(n..).unwrap_or_default();
    }
    let kind = reading.kind?;
    if reading.model.is_empty() {
        return None;
    }
    let deployment_type = match (reading.scope.unwrap_or(Scope::Regional), reading.batch) {
        (Scope::Global, false) => "GlobalStandard",
        (Scope::DataZone, false) => "DataZoneStandard",
        (Scope::Regional, false) => "Standard",
        (Scope::DataZone, true) => "DataZoneBatch",
        // Batch is global or data zone only; a regional batch meter is global.
        (Scope::Global | Scope::Regional, true) => "GlobalBatch",
    };
    Some(Meter {
        model: Some(reading.model.join("-")),
        kind,
        deployment_type,
        unit: reading.unit,
    })
}

/// What the words at the start of `words` say, and how many of them say it.
fn classify(words: &[&str]) -> (Word, usize) {
    match words {
        ["data", "zone", ..] => (Word::Scope(Scope::DataZone), 2),
        [size, "tokens" | "token", ..] if sized(size).is_some() => (Word::Unit(sized(size)), 2),
        ["tokens" | "token", ..] => (Word::Unit(None), 1),
        [y, m, d, ..] if digits(y, 4..=4) && digits(m, 1..=2) && digits(d, 1..=2) => {
            (Word::Version, 3)
        }
        [w, ..] if digits(w, 4..=4) => (Word::Version, 1),
        [w, ..] => (one_word(w), 1),
        [] => (Word::Other, 1),
    }
}

/// What a single word says.
fn one_word(word: &str) -> Word {
    match word {
        "inp" | "input" => Word::Kind(TokenKind::Input),
        "outp" | "output" | "out" => Word::Kind(TokenKind::Output),
        "cchd" | "cached" | "cache" | "cd" => Word::Cached,
        "glbl" | "global" | "gl" => Word::Scope(Scope::Global),
        "dzone" | "dz" | "datazone" => Word::Scope(Scope::DataZone),
        "regnl" | "regional" | "rgnl" => Word::Scope(Scope::Regional),
        "batch" | "btch" => Word::Batch,
        // Joined spellings such as `cchdinp` or `cachedinput`.
        _ if ["cchd", "cached", "cache", "cd"].iter().any(|prefix| {
            word.strip_prefix(prefix)
                .is_some_and(|rest| matches!(rest, "inp" | "input"))
        }) =>
        {
            Word::Kind(TokenKind::CachedInput)
        }
        _ => Word::Other,
    }
}

/// Whether `word` is all ASCII digits, with a length in `len`.
fn digits(word: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&word.len()) && word.bytes().all(|b| b.is_ascii_digit())
}

/// A count such as `1m`, `10k` or `1000` (any case): positive, or None.
fn sized(word: &str) -> Option<i64> {
    let lower = word.to_ascii_lowercase();
    let (number, scale) = if let Some(n) = lower.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = lower.strip_suffix('k') {
        (n, 1_000)
    } else {
        (lower.as_str(), 1)
    };
    // Digits only: `i64::from_str` would take a sign.
    if !digits(number, 1..=18) {
        return None;
    }
    let size = number.parse::<i64>().ok()?.checked_mul(scale)?;
    (size > 0).then_some(size)
}

/// The size of a unit column's value: "1M Tokens", "1K Tokens", "1000 Tokens",
/// "Tokens", "1 Hour", "Hours", "10K" ... -> Some(1_000_000), Some(1000),
/// Some(1000), Some(1), Some(1), Some(1), Some(10_000). None when unreadable.
pub fn unit_size(unit: &str) -> Option<i64> {
    const NAMES: [&str; 6] = ["tokens", "token", "hours", "hour", "hrs", "hr"];
    let words: Vec<&str> = unit.split_whitespace().collect();
    let named = |w: &str| NAMES.iter().any(|n| n.eq_ignore_ascii_case(w));
    match words.as_slice() {
        [name] if named(name) => Some(1),
        [size] => sized(size),
        [size, name] if named(name) => sized(size),
        _ => None,
    }
}

const COLUMNS: [&str; 5] = ["meter", "model", "token_kind", "deployment_type", "unit"];

/// Reads and checks `meters.csv` (columns meter, model, token_kind,
/// deployment_type, unit; model may be empty only for provisioned_hour, which
/// must be at a provisioned deployment type and the other kinds at any other;
/// unit is 1, 1K, 1M, or a positive integer; a meter listed twice,
/// case-insensitively, is a problem naming both lines). Every problem is named
/// by line and field, and the file refused whole.
pub fn parse_meter_map(path: &Path, text: &str) -> Result<Vec<MeterRow>> {
    let mut table = csv_table::read(path, text, &COLUMNS, &[], meter_row)?;
    // By key, not pairwise: a hostile file may have many rows.
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for (line, row) in &table.rows {
        match first_line.entry(row.meter.to_lowercase()) {
            Entry::Vacant(v) => {
                v.insert(*line);
            }
            Entry::Occupied(o) => table.problems.push(format!(
                "lines {} and {line}: meter {:?} is listed twice (meters match case-insensitively)",
                o.get(),
                row.meter
            )),
        }
    }
    table.finish(path)
}

fn meter_row(f: &mut Fields<'_>, source: &str) -> Option<MeterRow> {
    let meter = f.required("meter");
    let token_kind = f.one_of("token_kind", &kind_names());
    let deployment_type = f.one_of("deployment_type", &DEPLOYMENT_TYPES);
    // Checks across fields only when the fields themselves are good: their
    // problems are already named.
    let kind = token_kind.parse::<TokenKind>().ok();
    let provisioned_kind = kind == Some(TokenKind::ProvisionedHour);
    let model = Some(f.text("model").to_owned()).filter(|m| !m.is_empty());
    if model.is_none() && kind.is_some() && !provisioned_kind {
        let what =
            format!("missing (only provisioned_hour meters bill no model, this is {token_kind})");
        f.problem("model", what);
    }
    let known_type = DEPLOYMENT_TYPES.contains(&deployment_type.as_str());
    let provisioned_type = deployment_type.ends_with("ProvisionedManaged");
    if kind.is_some() && known_type && provisioned_kind != provisioned_type {
        // Azure bills PTU deployments by the hour and the others by the token.
        let what = format!("{token_kind} is not billed at a {deployment_type} deployment");
        f.problem("deployment_type", what);
    }
    let unit = map_unit(f);
    Some(MeterRow {
        meter,
        model,
        token_kind,
        deployment_type,
        unit,
        source: source.to_owned(),
    })
}

/// The unit column: 1, 1K, 1M or a positive whole number.
fn map_unit(f: &mut Fields<'_>) -> i64 {
    let text = f.text("unit").to_owned();
    let size = match text.as_str() {
        "1K" => Some(1_000),
        "1M" => Some(1_000_000),
        other if digits(other, 1..=18) => other.parse::<i64>().ok().filter(|&n| n > 0),
        _ => None,
    };
    match size {
        Some(size) => size,
        None if text.is_empty() => {
            f.problem("unit", "missing".to_owned());
            0
        }
        None => {
            let what = format!(
                "{text:?} is not 1, 1K, 1M or a positive whole number (tokens or hours per unit of quantity)"
            );
            f.problem("unit", what);
            0
        }
    }
}

/// Reads `meters.csv` at `path`, checks it whole, and replaces the stored map.
pub async fn import(db: &tollgate_store::StateDb, path: &Path) -> Result<Vec<MeterRow>> {
    let text = crate::csv_table::read_file(path)?;
    let rows = parse_meter_map(path, &text)?;
    db.replace_meter_map(&rows).await?;
    Ok(rows)
}

/// The stored map with the default naming behind it.
#[derive(Debug, Clone, Default)]
pub struct MeterMap {
    /// By lower-cased, trimmed meter: what it bills and the row's source.
    rows: HashMap<String, (Meter, String)>,
}

impl MeterMap {
    /// The map of stored rows. A row whose token kind or deployment type does not
    /// parse is skipped with a warning: stored rows were checked on import, so
    /// such a row means the database was changed behind Tollgate's back.
    pub fn new(rows: &[MeterRow]) -> MeterMap {
        let mut map = HashMap::new();
        for row in rows {
            let Some(meter) = stored_meter(row) else {
                continue;
            };
            map.entry(key(&row.meter))
                .or_insert_with(|| (meter, row.source.clone()));
        }
        MeterMap { rows: map }
    }

    /// A row of the map (exact meter, case-insensitive, trimmed) wins; else
    /// [`parse_meter_name`].
    pub fn resolve(&self, meter: &str) -> Option<Meter> {
        match self.rows.get(&key(meter)) {
            Some((row, _)) => Some(row.clone()),
            None => parse_meter_name(meter),
        }
    }

    /// Where the answer came from, for the report: the row's source
    /// ("meters.csv:4") or "default naming".
    pub fn origin(&self, meter: &str) -> &str {
        self.rows
            .get(&key(meter))
            .map_or("default naming", |(_, source)| source.as_str())
    }
}

fn key(meter: &str) -> String {
    meter.trim().to_lowercase()
}

/// What a stored row bills, or None (warned) when it does not parse.
fn stored_meter(row: &MeterRow) -> Option<Meter> {
    let kind = match row.token_kind.parse::<TokenKind>() {
        Ok(kind) => kind,
        Err(e) => {
            tracing::warn!(meter = %row.meter, source = %row.source, "stored meter map row skipped: token_kind {e}");
            return None;
        }
    };
    let Some(deployment_type) = DEPLOYMENT_TYPES
        .into_iter()
        .find(|t| *t == row.deployment_type)
    else {
        tracing::warn!(meter = %row.meter, source = %row.source, deployment_type = %row.deployment_type, "stored meter map row skipped: unknown deployment type");
        return None;
    };
    Some(Meter {
        model: row.model.clone(),
        kind,
        deployment_type,
        unit: Some(row.unit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReportsError;

    /// A meter as one line: model (`-` for none), kind, deployment type, unit
    /// (`?` when the name does not say it); `unmapped` for None.
    fn render(meter: Option<Meter>) -> String {
        match meter {
            None => "unmapped".to_owned(),
            Some(m) => format!(
                "{} {} {} {}",
                m.model.as_deref().unwrap_or("-"),
                m.kind,
                m.deployment_type,
                m.unit.map_or("?".to_owned(), |u| u.to_string())
            ),
        }
    }

    fn check(input: &str, expect: &str) {
        assert_eq!(render(parse_meter_name(input)), expect, "{input:?}");
    }

    #[test]
    fn default_naming_reads_azure_meter_names() {
        check(
            "gpt-4o 0806 Inp glbl 1M Tokens",
            "gpt-4o input GlobalStandard 1000000",
        );
        check(
            "gpt-4o 0806 Outp glbl 1M Tokens",
            "gpt-4o output GlobalStandard 1000000",
        );
        check(
            "gpt-4o 0806 cchd Inp glbl 1M Tokens",
            "gpt-4o cached_input GlobalStandard 1000000",
        );
        check(
            "gpt 4o mini 0718 Inp DZone 1M Tokens",
            "gpt-4o-mini input DataZoneStandard 1000000",
        );
        check(
            "gpt-4o-mini-0718-Outp-DZone Tokens",
            "gpt-4o-mini output DataZoneStandard ?",
        );
        check(
            "GPT 4.1 Inp regnl 1M Tokens",
            "gpt-4.1 input Standard 1000000",
        );
        check(
            "gpt-4o 0806 Batch Inp glbl 1M Tokens",
            "gpt-4o input GlobalBatch 1000000",
        );
        check(
            "o3 mini 0131 Outp glbl 1K Tokens",
            "o3-mini output GlobalStandard 1000",
        );
        check(
            "gpt-4o-2024-08-06 Inp glbl 1M Tokens",
            "gpt-4o input GlobalStandard 1000000",
        );
        check(
            "Provisioned Managed Unit",
            "- provisioned_hour ProvisionedManaged 1",
        );
        check(
            "Global Provisioned Managed Unit",
            "- provisioned_hour GlobalProvisionedManaged 1",
        );
        check(
            "Data Zone Provisioned Managed Unit",
            "- provisioned_hour DataZoneProvisionedManaged 1",
        );
    }

    #[test]
    fn default_naming_is_tolerant_of_spelling() {
        check(
            "gpt-4.1-mini cached-inp gl 1M Tokens",
            "gpt-4.1-mini cached_input GlobalStandard 1000000",
        );
        check(
            "GPT-4o Cached Input Global 1M Tokens",
            "gpt-4o cached_input GlobalStandard 1000000",
        );
        check(
            "gpt_4o_0806_cchdinp_glbl tokens",
            "gpt-4o cached_input GlobalStandard ?",
        );
        check(
            "o3 mini output data zone btch 10k tokens",
            "o3-mini output DataZoneBatch 10000",
        );
        check(
            "gpt-4o 0513 Batch Outp regnl 1M Tokens",
            "gpt-4o output GlobalBatch 1000000",
        );
        check("gpt 4o 1120 out rgnl", "gpt-4o output Standard ?");
        check(
            "DZone Provisioned Managed Unit",
            "- provisioned_hour DataZoneProvisionedManaged 1",
        );
        check(
            "datazone provisioned managed unit",
            "- provisioned_hour DataZoneProvisionedManaged 1",
        );
    }

    #[test]
    fn default_naming_leaves_other_meters_unmapped() {
        check("Standard Storage LRS", "unmapped");
        check("", "unmapped");
        check("   - _ ", "unmapped");
        check("Inp glbl 1M Tokens", "unmapped");
        check("gpt-4o 0806 glbl 1M Tokens", "unmapped");
        check("0806 Inp glbl 1M Tokens", "unmapped");
        check(&format!("gpt-4o {} Inp", "x".repeat(256)), "unmapped");
        check(&format!("{}inp", "gpt ".repeat(64)), "unmapped");
        // Hostile sizes neither panic nor overflow.
        check(
            "gpt-4o inp 99999999999999999m tokens",
            "gpt-4o input Standard ?",
        );
        check("gpt-4o inp 0k tokens", "gpt-4o input Standard ?");
        check("gpt-4o inp +1m tokens", "gpt-4o input Standard ?");
        check("\u{130}\u{130} inp", "i\u{307}i\u{307} input Standard ?");
    }

    #[test]
    fn a_name_of_at_most_256_chars_is_read() {
        let model = "m".repeat(256 - " inp".len());
        assert_eq!(
            parse_meter_name(&format!("{model} inp")).and_then(|m| m.model),
            Some(model)
        );
    }

    #[test]
    fn every_deployment_type_named_is_a_known_one() {
        let names = [
            "gpt inp glbl",
            "gpt inp dz",
            "gpt inp",
            "gpt inp glbl batch",
            "gpt inp dz batch",
            "gpt inp batch",
            "provisioned managed unit",
            "global provisioned managed unit",
            "data zone provisioned managed unit",
        ];
        for name in names {
            let meter = parse_meter_name(name);
            assert!(
                meter.is_some_and(|m| DEPLOYMENT_TYPES.contains(&m.deployment_type)),
                "{name}"
            );
        }
    }

    #[test]
    fn token_kinds_round_trip_through_text() {
        for kind in TokenKind::ALL {
            assert_eq!(kind.as_str().parse::<TokenKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(
                serde_json::to_string(&kind).ok(),
                Some(format!("{:?}", kind.as_str()))
            );
        }
        assert_eq!(
            "Input".parse::<TokenKind>(),
            Err("\"Input\" is not one of input, cached_input, output, provisioned_hour".to_owned())
        );
    }

    #[test]
    fn unit_sizes_are_read_from_unit_columns() {
        let cases = [
            ("1M Tokens", Some(1_000_000)),
            ("1K Tokens", Some(1_000)),
            ("1000 Tokens", Some(1_000)),
            ("Tokens", Some(1)),
            ("1 Hour", Some(1)),
            ("Hours", Some(1)),
            ("10K", Some(10_000)),
            ("  1m  tokens ", Some(1_000_000)),
            ("100 Hours", Some(100)),
            ("", None),
            ("0 Tokens", None),
            ("-1 Tokens", None),
            ("+1 Tokens", None),
            ("1 GB/Month", None),
            ("1M Tokens please", None),
            ("99999999999999999M", None),
            ("1.5K Tokens", None),
        ];
        for (unit, size) in cases {
            assert_eq!(unit_size(unit), size, "{unit:?}");
        }
    }

    const HEADER: &str = "meter,model,token_kind,deployment_type,unit\n";

    fn problems(body: &str) -> Vec<String> {
        match parse_meter_map(Path::new("meters.csv"), &format!("{HEADER}{body}")) {
            Err(ReportsError::Invalid { problems, .. }) => problems,
            other => panic!("expected refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_good_meter_map_parses() {
        let rows = parse_meter_map(
            Path::new("meters.csv"),
            &format!(
                "{HEADER}gpt-4o Inp glbl,gpt-4o,input,GlobalStandard,1M\n\
                 \"gpt-4o cchd Inp glbl\",gpt-4o,cached_input,GlobalStandard,1K\n\
                 My PTU,,provisioned_hour,ProvisionedManaged,1\n\
                 o3 Out,o3,output,GlobalBatch,1000\n"
            ),
        )
        .unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[0],
            MeterRow {
                meter: "gpt-4o Inp glbl".to_owned(),
                model: Some("gpt-4o".to_owned()),
                token_kind: "input".to_owned(),
                deployment_type: "GlobalStandard".to_owned(),
                unit: 1_000_000,
                source: "meters.csv:2".to_owned(),
            }
        );
        assert_eq!(rows[1].unit, 1_000);
        assert_eq!((rows[2].model.as_deref(), rows[2].unit), (None, 1));
        assert_eq!(
            (rows[3].unit, rows[3].source.as_str()),
            (1_000, "meters.csv:5")
        );
    }

    #[test]
    fn every_problem_of_a_meter_map_is_named_by_line() {
        let got = problems(
            "gpt-4o Inp glbl,gpt-4o,input,GlobalStandard,1M\n\
             odd,gpt-4o,tokens,GlobalStandard,1M\n\
             no model,,input,GlobalStandard,1M\n\
             bad unit,gpt-4o,output,GlobalStandard,per token\n\
             GPT-4O INP GLBL,gpt-4o,input,GlobalStandard,1K\n\
             zero,gpt-4o,output,GlobalStandard,0\n",
        );
        assert_eq!(
            got,
            vec![
                "line 3, field `token_kind`: \"tokens\" is not one of input, cached_input, output, provisioned_hour",
                "line 4, field `model`: missing (only provisioned_hour meters bill no model, this is input)",
                "line 5, field `unit`: \"per token\" is not 1, 1K, 1M or a positive whole number (tokens or hours per unit of quantity)",
                "line 7, field `unit`: \"0\" is not 1, 1K, 1M or a positive whole number (tokens or hours per unit of quantity)",
                "lines 2 and 6: meter \"GPT-4O INP GLBL\" is listed twice (meters match case-insensitively)",
            ]
        );
    }

    #[test]
    fn a_kind_that_cannot_bill_its_deployment_type_is_refused() {
        let got = problems(
            "ptu tokens,gpt-4o,input,ProvisionedManaged,1M\n\
             paygo hours,,provisioned_hour,GlobalStandard,1\n\
             ,,,,\n",
        );
        assert_eq!(
            got,
            vec![
                "line 2, field `deployment_type`: input is not billed at a ProvisionedManaged deployment",
                "line 3, field `deployment_type`: provisioned_hour is not billed at a GlobalStandard deployment",
                "line 4, field `meter`: missing",
                "line 4, field `token_kind`: missing",
                "line 4, field `deployment_type`: missing",
                "line 4, field `unit`: missing",
            ]
        );
    }

    /// A stored row; `what` is `model kind deployment_type unit` (model `-` for none).
    fn stored(line: u32, meter: &str, what: &str) -> MeterRow {
        let fields: Vec<&str> = what.split(' ').collect();
        let [model, kind, deployment, unit] = fields.as_slice() else {
            panic!("{what:?}")
        };
        MeterRow {
            meter: meter.to_owned(),
            model: Some(model.to_string()).filter(|m| m != "-"),
            token_kind: kind.to_string(),
            deployment_type: deployment.to_string(),
            unit: unit.parse().unwrap(),
            source: format!("meters.csv:{line}"),
        }
    }

    #[test]
    fn a_map_row_wins_over_the_default_naming() {
        let map = MeterMap::new(&[
            stored(
                2,
                "gpt-4o 0806 Inp glbl 1M Tokens",
                "gpt-4o-eu input DataZoneStandard 1000",
            ),
            stored(
                3,
                "Contoso PTU",
                "- provisioned_hour GlobalProvisionedManaged 1",
            ),
            stored(4, "broken kind", "x tokens Standard 1"),
            stored(5, "broken type", "x input Premium 1"),
        ]);
        let mapped = map.resolve("  GPT-4O 0806 inp GLBL 1m tokens ");
        assert_eq!(render(mapped), "gpt-4o-eu input DataZoneStandard 1000");
        assert_eq!(map.origin("gpt-4o 0806 INP glbl 1M Tokens"), "meters.csv:2");
        assert_eq!(
            render(map.resolve("contoso ptu")),
            "- provisioned_hour GlobalProvisionedManaged 1"
        );
        assert_eq!(map.origin("Contoso PTU "), "meters.csv:3");
        // Not in the map: the default naming answers.
        let named = map.resolve("gpt-4o 0806 Outp glbl 1M Tokens");
        assert_eq!(render(named), "gpt-4o output GlobalStandard 1000000");
        assert_eq!(
            map.origin("gpt-4o 0806 Outp glbl 1M Tokens"),
            "default naming"
        );
        // Rows that do not parse were skipped.
        assert_eq!(render(map.resolve("broken kind")), "unmapped");
        assert_eq!(map.origin("broken type"), "default naming");
        assert_eq!(
            render(MeterMap::default().resolve("Standard Storage LRS")),
            "unmapped"
        );
    }
}

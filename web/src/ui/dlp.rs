//! DLP hits: Purview-style DLP events and the requests gateways blocked for
//! content safety (the `security_hits` view), newest first, with filters, and
//! the count per agent.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tollgate_lineage::{HitGrouping, hit_counts};

use super::session::WebUser;
use super::{Chrome, Page, PageQuery, PageResult, Section, count, urlencode};
use crate::error::AppError;
use crate::state::AppState;

const SHOWN: usize = 500;
const COLUMNS: [&str; 10] = [
    "time",
    "agent",
    "source",
    "policy",
    "rule",
    "label",
    "severity",
    "action",
    "user_id",
    "resource_name",
];

#[derive(Debug, Default, Deserialize)]
pub struct HitFilter {
    agent: Option<String>,
    label: Option<String>,
    severity: Option<String>,
    action: Option<String>,
    /// YYYY-MM-DD, inclusive.
    from: Option<String>,
    /// YYYY-MM-DD, inclusive.
    to: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A string as an SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn day(field: &str, text: &str) -> Result<chrono::NaiveDate, AppError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
        AppError::BadRequest(format!("{field}: {text:?} is not a day (YYYY-MM-DD): {e}"))
    })
}

impl HitFilter {
    /// The query for the hits this filter keeps, newest first.
    fn sql(&self) -> Result<String, AppError> {
        let mut conditions = Vec::new();
        for (column, value) in [
            ("agent", &self.agent),
            ("label", &self.label),
            ("severity", &self.severity),
            ("action", &self.action),
        ] {
            if let Some(v) = given(value) {
                conditions.push(format!("{column} = {}", literal(v)));
            }
        }
        if let Some(from) = given(&self.from) {
            let from = day("from", from)?;
            conditions.push(format!("time >= TIMESTAMP '{from}T00:00:00Z'"));
        }
        if let Some(to) = given(&self.to) {
            let next = day("to", to)?.succ_opt().unwrap_or(chrono::NaiveDate::MAX);
            conditions.push(format!("time < TIMESTAMP '{next}T00:00:00Z'"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        Ok(format!(
            "SELECT {} FROM security_hits{filter} ORDER BY time DESC, hit_id LIMIT {}",
            COLUMNS.join(", "),
            SHOWN + 1
        ))
    }
}

#[derive(askama::Template)]
#[template(path = "dlp.html")]
struct DlpPage {
    chrome: Chrome,
    agent: String,
    label: String,
    severity: String,
    action: String,
    from: String,
    to: String,
    labels: Vec<String>,
    columns: [&'static str; 10],
    rows: Vec<Vec<String>>,
    more: bool,
    by_agent: Vec<(String, String, String, String)>,
}

pub async fn page(
    user: WebUser,
    State(state): State<AppState>,
    PageQuery(f): PageQuery<HitFilter>,
) -> PageResult<Response> {
    user.require(Section::Security)?;
    let sql = f.sql()?;
    // Queries hold memory up to their bound each: only so many at once.
    let Ok(_slot) = state.sql_slots.try_acquire() else {
        return Err(AppError::Busy(1).into());
    };
    let answer = state
        .store
        .sql_bounded(&sql, state.config.sql_limits)
        .await?;
    let json = tollgate_store::output::json_rows(&answer.result.schema, &answer.result.batches)?;
    let mut rows: Vec<Vec<String>> = json
        .iter()
        .map(|row| {
            COLUMNS
                .iter()
                .map(|c| match &row[*c] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let more = rows.len() > SHOWN;
    rows.truncate(SHOWN);
    let mut per_agent: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for h in hit_counts(&state.store, HitGrouping::Agent, None, None).await? {
        let entry = per_agent.entry(h.key.unwrap_or_default()).or_default();
        entry.0 += h.hits;
        entry.1 += h.blocked;
    }
    let mut by_agent: Vec<_> = per_agent.into_iter().collect();
    by_agent.sort_by_key(|(_, (hits, _))| std::cmp::Reverse(*hits));
    let text = |v: &Option<String>| given(v).unwrap_or_default().to_owned();
    let page = DlpPage {
        chrome: Chrome::new(&user, Section::Security, "DLP hits"),
        agent: text(&f.agent),
        label: text(&f.label),
        severity: text(&f.severity),
        action: text(&f.action),
        from: text(&f.from),
        to: text(&f.to),
        labels: state.lineage.current().taxonomy().names().to_vec(),
        columns: COLUMNS,
        rows,
        more,
        by_agent: by_agent
            .into_iter()
            .map(|(agent, (hits, blocked))| {
                let href = format!("/security/dlp?agent={}", urlencode(&agent));
                (agent, href, count(hits), count(blocked))
            })
            .collect(),
    };
    Ok(Page(page).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_quoted_conditions() {
        let f = HitFilter {
            agent: Some("o'brien".into()),
            from: Some("2026-10-01".into()),
            to: Some("2026-10-31".into()),
            ..HitFilter::default()
        };
        let sql = f.sql().unwrap();
        assert!(sql.contains("agent = 'o''brien'"), "{sql}");
        assert!(
            sql.contains("time >= TIMESTAMP '2026-10-01T00:00:00Z'"),
            "{sql}"
        );
        assert!(
            sql.contains("time < TIMESTAMP '2026-11-01T00:00:00Z'"),
            "{sql}"
        );
        let bad = HitFilter {
            from: Some("yesterday".into()),
            ..HitFilter::default()
        };
        assert!(bad.sql().unwrap_err().to_string().contains("from"));
    }
}

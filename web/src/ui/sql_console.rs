//! The read-only SQL console: one query over the lake, its result as a table.
//! Queries run with the API's limits (memory, time, rows).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::session::WebUser;
use super::{Chrome, Page, PageError, PageForm, PageResult, Section};
use crate::state::AppState;

/// Rows shown at most: a page is for reading, the API for bulk.
const SHOWN_ROWS: usize = 1000;

const EXAMPLE: &str = "SELECT agent, label, count(*) AS hits\nFROM security_hits\nGROUP BY agent, label\nORDER BY hits DESC\nLIMIT 20";

#[derive(askama::Template)]
#[template(path = "sql.html")]
struct Console {
    chrome: Chrome,
    sql: String,
    error: Option<String>,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    truncated: bool,
    ran: bool,
}

fn console(user: &WebUser, sql: String) -> Console {
    Console {
        chrome: Chrome::new(user, Section::Security, "SQL console"),
        sql,
        error: None,
        columns: Vec::new(),
        rows: Vec::new(),
        truncated: false,
        ran: false,
    }
}

pub async fn form(user: WebUser) -> PageResult<Response> {
    user.require(Section::Security)?;
    Ok(Page(console(&user, EXAMPLE.to_owned())).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SqlForm {
    #[serde(default)]
    csrf: String,
    sql: String,
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn run(
    user: WebUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(f): PageForm<SqlForm>,
) -> PageResult<Response> {
    user.check_csrf(&state, &headers, &f.csrf)?;
    user.require(Section::Security)?;
    let mut page = console(&user, f.sql.clone());
    page.ran = true;
    let rows = SHOWN_ROWS.min(state.config.sql_limits.max_rows);
    match crate::routes::sql::run(&state, &f.sql, Some(rows)).await {
        Ok(answer) => {
            page.columns = answer.columns.iter().map(|c| c.name.clone()).collect();
            page.rows = answer
                .rows
                .iter()
                .map(|row| page.columns.iter().map(|c| cell(&row[c])).collect())
                .collect();
            page.truncated = answer.truncated;
            Ok(Page(page).into_response())
        }
        // A query's own mistake is shown beside it; the server's is an error page.
        Err(e) => {
            let answer = e.answer();
            if answer.status.is_server_error() {
                return Err(PageError::App(e));
            }
            page.error = Some(answer.message);
            let mut response = Page(page).into_response();
            *response.status_mut() = answer.status;
            Ok(response)
        }
    }
}

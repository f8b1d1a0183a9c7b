//! The `security_hits` view: every DLP and content-safety hit in one shape,
//! whichever system reported it, so a security analyst searches one relation.
//!
//! Two sources feed it. Events a data-protection service reports (Purview DLP,
//! ingested into `dlp_hits`) come as they are. Requests a gateway refused
//! because a content-safety or DLP policy matched are already in `requests`; they
//! are not copied into `dlp_hits` (that would count one fact twice and tie the
//! two tables' dedupe together) but mapped here: `source = 'gateway'`,
//! `action = 'block'`, the error source as the policy and the error reason as
//! the rule.
//!
//! A request counts as such a block when its error source or reason is one of
//! the markers below, the values the adapters write for them:
//! - APIM's `llm-content-safety` policy: the export's `lastError.source`
//!   (`LastErrorSource`) is the policy's name.
//! - Azure OpenAI's own content filter: the error code `content_filter`, which
//!   canonical producers carry as the error source or reason. (Through APIM the
//!   backend's 400 carries no `lastError`, so an APIM export cannot show it.)
//! - LiteLLM guardrails and provider content filters: a spend log's error
//!   class (`metadata.error_information.error_class`, the request's
//!   `error_reason`) is `ContentPolicyViolationError`, `BlockedPiiEntityError`
//!   or `RejectedRequestError`.
//!
//! Kong's AI Prompt Guard answers a plain `400 bad request` on purpose, so that
//! callers cannot tell it is there, and its log entry says nothing either: Kong
//! blocks cannot be told from other bad requests and are not in the view.

use crate::schema::{DLP_HITS, REQUESTS};

pub const SECURITY_HITS_VIEW: &str = "security_hits";

/// Error sources that mean a content-safety or DLP policy blocked the request.
pub const BLOCKING_ERROR_SOURCES: [&str; 2] = ["llm-content-safety", "content_filter"];

/// Error reasons that mean the same, whatever the source.
pub const BLOCKING_ERROR_REASONS: [&str; 4] = [
    "content_filter",
    "ContentPolicyViolationError",
    "BlockedPiiEntityError",
    "RejectedRequestError",
];

/// The columns of the view, in `dlp_hits` order: each is the `dlp_hits`
/// column, then what a gateway row puts there (`None`: NULL).
const COLUMNS: [(&str, Option<&str>); 16] = [
    ("time", Some("time")),
    // A request is one hit at most: its id identifies it.
    ("hit_id", Some("request_id")),
    ("source", Some("'gateway'")),
    ("policy", Some("error_source")),
    ("rule", Some("error_reason")),
    ("severity", None),
    ("action", Some("'block'")),
    ("sensitive_info_types", None),
    ("label", None),
    ("agent", Some("agent")),
    ("app", None),
    ("user_id", Some("user_id")),
    ("request_id", Some("request_id")),
    ("resource_namespace", None),
    ("resource_name", None),
    ("batch_id", Some("batch_id")),
];

/// The view's definition, over the `dlp_hits` and `requests` tables.
pub fn view_sql() -> String {
    let names: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
    let gateway: Vec<String> = COLUMNS
        .iter()
        .map(|(name, from)| match from {
            Some(expr) => format!("{expr} AS {name}"),
            None => format!("CAST(NULL AS VARCHAR) AS {name}"),
        })
        .collect();
    format!(
        "SELECT {} FROM {DLP_HITS} UNION ALL SELECT {} FROM {REQUESTS} \
         WHERE error_source IN ({}) OR error_reason IN ({})",
        names.join(", "),
        gateway.join(", "),
        quoted(&BLOCKING_ERROR_SOURCES),
        quoted(&BLOCKING_ERROR_REASONS),
    )
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DLP_HITS_SCHEMA;

    #[test]
    fn the_view_has_every_dlp_hits_column_in_order() {
        let view: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
        let table: Vec<&str> = DLP_HITS_SCHEMA
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(view, table);
    }
}

//! Filling agent, user, tool and priority from where gateways actually carry them:
//! request headers (APIM `requestHeaders`, Kong `request.headers`), LiteLLM
//! `metadata` keys and `request_tags`, Kong consumer fields. Configured in
//! `tollgate.toml` under `[ingest.dimensions]`; a value an adapter already mapped
//! (e.g. LiteLLM's own `agent_id`) is never overwritten.

use serde::Deserialize;
use serde_json::Value;

use crate::record::{Record, RequestRecord};

/// `[ingest.dimensions]`: for each dimension, sources tried in order, each
/// `header:NAME`, `metadata:KEY`, `tag:PREFIX` (a `PREFIX:value` request tag) or
/// `consumer:FIELD`. An absent key keeps the default sources.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionSources {
    pub agent: Option<Vec<String>>,
    pub user: Option<Vec<String>>,
    pub tool: Option<Vec<String>>,
    pub priority: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Header(String),
    Metadata(String),
    Tag(String),
    Consumer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimensions {
    agent: Vec<Source>,
    user: Vec<Source>,
    tool: Vec<Source>,
    priority: Vec<Source>,
}

// LiteLLM keeps a caller's own metadata under `spend_logs_metadata`.
const DEFAULT_AGENT: &[&str] = &[
    "header:x-agent-id",
    "metadata:spend_logs_metadata.agent_id",
    "metadata:agent_id",
    "tag:agent",
];
const DEFAULT_USER: &[&str] = &["header:x-user-id", "metadata:spend_logs_metadata.user_id"];
const DEFAULT_TOOL: &[&str] = &[
    "header:x-mcp-tool",
    "metadata:spend_logs_metadata.tool",
    "tag:tool",
];
const DEFAULT_PRIORITY: &[&str] = &[
    "header:x-priority",
    "metadata:spend_logs_metadata.priority",
    "tag:priority",
];

impl Default for Dimensions {
    fn default() -> Self {
        let parse = |list: &[&str]| list.iter().filter_map(|s| parse_source(s).ok()).collect();
        Dimensions {
            agent: parse(DEFAULT_AGENT),
            user: parse(DEFAULT_USER),
            tool: parse(DEFAULT_TOOL),
            priority: parse(DEFAULT_PRIORITY),
        }
    }
}

fn parse_source(spec: &str) -> Result<Source, String> {
    let (kind, name) = spec
        .split_once(':')
        .filter(|(_, name)| !name.is_empty())
        .ok_or_else(|| {
            format!("{spec:?}: expected KIND:NAME (header, metadata, tag or consumer)")
        })?;
    Ok(match kind {
        "header" => Source::Header(name.to_ascii_lowercase()),
        "metadata" => Source::Metadata(name.to_owned()),
        "tag" => Source::Tag(name.to_owned()),
        "consumer" => Source::Consumer(name.to_owned()),
        other => {
            return Err(format!(
                "{spec:?}: unknown source {other:?} (header, metadata, tag or consumer)"
            ));
        }
    })
}

impl Dimensions {
    /// Builds the mapping from configuration; an error names the bad entry.
    pub fn from_sources(sources: &DimensionSources) -> Result<Self, String> {
        let defaults = Dimensions::default();
        let build = |given: &Option<Vec<String>>, default: Vec<Source>, dim: &str| match given {
            None => Ok(default),
            Some(list) => list
                .iter()
                .map(|s| parse_source(s).map_err(|e| format!("ingest.dimensions.{dim}: {e}")))
                .collect(),
        };
        Ok(Dimensions {
            agent: build(&sources.agent, defaults.agent, "agent")?,
            user: build(&sources.user, defaults.user, "user")?,
            tool: build(&sources.tool, defaults.tool, "tool")?,
            priority: build(&sources.priority, defaults.priority, "priority")?,
        })
    }

    /// Fills the request's empty dimensions from the raw record it came from.
    pub fn apply(&self, raw: &Value, record: &mut Record) {
        self.apply_with(record, |source| lookup(raw, source));
    }

    /// Fills the request's empty dimensions from `find`, which answers one source
    /// (adapters that parse without a [`Value`] bring their own).
    pub(crate) fn apply_with(
        &self,
        record: &mut Record,
        mut find: impl FnMut(&Source) -> Option<String>,
    ) {
        let Some(request) = record.request.as_mut() else {
            return;
        };
        let fields: [(&Vec<Source>, FieldOf); 4] = [
            (&self.agent, |r| &mut r.agent),
            (&self.user, |r| &mut r.user_id),
            (&self.tool, |r| &mut r.tool),
            (&self.priority, |r| &mut r.priority),
        ];
        for (sources, field) in fields {
            let slot = field(request);
            if slot.is_none() {
                *slot = sources.iter().find_map(&mut find);
            }
        }
    }
}

/// Which request field a dimension fills.
type FieldOf = fn(&mut RequestRecord) -> &mut Option<String>;

fn lookup(raw: &Value, source: &Source) -> Option<String> {
    match source {
        Source::Header(name) => [
            "properties.requestHeaders",
            "Properties.RequestHeaders",
            "properties.RequestHeaders",
            "Properties.requestHeaders",
            "RequestHeaders",
            "request.headers",
        ]
        .iter()
        .filter_map(|path| object_at(raw, path))
        .find_map(|headers| {
            headers
                .as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| first_string(v))
        }),
        Source::Metadata(path) => {
            let metadata = object_at(raw, "metadata")?;
            path.split('.')
                .try_fold(&metadata, |v, key| v.get(key))
                .and_then(first_string)
        }
        Source::Tag(prefix) => object_at(raw, "request_tags")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .find_map(|tag| tag.strip_prefix(prefix.as_str())?.strip_prefix(':'))
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        Source::Consumer(field) => raw.get("consumer")?.get(field).and_then(first_string),
    }
}

/// The value at a dotted path; a JSON string holding an object or array (CSV and
/// Log Analytics exports) is parsed.
fn object_at(raw: &Value, path: &str) -> Option<Value> {
    let found = path.split('.').try_fold(raw, |v, key| v.get(key))?;
    match found {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

fn first_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => items.iter().find_map(first_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(dims: &Dimensions, raw: &str, agent: Option<&str>) -> RequestRecord {
        let mut record = Record {
            request: Some(RequestRecord {
                agent: agent.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        };
        dims.apply(&serde_json::from_str(raw).unwrap(), &mut record);
        record.request.unwrap()
    }

    #[test]
    fn defaults_read_headers_metadata_and_tags() {
        let d = Dimensions::default();
        let apim = applied(
            &d,
            r#"{"properties":{"requestHeaders":{"X-Agent-Id":"copilot","x-priority":"low"}}}"#,
            None,
        );
        assert_eq!(
            (apim.agent.as_deref(), apim.priority.as_deref()),
            (Some("copilot"), Some("low"))
        );
        let la = applied(
            &d,
            r#"{"RequestHeaders":"{\"x-mcp-tool\":\"github.search\"}"}"#,
            None,
        );
        assert_eq!(la.tool.as_deref(), Some("github.search"));
        let kong = applied(
            &d,
            r#"{"request":{"headers":{"x-user-id":["u-7","u-8"]}}}"#,
            None,
        );
        assert_eq!(kong.user_id.as_deref(), Some("u-7"));
        let litellm = applied(
            &d,
            r#"{"metadata":"{\"spend_logs_metadata\":{\"priority\":\"high\"}}","request_tags":["team:x","agent:triage"]}"#,
            None,
        );
        assert_eq!(
            (litellm.agent.as_deref(), litellm.priority.as_deref()),
            (Some("triage"), Some("high"))
        );
    }

    #[test]
    fn a_mapped_value_is_never_overwritten_and_config_is_checked() {
        let d = Dimensions::default();
        let kept = applied(&d, r#"{"request_tags":["agent:other"]}"#, Some("explicit"));
        assert_eq!(kept.agent.as_deref(), Some("explicit"));

        let custom = Dimensions::from_sources(&DimensionSources {
            agent: Some(vec!["consumer:custom_id".into()]),
            ..Default::default()
        })
        .unwrap();
        let kong = applied(
            &custom,
            r#"{"consumer":{"custom_id":"agent-42"},"request":{"headers":{"x-agent-id":"ignored"}}}"#,
            None,
        );
        assert_eq!(kong.agent.as_deref(), Some("agent-42"));

        let err = Dimensions::from_sources(&DimensionSources {
            tool: Some(vec!["cookie:t".into()]),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.contains("ingest.dimensions.tool") && err.contains("unknown source \"cookie\""),
            "{err}"
        );
        assert!(
            Dimensions::from_sources(&DimensionSources {
                user: Some(vec!["header:".into()]),
                ..Default::default()
            })
            .is_err()
        );
    }
}

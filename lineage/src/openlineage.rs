//! OpenLineage events (the spec in `reference/openlineage-spec/`) as lineage.
//! A `RunEvent` or `JobEvent` links its input datasets to its job and the job to
//! its outputs; a `DatasetEvent` declares a dataset. Jobs become agents or MCP
//! tools when their `jobType` facet says so (`jobType: AGENT`, `TOOL` or
//! `MCP_TOOL`), processes otherwise; datasets become data sources. A `tags`
//! facet with the key `sensitivity` sets the node's label. Events are checked
//! whole: one refusal names every problem by event and field.

use serde_json::{Map, Value};

use crate::label::Taxonomy;
use crate::model::{Edge, Label, Node, NodeKey, NodeKind, Origin};
use crate::{Import, LineageError, Result};

const EVENT_TYPES: [&str; 6] = ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"];
/// Events one import may hold (a batch push).
pub const MAX_EVENTS: usize = 10_000;
/// Input and output datasets one event may name (real jobs name a handful;
/// one attack event named 100,000).
pub const MAX_DATASETS_PER_EVENT: usize = 10_000;
/// Problems a refusal lists; the rest are counted.
const MAX_PROBLEMS: usize = 100;

/// Parses events; `source` names the request or file in errors.
pub fn parse_events(events: &[Value], source: &str, taxonomy: &Taxonomy) -> Result<Import> {
    if events.len() > MAX_EVENTS {
        return Err(LineageError::Refused {
            source_name: source.to_string(),
            problems: vec![format!(
                "{} events, more than the {MAX_EVENTS} one import may hold; split them",
                events.len()
            )],
        });
    }
    let mut reader = Reader {
        taxonomy,
        problems: Vec::new(),
        import: Import {
            origin: Origin::Openlineage,
            nodes: Vec::new(),
            edges: Vec::new(),
        },
    };
    for (i, event) in events.iter().enumerate() {
        let at = if events.len() == 1 {
            "event".to_string()
        } else {
            format!("events[{i}]")
        };
        reader.event(event, &at);
    }
    if reader.problems.is_empty() {
        Ok(reader.import)
    } else {
        let mut problems = reader.problems;
        if problems.len() > MAX_PROBLEMS {
            let more = problems.len() - MAX_PROBLEMS;
            problems.truncate(MAX_PROBLEMS);
            problems.push(format!("... and {more} more problems"));
        }
        Err(LineageError::Refused {
            source_name: source.to_string(),
            problems,
        })
    }
}

struct Reader<'t> {
    taxonomy: &'t Taxonomy,
    problems: Vec<String>,
    import: Import,
}

impl Reader<'_> {
    fn problem(&mut self, at: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{at}: {what}"));
    }

    fn string<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        field: &str,
        at: &str,
    ) -> Option<&'v str> {
        match object.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
            Some(Value::String(_)) => {
                self.problem(&format!("{at}.{field}"), "must not be empty");
                None
            }
            Some(_) => {
                self.problem(&format!("{at}.{field}"), "must be a string");
                None
            }
            None => {
                self.problem(&format!("{at}.{field}"), "is required");
                None
            }
        }
    }

    fn object<'v>(&mut self, value: &'v Value, at: &str) -> Option<&'v Map<String, Value>> {
        let object = value.as_object();
        if object.is_none() {
            self.problem(at, "must be a JSON object");
        }
        object
    }

    fn event(&mut self, event: &Value, at: &str) {
        let Some(event) = self.object(event, at) else {
            return;
        };
        // Kept in UTC at a fixed precision, so stored times order as texts.
        let time = match self.string(event, "eventTime", at) {
            Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(time) => Some(
                    time.to_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                ),
                Err(_) => {
                    self.problem(
                        &format!("{at}.eventTime"),
                        format!("{t:?} is not an RFC 3339 date-time"),
                    );
                    None
                }
            },
            None => None,
        };
        self.string(event, "producer", at);
        self.string(event, "schemaURL", at);
        if let Some(run) = event.get("run") {
            let run_at = format!("{at}.run");
            if let Some(run) = self.object(run, &run_at)
                && let Some(id) = self.string(run, "runId", &run_at)
                && uuid::Uuid::parse_str(id).is_err()
            {
                self.problem(&format!("{run_at}.runId"), format!("{id:?} is not a UUID"));
            }
            match event.get("eventType") {
                None => {}
                Some(Value::String(t)) if EVENT_TYPES.contains(&t.as_str()) => {}
                Some(other) => self.problem(
                    &format!("{at}.eventType"),
                    format!("{other} is not one of {}", EVENT_TYPES.join(", ")),
                ),
            }
            if event.get("job").is_none() {
                self.problem(&format!("{at}.job"), "is required in a RunEvent");
            }
        }
        if let Some(job) = event.get("job") {
            let job_at = format!("{at}.job");
            let job = self.job(job, &job_at);
            let datasets: usize = ["inputs", "outputs"]
                .iter()
                .filter_map(|side| event.get(*side).and_then(Value::as_array))
                .map(Vec::len)
                .sum();
            if datasets > MAX_DATASETS_PER_EVENT {
                self.problem(
                    at,
                    format!(
                        "names {datasets} input and output datasets, more than the {MAX_DATASETS_PER_EVENT} one event may"
                    ),
                );
                return;
            }
            for (side, reads) in [("inputs", true), ("outputs", false)] {
                let Some(list) = event.get(side) else {
                    continue;
                };
                let side_at = format!("{at}.{side}");
                let Some(list) = list.as_array() else {
                    self.problem(&side_at, "must be an array");
                    continue;
                };
                for (j, dataset) in list.iter().enumerate() {
                    let Some(dataset) = self.dataset(dataset, &format!("{side_at}[{j}]")) else {
                        continue;
                    };
                    let Some(job) = &job else {
                        continue;
                    };
                    let (from, to, kind) = if reads {
                        (dataset, job.clone(), "reads")
                    } else {
                        (job.clone(), dataset, "writes")
                    };
                    let mut edge = Edge::new(kind, Origin::Openlineage);
                    edge.first_seen.clone_from(&time);
                    edge.last_seen.clone_from(&time);
                    edge.calls = 1;
                    self.import.edges.push((from, to, edge));
                }
            }
        } else if let Some(dataset) = event.get("dataset") {
            self.dataset(dataset, &format!("{at}.dataset"));
        } else if !event.contains_key("run") {
            self.problem(
                at,
                "is neither a RunEvent, a JobEvent nor a DatasetEvent (no run, job or dataset)",
            );
        }
    }

    fn key(&mut self, object: &Map<String, Value>, at: &str) -> Option<NodeKey> {
        let namespace = self.string(object, "namespace", at);
        let name = self.string(object, "name", at);
        Some(NodeKey::new(namespace?.trim(), name?.trim()))
    }

    fn job(&mut self, job: &Value, at: &str) -> Option<NodeKey> {
        let job = self.object(job, at)?;
        let key = self.key(job, at)?;
        let facets = job.get("facets").and_then(Value::as_object);
        let job_type = facets
            .and_then(|f| f.get("jobType"))
            .and_then(|t| t.get("jobType"))
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase);
        let kind = match job_type.as_deref() {
            Some("AGENT") => NodeKind::Agent,
            Some("TOOL" | "MCP_TOOL") => NodeKind::McpTool,
            _ => NodeKind::Process,
        };
        let mut node = Node::new(key.clone(), kind);
        node.label = self.sensitivity(facets, &format!("{at}.facets"));
        self.import.nodes.push(node);
        Some(key)
    }

    fn dataset(&mut self, dataset: &Value, at: &str) -> Option<NodeKey> {
        let dataset = self.object(dataset, at)?;
        let key = self.key(dataset, at)?;
        let facets = dataset.get("facets").and_then(Value::as_object);
        let mut node = Node::new(key.clone(), NodeKind::DataSource);
        node.label = self.sensitivity(facets, &format!("{at}.facets"));
        self.import.nodes.push(node);
        Some(key)
    }

    /// The label a `tags` facet gives (`{key: "sensitivity", value: LABEL}`).
    fn sensitivity(&mut self, facets: Option<&Map<String, Value>>, at: &str) -> Option<Label> {
        let tags = facets?.get("tags")?.get("tags")?.as_array()?;
        let mut label = None;
        for (i, tag) in tags.iter().enumerate() {
            let is_sensitivity = tag
                .get("key")
                .and_then(Value::as_str)
                .is_some_and(|k| k.eq_ignore_ascii_case("sensitivity"));
            if !is_sensitivity {
                continue;
            }
            let value_at = format!("{at}.tags.tags[{i}].value");
            match tag.get("value").and_then(Value::as_str) {
                Some(name) => match self.taxonomy.rank(name) {
                    Ok(rank) => {
                        label = Some(Label {
                            name: name.to_string(),
                            rank,
                        });
                    }
                    Err(e) => self.problem(&value_at, e),
                },
                None => self.problem(&value_at, "must be a string"),
            }
        }
        label
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run_event() -> Value {
        json!({
            "eventType": "COMPLETE",
            "eventTime": "2026-10-14T10:00:00+02:00",
            "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": "0192f6a4-8d1e-7c3a-9b2f-3d4e5f6a7b8c"},
            "job": {"namespace": "contoso", "name": "claims-triage",
                    "facets": {"jobType": {"processingType": "SERVICE", "integration": "CUSTOM", "jobType": "AGENT"}}},
            "inputs": [{"namespace": "postgres://claims:5432", "name": "claims.public.policies",
                        "facets": {"tags": {"tags": [{"key": "sensitivity", "value": "Highly Confidential"}]}}}],
            "outputs": [{"namespace": "s3://reports", "name": "triage/summary"}]
        })
    }

    #[test]
    fn a_run_event_links_inputs_to_its_job_and_the_job_to_its_outputs() {
        let import = parse_events(&[run_event()], "request", &Taxonomy::default()).unwrap();
        let kinds: Vec<NodeKind> = import.nodes.iter().map(|n| n.kind).collect();
        assert!(kinds.contains(&NodeKind::Agent) && kinds.contains(&NodeKind::DataSource));
        let policies = import
            .nodes
            .iter()
            .find(|n| n.key.name == "claims.public.policies")
            .unwrap();
        assert_eq!(policies.label.as_ref().unwrap().rank.0, 4);
        let edges: Vec<(&str, &str, &str)> = import
            .edges
            .iter()
            .map(|(f, t, e)| (f.name.as_str(), e.kind.as_str(), t.name.as_str()))
            .collect();
        assert_eq!(
            edges,
            [
                ("claims.public.policies", "reads", "claims-triage"),
                ("claims-triage", "writes", "triage/summary")
            ]
        );
        // Times are kept in UTC.
        assert_eq!(
            import.edges[0].2.first_seen.as_deref(),
            Some("2026-10-14T08:00:00.000000Z")
        );
    }

    #[test]
    fn job_and_dataset_events_and_job_types() {
        let job = json!({"eventTime": "2026-10-14T10:00:00Z", "producer": "p", "schemaURL": "s",
            "job": {"namespace": "n", "name": "lookup", "facets": {"jobType": {"jobType": "mcp_tool"}}},
            "inputs": [{"namespace": "n", "name": "db"}]});
        let dataset = json!({"eventTime": "2026-10-14T10:00:00Z", "producer": "p", "schemaURL": "s",
            "dataset": {"namespace": "n", "name": "lake", "facets": {"tags": {"tags": [
                {"key": "owner", "value": "x"}, {"key": "Sensitivity", "value": "Confidential\\Finance"}]}}}});
        let import = parse_events(&[job, dataset], "batch", &Taxonomy::default()).unwrap();
        assert_eq!(import.nodes[0].kind, NodeKind::McpTool);
        let lake = import.nodes.iter().find(|n| n.key.name == "lake").unwrap();
        assert_eq!(lake.label.as_ref().unwrap().name, "Confidential\\Finance");
        assert_eq!(import.edges.len(), 1);
    }

    #[test]
    fn every_problem_is_named_by_event_and_field() {
        let mut bad = run_event();
        bad["run"]["runId"] = json!("not-a-uuid");
        bad["eventType"] = json!("DONE");
        bad["inputs"][0]["facets"]["tags"]["tags"][0]["value"] = json!("Secret");
        bad.as_object_mut().unwrap().remove("producer");
        let neither = json!({"eventTime": "yesterday", "producer": "p", "schemaURL": "s"});
        let err = parse_events(&[bad, neither, json!([1])], "batch", &Taxonomy::default())
            .unwrap_err()
            .to_string();
        for expected in [
            "events[0].producer: is required",
            "events[0].run.runId: \"not-a-uuid\" is not a UUID",
            "events[0].eventType: \"DONE\" is not one of",
            "events[0].inputs[0].facets.tags.tags[0].value: unknown label \"Secret\"",
            "events[1].eventTime: \"yesterday\" is not an RFC 3339 date-time",
            "events[1]: is neither a RunEvent",
            "events[2]: must be a JSON object",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from:\n{err}");
        }
    }
}

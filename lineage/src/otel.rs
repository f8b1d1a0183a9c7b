//! Lineage and findings from OpenTelemetry GenAI traces (`docs/otel.md`).
//!
//! The committed `genai_spans` give three kinds of edges, stored under the
//! `otel` origin and recomputed whole like the `observed` ones: tool -> agent
//! (`calls`: the agent's trace has an `execute_tool` span), data source ->
//! tool (`reads`: the tool span, or a database client span under it, names a
//! `db.namespace` or `url.full`), agent -> model deployment (`invokes`: a chat,
//! completion or embeddings span). Names join the graph as observed traffic
//! does: a name the graph knows once, as that kind, is that node.
//!
//! A model call whose `server.address` is no known gateway went around the
//! gateways: a bypass finding ([`bypass_findings`]), judged here from the
//! grouped calls the store reads.

use serde::Serialize;
use tollgate_store::Store;
use tollgate_store::genai::{ModelCalls, SpanLink, SpanLinkKind};
use tollgate_store::state::LineageApplied;

use crate::model::{NodeKind, Origin};
use crate::observe::{ImportBuilder, same_as_stored};
use crate::{Import, LineageGraph, LineageMode, Result, Taxonomy, save_import};

/// Recomputes the `otel` edges and stores them if they changed; `None` when
/// they did not (nothing written, no version bumped).
#[tracing::instrument(skip_all, err)]
pub async fn observe_traces(
    store: &Store,
    graph: &LineageGraph,
    taxonomy: &Taxonomy,
    actor: &str,
) -> Result<Option<LineageApplied>> {
    let import = trace_import(&store.span_links().await?, graph);
    if same_as_stored(graph, &import) {
        return Ok(None);
    }
    Ok(Some(
        save_import(&store.db, &import, taxonomy, actor, LineageMode::Refresh).await?,
    ))
}

/// The `otel` import the links make.
pub fn trace_import(links: &[SpanLink], graph: &LineageGraph) -> Import {
    let mut import = ImportBuilder::new(graph);
    for link in links {
        let seen = (
            u64::try_from(link.calls).unwrap_or(0),
            link.first_us,
            link.last_us,
        );
        let (from, to, kind) = match link.kind {
            SpanLinkKind::AgentTool => (
                import.node(&link.to, NodeKind::McpTool),
                import.node(&link.from, NodeKind::Agent),
                "calls",
            ),
            SpanLinkKind::DataTool => (
                import.node(&link.from, NodeKind::DataSource),
                import.node(&link.to, NodeKind::McpTool),
                "reads",
            ),
            SpanLinkKind::AgentModel => (
                import.node(&link.from, NodeKind::Agent),
                import.node(&link.to, NodeKind::ModelDeployment),
                "invokes",
            ),
        };
        import.add(from, to, kind, seen);
    }
    import.finish(Origin::Otel)
}

/// The hosts model calls may go to: the gateways'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayHosts {
    /// Host names (`apim-contoso.azure-api.net`) from configuration.
    hosts: Vec<String>,
    /// Gateway names from the lineage graph (`apim-contoso`): a host that is
    /// the name or starts with it and a dot is that gateway.
    names: Vec<String>,
}

impl GatewayHosts {
    /// The configured hosts and the graph's gateway nodes.
    pub fn new(configured: &[String], graph: &LineageGraph) -> Self {
        let names = graph
            .nodes()
            .map(|ix| graph.node(ix))
            .filter(|n| n.kind == NodeKind::Gateway)
            .map(|n| n.key.name.to_ascii_lowercase())
            .collect();
        Self::from_parts(configured, names)
    }

    fn from_parts(configured: &[String], names: Vec<String>) -> Self {
        GatewayHosts {
            hosts: configured
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            names,
        }
    }

    /// Whether a call to `address` passed a gateway.
    pub fn is_gateway(&self, address: &str) -> bool {
        let address = address.trim().trim_end_matches('.').to_ascii_lowercase();
        let host = address.split(':').next().unwrap_or_default();
        self.hosts.iter().any(|h| h == host)
            || self.names.iter().any(|name| {
                host == name
                    || host
                        .strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
    }
}

/// Model calls that went around the gateways: who made them, to where, how
/// many tokens, and a trace to start from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BypassFinding {
    pub server_address: String,
    pub agent: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub service_name: Option<String>,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub trace_id: String,
}

/// The calls whose address is no gateway's, most calls first.
pub fn bypass_findings(calls: &[ModelCalls], gateways: &GatewayHosts) -> Vec<BypassFinding> {
    let time = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let mut findings: Vec<BypassFinding> = calls
        .iter()
        .filter(|c| !gateways.is_gateway(&c.server_address))
        .map(|c| BypassFinding {
            server_address: c.server_address.clone(),
            agent: c.agent.clone(),
            model: c.model.clone(),
            provider: c.provider.clone(),
            service_name: c.service_name.clone(),
            calls: c.calls,
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            first_seen: time(c.first_us),
            last_seen: time(c.last_us),
            trace_id: c.trace_id.clone(),
        })
        .collect();
    findings.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.server_address.cmp(&b.server_address))
    });
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_hosts_match_configured_hosts_and_gateway_names() {
        let gateways = GatewayHosts::from_parts(
            &["llm.contoso.internal".into(), " ".into()],
            vec!["apim-contoso".into()],
        );
        let check = |address: &str, expect: bool| {
            assert_eq!(gateways.is_gateway(address), expect, "{address}");
        };
        check("llm.contoso.internal", true);
        check("LLM.Contoso.Internal.", true);
        check("llm.contoso.internal:443", true);
        check("apim-contoso.azure-api.net", true);
        check("apim-contoso", true);
        check("apim-contoso-shadow.azure-api.net", false);
        check("api.openai.com", false);
        check("contoso-aoai.openai.azure.com", false);
        check("", false);
    }

    fn calls(address: &str, agent: &str, n: i64) -> ModelCalls {
        ModelCalls {
            server_address: address.into(),
            agent: Some(agent.into()),
            model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            service_name: Some("claims-bot".into()),
            calls: n,
            input_tokens: 100 * n,
            output_tokens: 10 * n,
            first_us: 1_790_000_000_000_000,
            last_us: 1_790_000_060_000_000,
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        }
    }

    #[test]
    fn only_calls_around_the_gateways_are_findings_most_first() {
        let gateways = GatewayHosts::from_parts(&["llm.contoso.internal".into()], vec![]);
        let found = bypass_findings(
            &[
                calls("llm.contoso.internal", "claims-triage", 50),
                calls("api.openai.com", "claims-triage", 2),
                calls("contoso-aoai.openai.azure.com", "hr-helper", 7),
            ],
            &gateways,
        );
        let shape: Vec<_> = found
            .iter()
            .map(|f| (f.server_address.as_str(), f.agent.as_deref(), f.calls))
            .collect();
        assert_eq!(
            shape,
            [
                ("contoso-aoai.openai.azure.com", Some("hr-helper"), 7),
                ("api.openai.com", Some("claims-triage"), 2),
            ]
        );
        assert_eq!(found[1].input_tokens, 200);
        assert_eq!(found[1].first_seen.as_deref(), Some("2026-09-21T14:13:20Z"));
    }

    #[test]
    fn links_become_edges_that_point_the_way_data_flows() {
        let graph = LineageGraph::new(Taxonomy::default());
        let link = |kind, from: &str, to: &str| SpanLink {
            kind,
            from: from.into(),
            to: to.into(),
            calls: 3,
            first_us: 0,
            last_us: 1,
        };
        let import = trace_import(
            &[
                link(SpanLinkKind::AgentTool, "claims-triage", "lookup-policy"),
                link(SpanLinkKind::DataTool, "claims", "lookup-policy"),
                link(SpanLinkKind::AgentModel, "claims-triage", "gpt-4o"),
            ],
            &graph,
        );
        assert_eq!(import.origin, Origin::Otel);
        let edges: Vec<_> = import
            .edges
            .iter()
            .map(|(a, b, e)| (a.name.as_str(), b.name.as_str(), e.kind.as_str(), e.calls))
            .collect();
        assert_eq!(
            edges,
            [
                ("claims", "lookup-policy", "reads", 3),
                ("claims-triage", "gpt-4o", "invokes", 3),
                ("lookup-policy", "claims-triage", "calls", 3),
            ]
        );
        assert_eq!(import.nodes.len(), 4);
    }
}

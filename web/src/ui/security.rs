//! Security pages: the lineage graph drawn around a focused node (upstream to
//! the left, downstream to the right, coloured by effective label), the agents
//! that reach the most sensitive data, findings, a node's page with the path
//! that explains its label, DLP hits with filters, and the read-only SQL
//! console. Only a neighbourhood is ever drawn, so a 100k-node graph stays
//! usable.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tollgate_lineage::{
    Bounds, Direction, FindingKind, LineageGraph, NodeIndex, NodeKey, NodeKind, Origin, PathStep,
    path_text_with,
};

use super::chart::{self, Chart, Series, Unit};
use super::graph_svg::{self, DrawEdge, DrawNode};
use super::session::WebUser;
use super::{Chrome, Page, PageQuery, PageResult, Section, count, urlencode};
use crate::error::AppError;
use crate::state::AppState;

/// Nodes drawn at most on each side of the focus.
const DRAWN_PER_SIDE: usize = 60;
/// Agents listed at most as reaching the top label: a large estate has
/// thousands, and the API (`/api/v1/lineage/reach`) gives them all.
const AGENTS_LISTED: usize = 100;
const MAX_DEPTH: u32 = 5;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/security", get(graph_page))
        .route("/security/node", get(node_page))
        .route("/security/dlp", get(super::dlp::page))
        .route(
            "/security/sql",
            get(super::sql_console::form).post(super::sql_console::run),
        )
}

/// A node as the pages list it.
#[derive(Debug, Clone)]
pub(crate) struct NodeLine {
    pub name: String,
    pub kind: &'static str,
    pub label: String,
    pub href: String,
    /// The graph page focused on it.
    pub draw: String,
    /// Why it carries its label, as a path from the labelled origin.
    pub why: String,
}

/// A node's page.
fn node_href(key: &NodeKey) -> String {
    format!(
        "/security/node?namespace={}&name={}",
        urlencode(&key.namespace),
        urlencode(&key.name)
    )
}

/// The graph page focused on a node (callers may add `&depth=` or
/// `&highlight=`).
fn draw_href(key: &NodeKey) -> String {
    format!(
        "/security?focus={}&namespace={}",
        urlencode(&key.name),
        urlencode(&key.namespace)
    )
}

fn node_line(graph: &LineageGraph, ix: NodeIndex) -> NodeLine {
    let node = graph.node(ix);
    let explained = graph.explain(ix);
    NodeLine {
        name: node.key.name.clone(),
        kind: node.kind.as_str(),
        label: graph
            .label_name(graph.effective(ix))
            .unwrap_or("unlabelled")
            .to_owned(),
        href: node_href(&node.key),
        draw: draw_href(&node.key),
        why: path_text_with(&explained.path, explained.omitted.as_ref()),
    }
}

#[derive(Debug, Clone)]
struct FindingLine {
    kind: &'static str,
    node: String,
    href: String,
    detail: String,
    path: String,
}

fn finding_kind(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::AboveAllowedLabel => "model receives data above its allowed label",
        FindingKind::OutOfBoundary => "most sensitive data leaves its boundary",
        FindingKind::AboveClearance => "agent handles data above its clearance",
        FindingKind::ExplicitBelowEffective => "label set by hand is below what flows in",
    }
}

#[derive(Debug, Clone)]
struct LegendItem {
    name: String,
    colour: &'static str,
}

#[derive(askama::Template)]
#[template(path = "security.html")]
struct GraphPage {
    chrome: Chrome,
    nodes: String,
    edges: String,
    top_label: String,
    top_agents: Vec<NodeLine>,
    top_agents_total: usize,
    findings: Vec<FindingLine>,
    findings_total: usize,
    bypass: Vec<BypassLine>,
    bypass_total: usize,
    bypass_calls: String,
    q: String,
    matches: Vec<NodeLine>,
    focus: Option<NodeLine>,
    depth: u32,
    highlight: String,
    drawing: Option<String>,
    drawn: usize,
    truncated: bool,
    legend: Vec<LegendItem>,
    shapes: Vec<(&'static str, &'static str)>,
}

/// A bypass finding as the page shows it.
#[derive(Debug)]
struct BypassLine {
    server_address: String,
    agent: String,
    model: String,
    service: String,
    calls: String,
    tokens: String,
    last_seen: String,
    trace_id: String,
}

/// How many bypass findings the page lists.
const BYPASS_LISTED: usize = 50;

fn bypass_line(f: &tollgate_lineage::BypassFinding) -> BypassLine {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    BypassLine {
        server_address: f.server_address.clone(),
        agent: or_dash(&f.agent),
        model: or_dash(&f.model),
        service: or_dash(&f.service_name),
        calls: count(f.calls),
        tokens: format!("{} / {}", count(f.input_tokens), count(f.output_tokens)),
        last_seen: or_dash(&f.last_seen),
        trace_id: f.trace_id.clone(),
    }
}

#[derive(Debug, Deserialize)]
struct GraphQuery {
    /// Search text over node names.
    q: Option<String>,
    focus: Option<String>,
    namespace: Option<String>,
    depth: Option<u32>,
    /// `blast` (downstream), `provenance` (upstream) or none.
    highlight: Option<String>,
}

async fn graph_page(
    user: WebUser,
    State(state): State<AppState>,
    PageQuery(q): PageQuery<GraphQuery>,
) -> PageResult<Response> {
    user.require(Section::Security)?;
    let graph = state.lineage.current();
    let taxonomy = graph.taxonomy();
    let top = taxonomy.top();
    let mut reaching = graph.at_or_above(top, &[NodeKind::Agent]);
    reaching.sort_by(|a, b| graph.node(*a).key.cmp(&graph.node(*b).key));
    let top_agents_total = reaching.len();
    let top_agents: Vec<NodeLine> = reaching
        .iter()
        .take(AGENTS_LISTED)
        .map(|ix| node_line(&graph, *ix))
        .collect();

    let bypass = state.bypass_findings().await?;
    let all_findings = graph.findings(&state.config.lineage_policy);
    let findings = all_findings
        .iter()
        .take(50)
        .map(|f| FindingLine {
            kind: finding_kind(f.kind),
            node: f.node.name.clone(),
            href: node_href(&NodeKey::new(&f.node.namespace, &f.node.name)),
            detail: f.detail.clone(),
            path: path_text_with(&f.path, f.omitted.as_ref()),
        })
        .collect();

    let search = q.q.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let matches = if search.is_empty() {
        Vec::new()
    } else {
        let needle = search.to_lowercase();
        let mut found: Vec<NodeIndex> = graph
            .nodes()
            .filter(|ix| graph.node(*ix).key.name.to_lowercase().contains(&needle))
            .take(50)
            .collect();
        found.sort_by(|a, b| graph.node(*a).key.name.cmp(&graph.node(*b).key.name));
        found.into_iter().map(|ix| node_line(&graph, ix)).collect()
    };

    let depth = q.depth.unwrap_or(2);
    if !(1..=MAX_DEPTH).contains(&depth) {
        return Err(AppError::BadRequest(format!("depth: between 1 and {MAX_DEPTH}")).into());
    }
    let highlight = match q.highlight.as_deref().unwrap_or("") {
        "" | "none" => None,
        "blast" => Some(Direction::Downstream),
        "provenance" => Some(Direction::Upstream),
        other => {
            return Err(AppError::BadRequest(format!(
                "highlight: {other:?} is not blast, provenance or none"
            ))
            .into());
        }
    };
    // The focus asked for, else the first agent reaching the top label: the
    // picture a security analyst opens the page for.
    let focus = match q.focus.as_deref().filter(|f| !f.is_empty()) {
        Some(name) => Some(graph.resolve(q.namespace.as_deref().filter(|n| !n.is_empty()), name)?),
        None => reaching.first().copied(),
    };
    let (drawing, drawn, truncated) = match focus {
        Some(ix) => {
            let n = neighbourhood(&graph, ix, depth, highlight);
            (Some(n.svg), n.drawn, n.truncated)
        }
        None => (None, 0, false),
    };
    let ranks = taxonomy.names().len().max(1);
    let legend = taxonomy
        .names()
        .iter()
        .enumerate()
        .map(|(i, name)| LegendItem {
            name: name.clone(),
            colour: graph_svg::label_colour(Some(i), ranks),
        })
        .chain(std::iter::once(LegendItem {
            name: "unlabelled".into(),
            colour: graph_svg::label_colour(None, ranks),
        }))
        .collect();
    let shapes = NodeKind::ALL
        .iter()
        .map(|k| (k.as_str(), graph_svg::kind_shape(k.as_str())))
        .collect();
    let page = GraphPage {
        chrome: Chrome::new(&user, Section::Security, "Security · lineage"),
        nodes: count(graph.node_count() as i64),
        edges: count(graph.edge_count() as i64),
        top_label: taxonomy.name(top).to_owned(),
        top_agents,
        top_agents_total,
        findings,
        findings_total: all_findings.len(),
        bypass: bypass.iter().take(BYPASS_LISTED).map(bypass_line).collect(),
        bypass_total: bypass.len(),
        bypass_calls: count(bypass.iter().map(|f| f.calls).sum()),
        q: search,
        matches,
        focus: focus.map(|ix| node_line(&graph, ix)),
        depth,
        highlight: q.highlight.unwrap_or_default(),
        drawing,
        drawn,
        truncated,
        legend,
        shapes,
    };
    Ok(Page(page).into_response())
}

struct Neighbourhood {
    svg: String,
    drawn: usize,
    truncated: bool,
}

/// The focus, what flows into it (left) and out of it (right) within `depth`
/// edges, at most [`DRAWN_PER_SIDE`] nodes a side, and the edges among them.
fn neighbourhood(
    graph: &LineageGraph,
    focus: NodeIndex,
    depth: u32,
    highlight: Option<Direction>,
) -> Neighbourhood {
    let bounds = Bounds {
        depth,
        kinds: Vec::new(),
        limit: DRAWN_PER_SIDE,
    };
    let up = graph.reach(focus, Direction::Upstream, &bounds);
    let down = graph.reach(focus, Direction::Downstream, &bounds);
    let mut layer: HashMap<NodeIndex, i32> = HashMap::from([(focus, 0)]);
    let mut lit: HashMap<NodeIndex, bool> = HashMap::from([(focus, highlight.is_some())]);
    for (nodes, sign, direction) in [
        (&up.nodes, -1, Direction::Upstream),
        (&down.nodes, 1, Direction::Downstream),
    ] {
        for (ix, distance) in nodes {
            layer.entry(*ix).or_insert(sign * *distance as i32);
            if highlight == Some(direction) {
                lit.insert(*ix, true);
            }
        }
    }
    let mut order: Vec<NodeIndex> = layer.keys().copied().collect();
    order.sort_by_key(|ix| (layer[ix], graph.node(*ix).key.name.clone()));
    let position: HashMap<NodeIndex, usize> =
        order.iter().enumerate().map(|(i, ix)| (*ix, i)).collect();
    let ranks = graph.taxonomy().names().len().max(1);
    let nodes: Vec<DrawNode> = order
        .iter()
        .map(|ix| {
            let node = graph.node(*ix);
            let rank = graph.effective(*ix);
            DrawNode {
                key: node.key.to_string(),
                name: node.key.name.clone(),
                kind: node.kind.as_str().to_owned(),
                label: graph.label_name(rank).map(str::to_owned),
                rank: rank.map(|r| usize::from(r.0)),
                ranks,
                layer: layer[ix],
                focus: *ix == focus,
                highlighted: lit.get(ix).copied().unwrap_or(false),
                href: format!("{}&depth={depth}", draw_href(&node.key)),
            }
        })
        .collect();
    let mut edges = Vec::new();
    for ix in &order {
        for (e, target) in graph.edges_of(*ix, true) {
            if let Some(&to) = position.get(&target) {
                let lit_edge = |n: &NodeIndex| lit.get(n).copied().unwrap_or(false);
                let origin = graph.edge(e).origin;
                edges.push(DrawEdge {
                    from: position[ix],
                    to,
                    highlighted: lit_edge(ix) && lit_edge(&target),
                    origin: origin.as_str(),
                    seen: matches!(origin, Origin::Observed | Origin::Otel),
                });
            }
        }
    }
    let title = format!(
        "Lineage around {}: {} nodes upstream, {} downstream",
        graph.node(focus).key.name,
        up.nodes.len(),
        down.nodes.len()
    );
    Neighbourhood {
        svg: graph_svg::draw(&title, &nodes, &edges).svg,
        drawn: nodes.len(),
        truncated: up.truncated || down.truncated,
    }
}

#[derive(Debug, Deserialize)]
struct NodeQuery {
    name: String,
    namespace: Option<String>,
}

#[derive(Debug, Clone)]
struct Step {
    node: String,
    href: String,
    kind: &'static str,
    label: String,
    via: String,
}

#[derive(askama::Template)]
#[template(path = "security_node.html")]
struct NodePage {
    chrome: Chrome,
    node: NodeLine,
    namespace: String,
    explicit_label: String,
    owner: String,
    region: String,
    boundary: String,
    clearance: String,
    allowed_label: String,
    path: Vec<Step>,
    findings: Vec<FindingLine>,
    upstream: Vec<NodeLine>,
    downstream: Vec<NodeLine>,
    hits: Option<Chart>,
    graph_href: String,
}

fn steps(graph: &LineageGraph, path: &[PathStep]) -> Vec<Step> {
    path.iter()
        .map(|s| {
            let href = match graph.resolve(Some(&s.node.namespace), &s.node.name) {
                Ok(ix) => node_href(&graph.node(ix).key),
                Err(_) => String::new(),
            };
            Step {
                node: s.node.name.clone(),
                href,
                kind: s.node.kind.as_str(),
                label: s
                    .node
                    .effective_label
                    .clone()
                    .unwrap_or_else(|| "unlabelled".into()),
                via: s.via.as_ref().map_or(String::new(), |v| {
                    if v.blocked {
                        format!("{} (blocked)", v.kind)
                    } else {
                        v.kind.clone()
                    }
                }),
            }
        })
        .collect()
}

async fn node_page(
    user: WebUser,
    State(state): State<AppState>,
    PageQuery(q): PageQuery<NodeQuery>,
) -> PageResult<Response> {
    user.require(Section::Security)?;
    let graph = state.lineage.current();
    let ix = graph.resolve(q.namespace.as_deref().filter(|n| !n.is_empty()), &q.name)?;
    let node = graph.node(ix);
    let explained = graph.explain(ix);
    let findings = graph
        .findings(&state.config.lineage_policy)
        .into_iter()
        .filter(|f| f.node.name == node.key.name && f.node.namespace == node.key.namespace)
        .map(|f| FindingLine {
            kind: finding_kind(f.kind),
            node: f.node.name.clone(),
            href: String::new(),
            detail: f.detail.clone(),
            path: path_text_with(&f.path, f.omitted.as_ref()),
        })
        .collect();
    let neighbours = |outgoing: bool| -> Vec<NodeLine> {
        let mut lines: Vec<NodeLine> = graph
            .edges_of(ix, outgoing)
            .take(100)
            .map(|(_, other)| node_line(&graph, other))
            .collect();
        lines.sort_by(|a, b| a.name.cmp(&b.name));
        lines.dedup_by(|a, b| a.href == b.href);
        lines
    };
    // DLP hits name the agent whose tools read the data.
    let hits = if node.kind == NodeKind::Agent {
        let days: Vec<_> = tollgate_lineage::hit_counts(
            &state.store,
            tollgate_lineage::HitGrouping::Agent,
            None,
            None,
        )
        .await?
        .into_iter()
        .filter(|h| h.key.as_deref() == Some(node.key.name.as_str()))
        .collect();
        (!days.is_empty()).then(|| {
            let categories: Vec<String> = days.iter().map(|h| h.day.clone()).collect();
            let series = [
                ("blocked", days.iter().map(|h| h.blocked as f64).collect()),
                (
                    "allowed",
                    days.iter().map(|h| (h.hits - h.blocked) as f64).collect(),
                ),
            ]
            .map(|(name, values)| Series {
                name: name.to_owned(),
                values,
            });
            chart::stacked_bars(
                &format!("DLP hits of {} per day", node.key.name),
                &categories,
                &series,
                Unit::Count,
            )
        })
    } else {
        None
    };
    let label = |l: &Option<tollgate_lineage::Label>| {
        l.as_ref().map_or("–".to_owned(), |l| l.name.clone())
    };
    let page = NodePage {
        chrome: Chrome::new(
            &user,
            Section::Security,
            format!("{} · lineage", node.key.name),
        ),
        node: node_line(&graph, ix),
        namespace: node.key.namespace.clone(),
        explicit_label: label(&node.label),
        owner: node.owner.clone().unwrap_or_else(|| "–".into()),
        region: node.region.clone().unwrap_or_else(|| "–".into()),
        boundary: node.boundary.clone().unwrap_or_else(|| "–".into()),
        clearance: label(&node.clearance),
        allowed_label: label(&node.allowed_label),
        path: steps(&graph, &explained.path),
        findings,
        upstream: neighbours(false),
        downstream: neighbours(true),
        hits,
        graph_href: draw_href(&node.key),
    };
    Ok(Page(page).into_response())
}

//! `tollgate lineage`: import lineage and ask the security questions.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use tollgate_lineage::{
    Bounds, Direction, Explained, GatewayHosts, LineageGraph, NodeIndex, NodeKind, ReachAnswer,
    load_graph, parse_catalog, path_text_with, save_import,
};
use tollgate_store::Store;
use tollgate_store::output::OutputFormat;

use super::{Table, answer, ints, strings, table};
use crate::cli::{LineageCommand, LineageSource, NodeArg, TraversalArgs};
use crate::config::Config;

pub async fn run(store: &Store, config: &Config, command: LineageCommand) -> Result<ExitCode> {
    let command = match command {
        LineageCommand::Import { source, file } => {
            return import(store, config, source, &file).await;
        }
        LineageCommand::Observe => {
            observe_now(store, config).await?;
            return Ok(ExitCode::SUCCESS);
        }
        question => question,
    };
    let graph = load_graph(&store.db, config.taxonomy.clone()).await?;
    match command {
        LineageCommand::Import { .. } | LineageCommand::Observe => unreachable!("answered above"),
        LineageCommand::Downstream(args) => traverse(&graph, Direction::Downstream, &args),
        LineageCommand::Upstream(args) => traverse(&graph, Direction::Upstream, &args),
        LineageCommand::Path {
            from,
            to,
            namespace,
            depth,
            format,
        } => {
            let (a, b) = (
                graph.resolve(namespace.as_deref(), &from)?,
                graph.resolve(namespace.as_deref(), &to)?,
            );
            let Some(path) = graph.path_between(a, b, depth) else {
                anyhow::bail!("no data-flow path from {from} to {to} within {depth} edges");
            };
            answer(
                format,
                &graph.explain_path(b, &path, usize::MAX),
                path_table,
            )
        }
        LineageCommand::Why { node, format } => {
            let ix = resolve(&graph, &node)?;
            answer(format, &graph.explain_whole(ix), path_table)
        }
        LineageCommand::Reach {
            label,
            kinds,
            format,
        } => {
            let min = graph.taxonomy().rank(&label)?;
            let found: Vec<Explained> = graph
                .at_or_above(min, &parse_kinds(&kinds)?)
                .into_iter()
                .map(|ix| graph.explain(ix))
                .collect();
            answer(format, found.as_slice(), reach_table)
        }
        LineageCommand::Bypass { format } => {
            let calls = store.model_calls_by_address().await?;
            let gateways = GatewayHosts::new(&config.lineage_policy.gateway_hosts, &graph);
            let found = tollgate_lineage::bypass_findings(&calls, &gateways);
            answer(format, found.as_slice(), bypass_table)
        }
        LineageCommand::Findings { format } => {
            let findings = graph.findings(&config.lineage_policy);
            answer(format, findings.as_slice(), findings_table)
        }
        LineageCommand::Hits {
            by,
            from,
            to,
            format,
        } => {
            let grouping = by.parse()?;
            let counts =
                tollgate_lineage::hit_counts(store, grouping, from.as_deref(), to.as_deref())
                    .await?;
            answer(format, counts.as_slice(), |counts| hits_table(&by, counts))
        }
        LineageCommand::Hit { hit_id, format } => {
            let context = tollgate_lineage::hit_context(store, &graph, &hit_id).await?;
            answer(format, &context, hit_table)
        }
        LineageCommand::Exposure {
            label,
            depth,
            format,
        } => {
            let min = match label {
                Some(l) => graph.taxonomy().rank(&l)?,
                None => graph.taxonomy().top(),
            };
            let bounds = Bounds {
                depth,
                kinds: vec![],
                limit: usize::MAX,
            };
            let exposures = graph.exposure(min, &config.lineage_policy, &bounds);
            answer(format, exposures.as_slice(), exposure_table)
        }
    }
}

fn reach_table(found: &[Explained]) -> Result<Table> {
    Ok(table(vec![
        (
            "namespace",
            strings(found.iter().map(|e| Some(e.node.namespace.as_str()))),
        ),
        (
            "name",
            strings(found.iter().map(|e| Some(e.node.name.as_str()))),
        ),
        (
            "kind",
            strings(found.iter().map(|e| Some(e.node.kind.as_str()))),
        ),
        (
            "label",
            strings(found.iter().map(|e| e.node.effective_label.as_deref())),
        ),
        (
            "proof",
            owned(
                found
                    .iter()
                    .map(|e| path_text_with(&e.path, e.omitted.as_ref())),
            ),
        ),
    ])?)
}

fn bypass_table(found: &[tollgate_lineage::BypassFinding]) -> Result<Table> {
    let text = |pick: fn(&tollgate_lineage::BypassFinding) -> Option<&str>| {
        strings(found.iter().map(pick))
    };
    Ok(table(vec![
        ("server_address", text(|f| Some(f.server_address.as_str()))),
        ("agent", text(|f| f.agent.as_deref())),
        ("model", text(|f| f.model.as_deref())),
        ("service", text(|f| f.service_name.as_deref())),
        ("calls", ints(found.iter().map(|f| f.calls))),
        ("input_tokens", ints(found.iter().map(|f| f.input_tokens))),
        ("output_tokens", ints(found.iter().map(|f| f.output_tokens))),
        ("last_seen", text(|f| f.last_seen.as_deref())),
        ("trace_id", text(|f| Some(f.trace_id.as_str()))),
    ])?)
}

fn findings_table(findings: &[tollgate_lineage::Finding]) -> Result<Table> {
    let kinds: Vec<String> = findings.iter().map(|f| json_name(&f.kind)).collect();
    Ok(table(vec![
        ("finding", strings(kinds.iter().map(|k| Some(k.as_str())))),
        (
            "namespace",
            strings(findings.iter().map(|f| Some(f.node.namespace.as_str()))),
        ),
        (
            "name",
            strings(findings.iter().map(|f| Some(f.node.name.as_str()))),
        ),
        (
            "detail",
            strings(findings.iter().map(|f| Some(f.detail.as_str()))),
        ),
        (
            "proof",
            owned(
                findings
                    .iter()
                    .map(|f| path_text_with(&f.path, f.omitted.as_ref())),
            ),
        ),
    ])?)
}

fn hits_table(by: &str, counts: &[tollgate_lineage::HitCount]) -> Result<Table> {
    Ok(table(vec![
        ("day", strings(counts.iter().map(|c| Some(c.day.as_str())))),
        (by, strings(counts.iter().map(|c| c.key.as_deref()))),
        ("hits", ints(counts.iter().map(|c| c.hits))),
        ("blocked", ints(counts.iter().map(|c| c.blocked))),
    ])?)
}

fn hit_table(context: &tollgate_lineage::HitContext) -> Result<Table> {
    let s = &context.sources;
    Ok(table(vec![
        (
            "source",
            owned(
                s.iter()
                    .map(|e| format!("{}::{}", e.node.namespace, e.node.name)),
            ),
        ),
        (
            "label",
            strings(s.iter().map(|e| e.node.effective_label.as_deref())),
        ),
        (
            "path_to_agent",
            owned(
                s.iter()
                    .map(|e| path_text_with(&e.path, e.omitted.as_ref())),
            ),
        ),
    ])?)
}

fn exposure_table(exposures: &[tollgate_lineage::Exposure]) -> Result<Table> {
    let rows: Vec<_> = exposures
        .iter()
        .flat_map(|e| e.sources.iter().map(move |s| (e, &s.node, s.distance)))
        .collect();
    Ok(table(vec![
        (
            "external",
            owned(
                rows.iter()
                    .map(|(e, _, _)| format!("{}::{}", e.external.namespace, e.external.name)),
            ),
        ),
        (
            "boundary",
            strings(rows.iter().map(|(e, _, _)| Some(e.boundary.as_str()))),
        ),
        (
            "source",
            owned(
                rows.iter()
                    .map(|(_, s, _)| format!("{}::{}", s.namespace, s.name)),
            ),
        ),
        (
            "source_kind",
            strings(rows.iter().map(|(_, s, _)| Some(s.kind.as_str()))),
        ),
        (
            "source_label",
            strings(rows.iter().map(|(_, s, _)| s.effective_label.as_deref())),
        ),
        ("distance", ints(rows.iter().map(|(_, _, d)| i64::from(*d)))),
    ])?)
}

/// Recomputes the observed edges from the lake and says what changed.
pub async fn observe_now(store: &Store, config: &Config) -> Result<()> {
    let graph = load_graph(&store.db, config.taxonomy.clone()).await?;
    let actor = super::server::cli_actor();
    match tollgate_lineage::observe(store, &graph, &config.taxonomy, &actor).await? {
        Some(applied) => eprintln!(
            "lineage: {} observed edges between {} nodes, from the traffic committed",
            applied.edges, applied.nodes
        ),
        None => eprintln!("lineage: observed edges unchanged"),
    }
    if let Some(applied) =
        tollgate_lineage::observe_traces(store, &graph, &config.taxonomy, &actor).await?
    {
        eprintln!(
            "lineage: {} edges drawn from traces between {} nodes",
            applied.edges, applied.nodes
        );
    }
    Ok(())
}

pub(crate) async fn import(
    store: &Store,
    config: &Config,
    source: LineageSource,
    file: &std::path::Path,
) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let (import, mode) = match source {
        LineageSource::Catalog => (
            parse_catalog(&text, &name, &config.taxonomy)?,
            tollgate_lineage::LineageMode::Replace,
        ),
        LineageSource::Foundry => {
            let (import, findings) = tollgate_lineage::parse_foundry(&text, &name)?;
            for f in &findings {
                eprintln!(
                    "{name}: connection {}: {}: {}",
                    f.connection, f.field, f.problem
                );
            }
            (import, tollgate_lineage::LineageMode::Refresh)
        }
        LineageSource::Atlas => {
            let parsed = tollgate_lineage::parse_atlas(
                &text,
                &name,
                &config.taxonomy,
                &config.atlas_classifications,
            )?;
            for (class, count) in &parsed.unmapped {
                eprintln!(
                    "{name}: classification {class} ({count} entities) maps to no label; \
                     map it in [lineage] atlas_classifications"
                );
            }
            (parsed.import, tollgate_lineage::LineageMode::Refresh)
        }
    };
    let applied = save_import(
        &store.db,
        &import,
        &config.taxonomy,
        &super::server::cli_actor(),
        mode,
    )
    .await?;
    let graph = load_graph(&store.db, config.taxonomy.clone()).await?;
    println!(
        "{name}: {} nodes and {} edges imported ({} edges the file no longer lists removed); \
         the graph now has {} nodes and {} edges",
        applied.nodes,
        applied.edges,
        applied.edges_removed,
        graph.node_count(),
        graph.edge_count()
    );
    Ok(ExitCode::SUCCESS)
}

fn resolve(graph: &LineageGraph, node: &NodeArg) -> Result<NodeIndex> {
    Ok(graph.resolve(node.namespace.as_deref(), &node.node)?)
}

fn parse_kinds(kinds: &[String]) -> Result<Vec<NodeKind>> {
    Ok(kinds
        .iter()
        .map(|k| k.parse())
        .collect::<Result<Vec<NodeKind>, _>>()?)
}

fn traverse(graph: &LineageGraph, direction: Direction, args: &TraversalArgs) -> Result<ExitCode> {
    let start = resolve(graph, &args.node)?;
    let bounds = Bounds {
        depth: args.depth,
        kinds: parse_kinds(&args.kinds)?,
        limit: args.limit,
    };
    let reached: ReachAnswer = graph.reach_answer(start, direction, &bounds);
    let code = answer(args.format, &reached, reach_answer_table)?;
    if reached.truncated && args.format != OutputFormat::Json {
        eprintln!(
            "truncated: more nodes lie beyond --depth {} or --limit {}",
            args.depth, args.limit
        );
    }
    Ok(code)
}

fn reach_answer_table(answer: &ReachAnswer) -> Result<Table> {
    let n = &answer.nodes;
    Ok(table(vec![
        ("distance", ints(n.iter().map(|r| i64::from(r.distance)))),
        (
            "namespace",
            strings(n.iter().map(|r| Some(r.node.namespace.as_str()))),
        ),
        (
            "name",
            strings(n.iter().map(|r| Some(r.node.name.as_str()))),
        ),
        (
            "kind",
            strings(n.iter().map(|r| Some(r.node.kind.as_str()))),
        ),
        (
            "label",
            strings(n.iter().map(|r| r.node.effective_label.as_deref())),
        ),
    ])?)
}

fn path_table(explained: &Explained) -> Result<Table> {
    let p = &explained.path;
    let vias: Vec<String> = p
        .iter()
        .map(|s| {
            s.via.as_ref().map_or_else(String::new, |v| {
                let mut t = format!("{} ({})", v.kind, v.origin.as_str());
                if let Some(cap) = &v.cap {
                    t.push_str(&format!(", cap {cap}"));
                }
                t
            })
        })
        .collect();
    Ok(table(vec![
        (
            "step",
            ints((0..p.len()).map(|i| i64::try_from(i).unwrap_or(i64::MAX))),
        ),
        (
            "namespace",
            strings(p.iter().map(|s| Some(s.node.namespace.as_str()))),
        ),
        (
            "name",
            strings(p.iter().map(|s| Some(s.node.name.as_str()))),
        ),
        (
            "kind",
            strings(p.iter().map(|s| Some(s.node.kind.as_str()))),
        ),
        (
            "own_label",
            strings(p.iter().map(|s| s.node.label.as_deref())),
        ),
        (
            "effective_label",
            strings(p.iter().map(|s| s.node.effective_label.as_deref())),
        ),
        (
            "via",
            strings(
                vias.iter()
                    .map(|v| Some(v.as_str()).filter(|v| !v.is_empty())),
            ),
        ),
    ])?)
}

fn json_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn owned(values: impl Iterator<Item = String>) -> arrow::array::ArrayRef {
    super::texts(&values.collect::<Vec<_>>())
}

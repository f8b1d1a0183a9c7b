//! The declarative catalog (YAML, `docs/reference-data.md`): nodes and data-flow
//! edges as a team writes them down. A file is checked whole; one refusal names
//! every problem by item and field.

use std::collections::HashSet;

use serde::Deserialize;

use crate::label::Taxonomy;
use crate::model::{Edge, Flow, Label, Node, NodeKey, NodeKind, Origin};
use crate::{Import, LineageError, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: u32,
    #[serde(default)]
    nodes: Vec<CatalogNode>,
    #[serde(default)]
    edges: Vec<CatalogEdge>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogNode {
    kind: String,
    namespace: String,
    name: String,
    owner: Option<String>,
    region: Option<String>,
    boundary: Option<String>,
    label: Option<String>,
    clearance: Option<String>,
    allowed_label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogEdge {
    kind: String,
    from: KeyRef,
    to: KeyRef,
    #[serde(default)]
    blocked: bool,
    cap: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    namespace: String,
    name: String,
}

/// Parses and checks a catalog; `source` names the file in errors.
pub fn parse_catalog(text: &str, source: &str, taxonomy: &Taxonomy) -> Result<Import> {
    let file: CatalogFile = yaml_serde::from_str(text).map_err(|e| LineageError::Refused {
        source_name: source.to_string(),
        problems: vec![e.to_string()],
    })?;
    let mut problems = Vec::new();
    if file.version != 1 {
        problems.push(format!("version: {} is not supported (1 is)", file.version));
    }
    let mut label = |value: &Option<String>, at: &str, field: &str| -> Option<Label> {
        let name = value.as_ref()?;
        match taxonomy.rank(name) {
            Ok(rank) => Some(Label {
                name: name.clone(),
                rank,
            }),
            Err(e) => {
                problems.push(format!("{at}.{field}: {e}"));
                None
            }
        }
    };
    let mut nodes = Vec::with_capacity(file.nodes.len());
    let mut declared = HashSet::new();
    let mut kind_problems = Vec::new();
    for (i, n) in file.nodes.iter().enumerate() {
        let at = format!("nodes[{i}] ({}::{})", n.namespace, n.name);
        let key = NodeKey::new(n.namespace.trim(), n.name.trim());
        let mut node = Node::new(key.clone(), NodeKind::DataSource);
        match n.kind.parse() {
            Ok(kind) => node.kind = kind,
            Err(e) => kind_problems.push(format!("{at}.kind: {e}")),
        }
        if key.namespace.is_empty() || key.name.is_empty() {
            kind_problems.push(format!("{at}: namespace and name must not be empty"));
        }
        if !declared.insert(key) {
            kind_problems.push(format!("{at}: declared twice"));
        }
        node.owner = n.owner.clone();
        node.region = n.region.clone();
        node.boundary = n.boundary.clone();
        node.label = label(&n.label, &at, "label");
        node.clearance = label(&n.clearance, &at, "clearance");
        node.allowed_label = label(&n.allowed_label, &at, "allowed_label");
        nodes.push(node);
    }
    let mut edges = Vec::with_capacity(file.edges.len());
    for (i, e) in file.edges.iter().enumerate() {
        let at = format!("edges[{i}]");
        let from = NodeKey::new(e.from.namespace.trim(), e.from.name.trim());
        let to = NodeKey::new(e.to.namespace.trim(), e.to.name.trim());
        for (end, key) in [("from", &from), ("to", &to)] {
            if !declared.contains(key) {
                kind_problems.push(format!("{at}.{end}: node {key} is not declared"));
            }
        }
        if e.kind.trim().is_empty() {
            kind_problems.push(format!("{at}.kind: must not be empty"));
        }
        let mut edge = Edge::new(e.kind.trim(), Origin::Catalog);
        match (e.blocked, label(&e.cap, &at, "cap")) {
            (true, Some(_)) => {
                kind_problems.push(format!("{at}: blocked and cap exclude each other"));
            }
            (true, None) => edge.flow = Flow::Blocked,
            (false, Some(cap)) => edge.flow = Flow::Cap(cap.rank),
            (false, None) => {}
        }
        edges.push((from, to, edge));
    }
    problems.extend(kind_problems);
    if !problems.is_empty() {
        return Err(LineageError::Refused {
            source_name: source.to_string(),
            problems,
        });
    }
    Ok(Import {
        origin: Origin::Catalog,
        nodes,
        edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: 1
nodes:
  - {kind: data_source, namespace: "contoso", name: "hr-db", label: "Highly Confidential", region: "eastus"}
  - {kind: mcp_tool, namespace: "contoso", name: "hr.lookup"}
  - {kind: agent, namespace: "contoso", name: "hr-assistant", owner: "cc-hr", clearance: "Confidential\\All Employees"}
edges:
  - {kind: reads, from: {namespace: "contoso", name: "hr-db"}, to: {namespace: "contoso", name: "hr.lookup"}, cap: "Confidential"}
  - {kind: calls, from: {namespace: "contoso", name: "hr.lookup"}, to: {namespace: "contoso", name: "hr-assistant"}}
"#;

    #[test]
    fn a_catalog_loads_with_labels_sublabels_and_caps() {
        let import = parse_catalog(GOOD, "catalog.yaml", &Taxonomy::default()).unwrap();
        assert_eq!(import.nodes.len(), 3);
        assert_eq!(import.nodes[2].kind, NodeKind::Agent);
        assert_eq!(import.nodes[2].clearance.as_ref().unwrap().rank.0, 3);
        assert!(matches!(import.edges[0].2.flow, Flow::Cap(r) if r.0 == 3));
        assert_eq!(import.edges[1].2.flow, Flow::Open);
    }

    #[test]
    fn every_problem_is_named_by_item_and_field() {
        let bad = GOOD
            .replace("label: \"Highly Confidential\"", "label: \"Secret\"")
            .replace("kind: agent", "kind: robot")
            .replace(
                "name: \"hr-assistant\"}}",
                "name: \"nobody\"}, blocked: true, cap: \"General\"}",
            );
        let err = parse_catalog(&bad, "catalog.yaml", &Taxonomy::default()).unwrap_err();
        let text = err.to_string();
        for expected in [
            "catalog.yaml",
            "nodes[0] (contoso::hr-db).label: unknown label \"Secret\"",
            "nodes[2] (contoso::hr-assistant).kind: unknown node kind \"robot\"",
            "edges[1].to: node contoso::nobody is not declared",
            "edges[1]: blocked and cap exclude each other",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn yaml_errors_and_unknown_fields_say_where() {
        let err = parse_catalog(
            "version: 1\nnodes: [{kind: agent, namespace: a, name: b, colour: red}]\n",
            "c.yaml",
            &Taxonomy::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour") && err.contains("line"), "{err}");
    }
}

//! Apache Atlas / Microsoft Purview entities (the `entity/bulk` JSON) as
//! lineage. A Process entity links its input datasets to itself and itself to
//! its outputs, in data-flow direction; every other entity is a data source.
//! Classifications become labels when they name a label of the taxonomy or are
//! mapped to one (`[lineage] atlas_classifications`); others are counted, not
//! guessed. References resolve by guid within the document, else by their
//! `uniqueAttributes.qualifiedName`.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::label::Taxonomy;
use crate::model::{Edge, Label, Node, NodeKey, NodeKind, Origin};
use crate::{Import, LineageError, Result};

/// The namespace Atlas nodes are keyed in (names are qualified names).
pub const ATLAS_NAMESPACE: &str = "atlas";

/// An import and the classifications no label was mapped to, with their counts.
#[derive(Debug)]
pub struct AtlasImport {
    pub import: Import,
    pub unmapped: BTreeMap<String, usize>,
}

/// Parses `{"entities": [...]}` (or `{"entity": {...}}`, or a bare array).
pub fn parse_atlas(
    text: &str,
    source: &str,
    taxonomy: &Taxonomy,
    mapping: &HashMap<String, String>,
) -> Result<AtlasImport> {
    let refused = |problems: Vec<String>| LineageError::Refused {
        source_name: source.to_string(),
        problems,
    };
    let document: Value =
        serde_json::from_str(text).map_err(|e| refused(vec![format!("not JSON: {e}")]))?;
    let entities: Vec<Value> = match document {
        Value::Array(list) => list,
        Value::Object(mut o) => match (o.remove("entities"), o.remove("entity")) {
            (Some(Value::Array(list)), _) => list,
            (_, Some(one)) => vec![one],
            _ => {
                return Err(refused(vec![
                    "expected entities (an array) or entity".into(),
                ]));
            }
        },
        _ => return Err(refused(vec!["expected an entity/bulk document".into()])),
    };
    let mut problems = Vec::new();
    // guid -> qualified name, for references inside the document.
    let mut by_guid = HashMap::new();
    for entity in &entities {
        if let (Some(guid), Some(name)) = (
            entity.get("guid").and_then(Value::as_str),
            qualified_name(entity.get("attributes")),
        ) {
            by_guid.insert(guid.to_string(), name);
        }
    }
    let mut import = Import {
        origin: Origin::Atlas,
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    let mut unmapped = BTreeMap::new();
    let key = |name: &str| NodeKey::new(ATLAS_NAMESPACE, name);
    for (i, entity) in entities.iter().enumerate() {
        let at = format!("entities[{i}]");
        let Some(type_name) = entity.get("typeName").and_then(Value::as_str) else {
            problems.push(format!("{at}.typeName: is required"));
            continue;
        };
        let attributes = entity.get("attributes");
        let Some(name) = qualified_name(attributes) else {
            problems.push(format!("{at}.attributes.qualifiedName: is required"));
            continue;
        };
        let inputs = attributes.and_then(|a| a.get("inputs"));
        let outputs = attributes.and_then(|a| a.get("outputs"));
        let is_process = type_name.eq_ignore_ascii_case("Process")
            || type_name.ends_with("_process")
            || inputs.is_some()
            || outputs.is_some();
        let mut node = Node::new(
            key(&name),
            if is_process {
                NodeKind::Process
            } else {
                NodeKind::DataSource
            },
        );
        for (j, class) in entity
            .get("classifications")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(class) = class.get("typeName").and_then(Value::as_str) else {
                problems.push(format!("{at}.classifications[{j}].typeName: is required"));
                continue;
            };
            let label = mapping
                .get(class)
                .map(String::as_str)
                .or(Some(class))
                .and_then(|l| taxonomy.rank(l).ok().map(|rank| (l, rank)));
            match label {
                Some((label, rank)) if node.label.as_ref().is_none_or(|l| rank > l.rank) => {
                    node.label = Some(Label {
                        name: label.to_string(),
                        rank,
                    });
                }
                Some(_) => {}
                None => *unmapped.entry(class.to_string()).or_insert(0) += 1,
            }
        }
        import.nodes.push(node);
        for (side, list) in [("inputs", inputs), ("outputs", outputs)] {
            let Some(list) = list else { continue };
            let Some(list) = list.as_array() else {
                problems.push(format!("{at}.attributes.{side}: must be an array"));
                continue;
            };
            for (j, reference) in list.iter().enumerate() {
                let target = reference
                    .get("guid")
                    .and_then(Value::as_str)
                    .and_then(|g| by_guid.get(g).cloned())
                    .or_else(|| qualified_name(reference.get("uniqueAttributes")));
                let Some(target) = target else {
                    problems.push(format!(
                        "{at}.attributes.{side}[{j}]: neither a guid in this document nor uniqueAttributes.qualifiedName"
                    ));
                    continue;
                };
                import
                    .nodes
                    .push(Node::new(key(&target), NodeKind::DataSource));
                let (from, to, kind) = if side == "inputs" {
                    (key(&target), key(&name), "reads")
                } else {
                    (key(&name), key(&target), "writes")
                };
                import
                    .edges
                    .push((from, to, Edge::new(kind, Origin::Atlas)));
            }
        }
    }
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    // A referenced dataset may also be declared: keep the declaration (it has
    // the labels), whichever came first.
    let mut nodes: BTreeMap<NodeKey, Node> = BTreeMap::new();
    for node in import.nodes {
        match nodes.get(&node.key) {
            Some(known) if known.label.is_some() || node.label.is_none() => {}
            _ => {
                nodes.insert(node.key.clone(), node);
            }
        }
    }
    import.nodes = nodes.into_values().collect();
    Ok(AtlasImport { import, unmapped })
}

fn qualified_name(attributes: Option<&Value>) -> Option<String> {
    attributes?
        .get("qualifiedName")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_process_links_its_inputs_and_outputs_and_classifications_become_labels() {
        let doc = json!({"entities": [
            {"typeName": "azure_sql_table", "guid": "g1",
             "attributes": {"qualifiedName": "mssql://hr/db/employees", "name": "employees"},
             "classifications": [{"typeName": "MICROSOFT.PERSONAL.NAME"}, {"typeName": "Confidential"}]},
            {"typeName": "Process", "guid": "g2",
             "attributes": {"qualifiedName": "adf://copy-employees", "name": "copy",
                "inputs": [{"guid": "g1", "typeName": "azure_sql_table"}],
                "outputs": [{"typeName": "azure_blob", "uniqueAttributes": {"qualifiedName": "https://lake/employees.parquet"}}]}}
        ]});
        let mapping = HashMap::from([(
            "MICROSOFT.PERSONAL.NAME".to_string(),
            "Highly Confidential".to_string(),
        )]);
        let parsed = parse_atlas(
            &doc.to_string(),
            "bulk.json",
            &Taxonomy::default(),
            &mapping,
        )
        .unwrap();
        let employees = parsed
            .import
            .nodes
            .iter()
            .find(|n| n.key.name == "mssql://hr/db/employees")
            .unwrap();
        assert_eq!(
            employees.label.as_ref().unwrap().name,
            "Highly Confidential"
        );
        let edges: Vec<(&str, &str, &str)> = parsed
            .import
            .edges
            .iter()
            .map(|(a, b, e)| (a.name.as_str(), e.kind.as_str(), b.name.as_str()))
            .collect();
        assert_eq!(
            edges,
            [
                ("mssql://hr/db/employees", "reads", "adf://copy-employees"),
                (
                    "adf://copy-employees",
                    "writes",
                    "https://lake/employees.parquet"
                )
            ]
        );
        assert!(parsed.unmapped.is_empty());
        let unmapped = parse_atlas(
            &doc.to_string(),
            "bulk.json",
            &Taxonomy::default(),
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(unmapped.unmapped.get("MICROSOFT.PERSONAL.NAME"), Some(&1));
    }

    #[test]
    fn unresolvable_references_and_missing_names_are_named() {
        let doc = json!({"entities": [
            {"typeName": "Process", "attributes": {"qualifiedName": "p", "inputs": [{"guid": "nowhere"}]}},
            {"attributes": {"qualifiedName": "q"}},
            {"typeName": "t", "attributes": {}}
        ]});
        let err = parse_atlas(
            &doc.to_string(),
            "bulk.json",
            &Taxonomy::default(),
            &HashMap::new(),
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "entities[0].attributes.inputs[0]: neither a guid",
            "entities[1].typeName: is required",
            "entities[2].attributes.qualifiedName: is required",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from {err}");
        }
    }
}

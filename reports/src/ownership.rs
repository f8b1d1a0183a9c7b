//! Who pays: cost centres, and the subscriptions, agents and products they own
//! (`docs/reference-data.md`, `ownership.toml`). A request is charged to its
//! subscription's cost centre, failing that its agent's, failing that its
//! product's; with none it is `unallocated`, never dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use tollgate_store::StateDb;
use tollgate_store::state::{CostCentre, OwnershipRow};

use crate::{ReportsError, Result};

/// The cost centre of spend nobody owns.
pub const UNALLOCATED: &str = "unallocated";

/// The mapping kinds, in the order they decide.
pub const KINDS: [&str; 3] = ["subscription", "agent", "product"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnershipFile {
    #[serde(default)]
    cost_centres: BTreeMap<String, CostCentreEntry>,
    #[serde(default)]
    subscriptions: BTreeMap<String, String>,
    #[serde(default)]
    agents: BTreeMap<String, String>,
    #[serde(default)]
    products: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CostCentreEntry {
    name: String,
}

/// Reads and checks an ownership file: every mapping must name a declared cost
/// centre; every problem is reported.
pub fn parse(path: &Path, text: &str) -> Result<(Vec<CostCentre>, Vec<OwnershipRow>)> {
    let invalid = |problems: Vec<String>| ReportsError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let file: OwnershipFile =
        toml::from_str(text).map_err(|e| invalid(vec![e.to_string().trim_end().to_owned()]))?;
    let mut problems = Vec::new();
    let centres: Vec<CostCentre> = file
        .cost_centres
        .into_iter()
        .map(|(id, entry)| CostCentre {
            id,
            name: entry.name,
        })
        .collect();
    for c in &centres {
        if c.id == UNALLOCATED {
            problems.push(format!(
                "cost_centres.{UNALLOCATED}: the name is reserved for spend nobody owns"
            ));
        }
    }
    let mut rows = Vec::new();
    let tables = [
        ("subscription", "subscriptions", file.subscriptions),
        ("agent", "agents", file.agents),
        ("product", "products", file.products),
    ];
    for (kind, table, mapping) in tables {
        for (key, cost_centre) in mapping {
            if !centres.iter().any(|c| c.id == cost_centre) {
                problems.push(format!(
                    "{table}.{key:?}: cost centre {cost_centre:?} is not declared under [cost_centres]"
                ));
            }
            rows.push(OwnershipRow {
                kind: kind.to_owned(),
                key,
                cost_centre,
            });
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok((centres, rows))
}

/// Reads, checks and stores an ownership file, replacing the current mapping.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub async fn import(db: &StateDb, path: &Path) -> Result<(Vec<CostCentre>, Vec<OwnershipRow>)> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (centres, rows) = parse(path, &text)?;
    db.replace_ownership(&centres, &rows).await?;
    Ok((centres, rows))
}

/// The mapping, ready to answer who pays for a request.
#[derive(Debug, Default, Clone)]
pub struct Ownership {
    by_kind: [HashMap<String, String>; 3],
}

impl Ownership {
    pub fn new(rows: &[OwnershipRow]) -> Self {
        let mut ownership = Ownership::default();
        for r in rows {
            if let Some(i) = KINDS.iter().position(|k| *k == r.kind) {
                ownership.by_kind[i].insert(r.key.clone(), r.cost_centre.clone());
            }
        }
        ownership
    }

    pub async fn load(db: &StateDb) -> Result<Self> {
        Ok(Ownership::new(&db.ownership().await?))
    }

    /// The cost centre that pays for a request of this subscription, agent and
    /// product, or [`UNALLOCATED`].
    pub fn cost_centre(
        &self,
        subscription: Option<&str>,
        agent: Option<&str>,
        product: Option<&str>,
    ) -> &str {
        [subscription, agent, product]
            .iter()
            .zip(&self.by_kind)
            .find_map(|(key, map)| map.get((*key)?))
            .map_or(UNALLOCATED, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[cost_centres]
"cc-hr" = { name = "Human Resources" }
"cc-rnd" = { name = "Research and Development" }

[subscriptions]
"sub-hr-01" = "cc-hr"

[agents]
"research-agent" = "cc-rnd"

[products]
"sandbox" = "cc-rnd"
"#;

    #[test]
    fn subscription_then_agent_then_product_then_unallocated() {
        let (centres, rows) = parse(Path::new("ownership.toml"), FILE).unwrap();
        assert_eq!(centres.len(), 2);
        let o = Ownership::new(&rows);
        // The subscription decides, even when the agent belongs elsewhere.
        assert_eq!(
            o.cost_centre(Some("sub-hr-01"), Some("research-agent"), Some("gold")),
            "cc-hr"
        );
        assert_eq!(
            o.cost_centre(Some("sub-x"), Some("research-agent"), None),
            "cc-rnd"
        );
        assert_eq!(
            o.cost_centre(Some("sub-x"), Some("other"), Some("sandbox")),
            "cc-rnd"
        );
        assert_eq!(
            o.cost_centre(Some("sub-x"), None, Some("gold")),
            UNALLOCATED
        );
        assert_eq!(o.cost_centre(None, None, None), UNALLOCATED);
    }

    #[test]
    fn undeclared_cost_centres_and_unknown_keys_are_named() {
        let bad = FILE.replace(
            "\"sub-hr-01\" = \"cc-hr\"",
            "\"sub-hr-01\" = \"cc-h\"\n\"sub-2\" = \"cc-x\"",
        );
        let problems = match parse(Path::new("o.toml"), &bad) {
            Err(ReportsError::Invalid { problems, .. }) => problems,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            problems,
            vec![
                "subscriptions.\"sub-2\": cost centre \"cc-x\" is not declared under [cost_centres]",
                "subscriptions.\"sub-hr-01\": cost centre \"cc-h\" is not declared under [cost_centres]",
            ]
        );
        let typo = "[cost_centre]\n\"cc-a\" = { name = \"A\" }\n";
        let message = parse(Path::new("o.toml"), typo).unwrap_err().to_string();
        assert!(message.contains("unknown field `cost_centre`"), "{message}");
        assert!(message.contains("line 1"), "{message}");
        let reserved = "[cost_centres]\nunallocated = { name = \"x\" }\n";
        assert!(parse(Path::new("o.toml"), reserved).is_err());
    }
}

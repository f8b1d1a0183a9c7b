//! Policy findings over effective labels, and exposure of labelled data to
//! external-facing nodes. Each finding carries the path that proves it.

use petgraph::stable_graph::NodeIndex;
use serde::Serialize;

use crate::graph::LineageGraph;
use crate::label::Rank;
use crate::model::NodeKind;
use crate::query::{Bounds, Direction};
use crate::view::{NodeSummary, Omitted, PathStep, ReachedNode};

/// What counts as outside: node boundaries that face the outside world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub external_boundaries: Vec<String>,
    /// Hosts model calls should go to (`[lineage] gateway_hosts`); with the
    /// graph's gateway nodes, a model call elsewhere bypassed the gateways.
    pub gateway_hosts: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            external_boundaries: vec!["external".into(), "public".into(), "global".into()],
            gateway_hosts: Vec::new(),
        }
    }
}

impl Policy {
    fn is_external(&self, boundary: Option<&str>) -> bool {
        boundary.is_some_and(|b| {
            self.external_boundaries
                .iter()
                .any(|e| e.eq_ignore_ascii_case(b))
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A model deployment receives data above its allowed label.
    AboveAllowedLabel,
    /// The most sensitive data reaches a model outside its boundary or region.
    OutOfBoundary,
    /// An agent handles data above its clearance.
    AboveClearance,
    /// A label set by hand is lower than what flows into the node.
    ExplicitBelowEffective,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Finding {
    pub kind: FindingKind,
    pub node: NodeSummary,
    pub detail: String,
    /// From the labelled origin to the node.
    pub path: Vec<PathStep>,
    /// Set when the path was longer than an answer shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<Omitted>,
}

/// Labelled data an external-facing node receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Exposure {
    pub external: NodeSummary,
    pub boundary: String,
    /// Upstream nodes at or above the label, with their distance.
    pub sources: Vec<ReachedNode>,
    pub truncated: bool,
}

impl LineageGraph {
    /// Every policy finding, grouped by kind, then by node key.
    pub fn findings(&self, policy: &Policy) -> Vec<Finding> {
        let mut out = Vec::new();
        for ix in self.nodes() {
            let node = self.node(ix);
            let Some(effective) = self.effective(ix) else {
                continue;
            };
            let name = |r: Rank| self.taxonomy.name(r).to_string();
            let mut add = |kind, detail: String| {
                let explained = self.explain(ix);
                out.push(Finding {
                    kind,
                    node: explained.node,
                    detail,
                    path: explained.path,
                    omitted: explained.omitted,
                });
            };
            if node.kind == NodeKind::ModelDeployment {
                if let Some(allowed) = &node.allowed_label
                    && effective > allowed.rank
                {
                    add(
                        FindingKind::AboveAllowedLabel,
                        format!(
                            "receives {} data; allowed at most {}",
                            name(effective),
                            allowed.name
                        ),
                    );
                }
                if effective == self.taxonomy.top() {
                    let origin_region = self.origin_region(ix);
                    if policy.is_external(node.boundary.as_deref()) {
                        add(
                            FindingKind::OutOfBoundary,
                            format!(
                                "{} data reaches a deployment with boundary {:?}",
                                name(effective),
                                node.boundary.as_deref().unwrap_or_default()
                            ),
                        );
                    } else if let (Some(at), Some(from)) = (&node.region, origin_region)
                        && !at.eq_ignore_ascii_case(from)
                    {
                        add(
                            FindingKind::OutOfBoundary,
                            format!(
                                "{} data from region {from} reaches a deployment in {at}",
                                name(effective)
                            ),
                        );
                    }
                }
            }
            if node.kind == NodeKind::Agent
                && let Some(clearance) = &node.clearance
                && effective > clearance.rank
            {
                add(
                    FindingKind::AboveClearance,
                    format!(
                        "handles {} data; cleared for {}",
                        name(effective),
                        clearance.name
                    ),
                );
            }
            if let Some(own) = &node.label
                && effective > own.rank
            {
                add(
                    FindingKind::ExplicitBelowEffective,
                    format!(
                        "labelled {} by hand; {} flows in",
                        own.name,
                        name(effective)
                    ),
                );
            }
        }
        out.sort_by(|a, b| {
            (a.kind, &a.node.namespace, &a.node.name).cmp(&(
                b.kind,
                &b.node.namespace,
                &b.node.name,
            ))
        });
        out
    }

    /// The region of the node a label came from, if it has one.
    fn origin_region(&self, ix: NodeIndex) -> Option<&str> {
        let path = self.label_path(ix);
        path.first()
            .and_then(|(origin, _)| self.node(*origin).region.as_deref())
    }

    /// For each external-facing node, the upstream nodes at or above `min`.
    pub fn exposure(&self, min: Rank, policy: &Policy, bounds: &Bounds) -> Vec<Exposure> {
        let mut out: Vec<Exposure> = self
            .nodes()
            .filter(|&ix| policy.is_external(self.node(ix).boundary.as_deref()))
            .filter(|&ix| self.effective(ix) >= Some(min))
            .map(|ix| {
                let reached = self.reach(ix, Direction::Upstream, bounds);
                let sources: Vec<ReachedNode> = reached
                    .nodes
                    .iter()
                    .filter(|(n, _)| self.effective(*n) >= Some(min))
                    .map(|(n, d)| ReachedNode {
                        node: self.summary(*n),
                        distance: *d,
                    })
                    .collect();
                Exposure {
                    external: self.summary(ix),
                    boundary: self.node(ix).boundary.clone().unwrap_or_default(),
                    sources,
                    truncated: reached.truncated,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.external.namespace, &a.external.name)
                .cmp(&(&b.external.namespace, &b.external.name))
        });
        out
    }
}

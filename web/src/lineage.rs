//! The lineage graph this server answers from: loaded from the state database,
//! shared by every request as an `Arc`, and reloaded when the stored `lineage`
//! version moves (an import here or in another process).

use std::sync::Arc;

use tollgate_lineage::{LineageGraph, Taxonomy, load_graph};
use tollgate_store::StateDb;
use tollgate_store::versioned::Versioned;

#[derive(Debug)]
pub struct LineageCache {
    taxonomy: Taxonomy,
    graph: Versioned<LineageGraph>,
}

impl LineageCache {
    pub fn new(taxonomy: Taxonomy) -> Self {
        Self {
            graph: Versioned::new(LineageGraph::new(taxonomy.clone())),
            taxonomy,
        }
    }

    /// The graph as last loaded.
    pub fn current(&self) -> Arc<LineageGraph> {
        self.graph.current()
    }

    /// Brings an import this process just stored (as `version`) into the graph:
    /// incrementally when the graph held the version before it, by a reload
    /// when another change came in between.
    pub async fn apply(
        &self,
        db: &StateDb,
        import: &tollgate_lineage::Import,
        version: i64,
    ) -> tollgate_lineage::Result<()> {
        if self.graph.advance(version, |graph| graph.merge(import)) {
            return Ok(());
        }
        self.refresh(db, true).await
    }

    /// Reloads the graph if the stored version moved (or `force`). Nodes and
    /// edges are read in two queries: a load an import overlapped (the version
    /// moved meanwhile, or an edge names a node read before it existed) is
    /// thrown away and read again, so the graph is always tagged with the
    /// version it holds and never holds half an import.
    pub async fn refresh(&self, db: &StateDb, force: bool) -> tollgate_lineage::Result<()> {
        let mut version = db
            .state_version(tollgate_store::StateVersion::Lineage)
            .await?;
        if !self.graph.is_stale(version) && !force {
            return Ok(());
        }
        let mut attempts = 0;
        loop {
            let graph = load_graph(db, self.taxonomy.clone()).await;
            let after = db
                .state_version(tollgate_store::StateVersion::Lineage)
                .await?;
            attempts += 1;
            if after != version && attempts < 5 {
                version = after;
                continue;
            }
            self.graph.keep_newest(version, graph?);
            return Ok(());
        }
    }
}

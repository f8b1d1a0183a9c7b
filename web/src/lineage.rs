//! The lineage graph this server answers from: loaded from the state database,
//! shared by every request as an `Arc`, and reloaded when the stored `lineage`
//! version moves (an import here or in another process).

use std::sync::{Arc, RwLock};

use tollgate_lineage::{LineageGraph, Taxonomy, load_graph};
use tollgate_store::StateDb;

#[derive(Debug)]
pub struct LineageCache {
    taxonomy: Taxonomy,
    graph: RwLock<(i64, Arc<LineageGraph>)>,
}

impl LineageCache {
    pub fn new(taxonomy: Taxonomy) -> Self {
        Self {
            graph: RwLock::new((-1, Arc::new(LineageGraph::new(taxonomy.clone())))),
            taxonomy,
        }
    }

    /// The graph as last loaded.
    pub fn current(&self) -> Arc<LineageGraph> {
        self.graph
            .read()
            .map(|g| g.1.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().1.clone())
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
        if let Ok(mut slot) = self.graph.write()
            && slot.0 == version - 1
        {
            // Copies only while a request still holds the previous graph.
            Arc::make_mut(&mut slot.1).merge(import);
            slot.0 = version;
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
        let loaded = self.graph.read().map(|g| g.0).unwrap_or(-1);
        let mut version = db.state_version("lineage").await?;
        if version == loaded && !force {
            return Ok(());
        }
        let mut attempts = 0;
        loop {
            let graph = load_graph(db, self.taxonomy.clone()).await;
            let after = db.state_version("lineage").await?;
            attempts += 1;
            if after != version && attempts < 5 {
                version = after;
                continue;
            }
            let graph = Arc::new(graph?);
            if let Ok(mut slot) = self.graph.write()
                && slot.0 <= version
            {
                *slot = (version, graph);
            }
            return Ok(());
        }
    }
}

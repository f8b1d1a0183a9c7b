//! `tollgate lineage` on the generator's catalog: the analyst's questions, and a
//! bad catalog refused whole.

use serde_json::Value;
use tollgate_store::testing::TestStore;

use super::{generate_estate, stderr, stdout, tollgate};

tollgate_store::backend_tests!(an_analyst_finds_every_agent_reaching_highly_confidential_data);

fn json(store: &TestStore, args: &[&str]) -> Value {
    let out = tollgate(store, args, &[]);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// A story in named steps: a failure says which step it was.
async fn an_analyst_finds_every_agent_reaching_highly_confidential_data(store: TestStore) {
    let (estate, catalog, agents) = the_catalog_answers_the_analysts_questions(&store);
    a_catalog_with_mistakes_is_refused_whole(&store, &catalog, agents.len());
    the_traffic_joins_the_catalog_as_observed_edges(&store, &estate, &agents);
    dlp_hits_show_beside_the_agents_lineage(&store, &estate);
    foundry_connections_link_without_keeping_credentials(&store).await;
    atlas_entities_link_and_label(&store);
}

/// The generator's estate and catalog imported: which agents reach Highly
/// Confidential data (with the path), the findings, a bounded traversal.
/// The estate, the catalog and the agents found.
fn the_catalog_answers_the_analysts_questions(
    store: &TestStore,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<Value>) {
    let estate = generate_estate(store, 200);
    let catalog = estate.join("reference/catalog.yaml");
    let out = tollgate(
        store,
        &["lineage", "import", "catalog", catalog.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("edges imported"), "{}", stdout(&out));

    let agents = json(
        store,
        &[
            "lineage",
            "reach",
            "--label",
            "Highly Confidential",
            "--kind",
            "agent",
            "--format",
            "json",
        ],
    );
    let agents = agents.as_array().unwrap().clone();
    assert!(!agents.is_empty());
    for agent in &agents {
        assert_eq!(agent["node"]["kind"], "agent");
        let path = agent["path"].as_array().unwrap();
        assert_eq!(path[0]["node"]["kind"], "data_source");
        assert_eq!(path[0]["node"]["label"], "Highly Confidential");
        assert_eq!(path.last().unwrap()["node"], agent["node"]);
    }
    let table = tollgate(
        store,
        &[
            "lineage",
            "reach",
            "--label",
            "Highly Confidential",
            "--kind",
            "agent",
        ],
        &[],
    );
    assert!(
        stdout(&table).contains(" -[calls]-> contoso::"),
        "{}",
        stdout(&table)
    );

    let findings = json(store, &["lineage", "findings", "--format", "json"]);
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "above_clearance" && f["node"]["name"] == "marketing-writer"),
        "{findings:#}"
    );
    let down = json(
        store,
        &[
            "lineage",
            "downstream",
            "--node",
            "hr-employee-db",
            "--depth",
            "1",
            "--format",
            "json",
        ],
    );
    assert_eq!(down["truncated"], true);
    assert!(
        down["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["distance"] == 1)
    );

    (estate, catalog, agents)
}

fn a_catalog_with_mistakes_is_refused_whole(
    store: &TestStore,
    catalog: &std::path::Path,
    agents: usize,
) {
    // A catalog with mistakes is refused whole, each named, and nothing changes.
    let bad = store.dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(catalog)
        .unwrap()
        .replacen("label: \"Highly Confidential\"", "label: \"Top Secret\"", 1)
        .replacen("kind: calls", "kind: calls, cap: \"Nope\"", 1);
    std::fs::write(&bad, text).unwrap();
    let out = tollgate(
        store,
        &["lineage", "import", "catalog", bad.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml")
            && err.contains("\"Top Secret\"")
            && err.contains("cap: unknown label \"Nope\""),
        "{err}"
    );
    let again = json(
        store,
        &[
            "lineage",
            "reach",
            "--label",
            "Highly Confidential",
            "--kind",
            "agent",
            "--format",
            "json",
        ],
    );
    assert_eq!(again.as_array().unwrap().len(), agents);
}

fn the_traffic_joins_the_catalog_as_observed_edges(
    store: &TestStore,
    estate: &std::path::Path,
    agents: &[Value],
) {
    // The traffic joins the catalog: observed edges from the committed logs
    // lead from agents through their deployments and the gateway to the
    // subscriptions it serves, with call counts.
    let logs: Vec<String> = ["gateway-logs", "llm-logs"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(estate.join(dir)).unwrap())
        .map(|entry| entry.unwrap().path().display().to_string())
        .collect();
    let mut args = vec!["ingest"];
    args.extend(logs.iter().map(String::as_str));
    let out = tollgate(store, &args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("observed edges"), "{}", stderr(&out));
    let serves_someone = agents.iter().any(|agent| {
        let name = agent["node"]["name"].as_str().unwrap();
        let reached = json(
            store,
            &[
                "lineage",
                "downstream",
                "--node",
                name,
                "--kind",
                "subscription",
                "--format",
                "json",
            ],
        );
        !reached["nodes"].as_array().unwrap().is_empty()
    });
    assert!(
        serves_someone,
        "no agent's data reaches a subscription through observed edges"
    );
    let out = tollgate(store, &["lineage", "observe"], &[]);
    assert!(stderr(&out).contains("unchanged"), "{}", stderr(&out));
}

fn dlp_hits_show_beside_the_agents_lineage(store: &TestStore, estate: &std::path::Path) {
    // DLP hits beside the lineage of the agent that caused them.
    let dlp = estate.join("dlp/dlp-events.jsonl");
    let out = tollgate(store, &["ingest", dlp.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = json(
        store,
        &["lineage", "hits", "--by", "label", "--format", "json"],
    );
    let counts = counts.as_array().unwrap();
    assert!(
        counts.iter().any(|c| c["key"] == "Highly Confidential"),
        "{counts:?}"
    );
    assert!(
        counts
            .iter()
            .all(|c| c["hits"].as_i64().unwrap() >= c["blocked"].as_i64().unwrap())
    );
    let ids = tollgate(
        store,
        &[
            "sql",
            "SELECT hit_id FROM dlp_hits WHERE agent IS NOT NULL AND resource_name IS NOT NULL ORDER BY hit_id LIMIT 1",
            "--format",
            "csv",
        ],
        &[],
    );
    let hit_id = stdout(&ids).lines().nth(1).unwrap().to_owned();
    let hit = json(store, &["lineage", "hit", &hit_id]);
    let agent = hit["agent"]["name"].as_str().unwrap();
    assert_eq!(hit["hit"]["agent"], agent);
    let sources = hit["sources"].as_array().unwrap();
    assert!(!sources.is_empty(), "{hit:#}");
    for source in sources {
        let path = source["path"].as_array().unwrap();
        assert_eq!(path[0]["node"], source["node"]);
        assert_eq!(path.last().unwrap()["node"]["name"], agent);
    }
    // The resource the hit names is one of the agent's labelled sources.
    assert!(
        sources
            .iter()
            .any(|s| s["node"]["name"] == hit["hit"]["resource_name"]),
        "{hit:#}"
    );
    assert_eq!(hit["resource"]["node"]["name"], hit["hit"]["resource_name"]);
    let out = tollgate(store, &["lineage", "hits", "--by", "colour"], &[]);
    assert!(
        stderr(&out).contains("by: \"colour\" is not agent"),
        "{}",
        stderr(&out)
    );
    let out = tollgate(store, &["lineage", "hit", "nope"], &[]);
    assert!(stderr(&out).contains("no hit \"nope\""), "{}", stderr(&out));
}

async fn foundry_connections_link_without_keeping_credentials(store: &TestStore) {
    // Foundry connections: linked, misconfigurations reported, no credential kept.
    let foundry = store.dir.path().join("connections.json");
    std::fs::write(
        &foundry,
        serde_json::json!({"value": [{
            "id": "/subscriptions/X/resourceGroups/X/providers/Microsoft.CognitiveServices/accounts/X/projects/claims/connections/apim",
            "name": "apim",
            "properties": {
                "authType": "ApiKey", "category": "ApiManagement",
                "credentials": {"key": "s3cr3t-foundry-key"},
                "target": "https://contoso.azure-api.net/openai-v1",
                "metadata": {"DeploymentInPath": "false", "models": [{"name": "gpt-4o"}]}
            }
        }]})
        .to_string(),
    )
    .unwrap();
    let out = tollgate(
        store,
        &["lineage", "import", "foundry", foundry.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("case sensitive") && err.contains("jsonencode"),
        "{err}"
    );
    let down = json(
        store,
        &[
            "lineage",
            "downstream",
            "--node",
            "claims",
            "--format",
            "json",
        ],
    );
    assert!(
        down["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "gpt-4o" && n["kind"] == "model"),
        "{down:#}"
    );
    let audit = store.db.audit_log(None, 100).await.unwrap();
    assert!(!format!("{audit:?}").contains("s3cr3t"));
    let nodes = store.db.lineage_nodes().await.unwrap();
    assert!(!format!("{nodes:?}").contains("s3cr3t"));
}

fn atlas_entities_link_and_label(store: &TestStore) {
    // Atlas / Purview entities: a Process links its datasets; a classification
    // that names a label labels its entity, others are reported unmapped.
    let atlas = store.dir.path().join("bulk.json");
    std::fs::write(
        &atlas,
        serde_json::json!({"entities": [
            {"typeName": "azure_sql_table", "guid": "g1",
             "attributes": {"qualifiedName": "mssql://hr/employees"},
             "classifications": [{"typeName": "Highly Confidential"}, {"typeName": "MICROSOFT.PERSONAL.NAME"}]},
            {"typeName": "Process", "guid": "g2",
             "attributes": {"qualifiedName": "adf://copy-employees",
                "inputs": [{"guid": "g1"}],
                "outputs": [{"uniqueAttributes": {"qualifiedName": "https://lake/employees"}}]}}
        ]})
        .to_string(),
    )
    .unwrap();
    let out = tollgate(
        store,
        &["lineage", "import", "atlas", atlas.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("MICROSOFT.PERSONAL.NAME (1 entities) maps to no label"),
        "{}",
        stderr(&out)
    );
    let why = json(
        store,
        &[
            "lineage",
            "why",
            "--node",
            "https://lake/employees",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        why["node"]["effective_label"], "Highly Confidential",
        "{why:#}"
    );
    assert_eq!(why["path"].as_array().unwrap().len(), 3, "{why:#}");

    let out = tollgate(store, &["lineage", "why", "--node", "no-such-node"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no node no-such-node"),
        "{}",
        stderr(&out)
    );
}

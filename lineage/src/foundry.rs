//! Microsoft Foundry connections to an AI gateway (the "bring your own AI
//! gateway" connection objects: category `ApiManagement` or `ModelGateway`) as
//! lineage: project -> connection -> gateway -> each model the connection
//! exposes, in data-flow direction. The known misconfigurations are reported as
//! findings (the connection is still imported, as Foundry would still create
//! it): metadata keys in the wrong case (Foundry silently ignores them), a
//! `models` value that is an array instead of a JSON string, an APIM target on
//! a custom domain (not supported), and an auth type the category does not
//! take. Credentials are never read into anything that is stored.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{Edge, Node, NodeKey, NodeKind, Origin};
use crate::{Import, LineageError, Result};

/// The namespace Foundry nodes are keyed in.
pub const FOUNDRY_NAMESPACE: &str = "foundry";

const METADATA_KEYS: [&str; 5] = [
    "deploymentInPath",
    "inferenceAPIVersion",
    "deploymentAPIVersion",
    "models",
    "modelDiscovery",
];
const PROPERTY_KEYS: [&str; 8] = [
    "authType",
    "category",
    "target",
    "metadata",
    "credentials",
    "isSharedToAll",
    "audience",
    "group",
];

/// A connection that will not work as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConnectionFinding {
    pub connection: String,
    pub field: String,
    pub problem: String,
}

/// Parses connections: one object, an array, or an ARM list (`{"value": [...]}`).
pub fn parse_foundry(text: &str, source: &str) -> Result<(Import, Vec<ConnectionFinding>)> {
    let refused = |problems: Vec<String>| LineageError::Refused {
        source_name: source.to_string(),
        problems,
    };
    let document: Value =
        serde_json::from_str(text).map_err(|e| refused(vec![format!("not JSON: {e}")]))?;
    let connections = match document {
        Value::Array(list) => list,
        Value::Object(mut object) => match object.remove("value") {
            Some(Value::Array(list)) => list,
            _ => vec![Value::Object(object)],
        },
        _ => {
            return Err(refused(vec![
                "expected a connection object or a list of them".into(),
            ]));
        }
    };
    let mut import = Import {
        origin: Origin::Foundry,
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    let (mut problems, mut findings) = (Vec::new(), Vec::new());
    for (i, connection) in connections.iter().enumerate() {
        let at = format!("[{i}]");
        let Some(connection) = connection.as_object() else {
            problems.push(format!("{at}: must be a JSON object"));
            continue;
        };
        let Some(name) = connection.get("name").and_then(Value::as_str) else {
            problems.push(format!("{at}.name: is required"));
            continue;
        };
        let Some(properties) = connection.get("properties").and_then(Value::as_object) else {
            problems.push(format!("{at}.properties: is required (an object)"));
            continue;
        };
        let mut find = |field: &str, problem: String| {
            findings.push(ConnectionFinding {
                connection: name.to_string(),
                field: field.to_string(),
                problem,
            });
        };
        check_case(properties, &PROPERTY_KEYS, "properties", &mut find);
        let category = properties.get("category").and_then(Value::as_str);
        let auth = properties.get("authType").and_then(Value::as_str);
        match (category, auth) {
            (Some("ApiManagement"), Some(a))
                if !matches!(a, "ApiKey" | "ProjectManagedIdentity") =>
            {
                find(
                    "properties.authType",
                    format!(
                        "{a:?} is not ApiKey or ProjectManagedIdentity, which ApiManagement takes"
                    ),
                );
            }
            (Some("ModelGateway"), Some(a)) if !matches!(a, "ApiKey" | "OAuth") => {
                find(
                    "properties.authType",
                    format!("{a:?} is not ApiKey or OAuth, which ModelGateway takes"),
                );
            }
            (Some("ApiManagement" | "ModelGateway"), _) => {}
            (other, _) => find(
                "properties.category",
                format!("{other:?} is not ApiManagement or ModelGateway"),
            ),
        }
        let Some(target) = properties.get("target").and_then(Value::as_str) else {
            problems.push(format!("{at} ({name}).properties.target: is required"));
            continue;
        };
        let Some(host) = url::Url::parse(target)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
        else {
            problems.push(format!(
                "{at} ({name}).properties.target: {target:?} is not a URL"
            ));
            continue;
        };
        if category == Some("ApiManagement") && !host.ends_with(".azure-api.net") {
            find(
                "properties.target",
                format!(
                    "{host} is a custom domain; Foundry connections to APIM need the azure-api.net host"
                ),
            );
        }
        let metadata = properties.get("metadata").and_then(Value::as_object);
        let mut models = Vec::new();
        if let Some(metadata) = metadata {
            check_case(metadata, &METADATA_KEYS, "properties.metadata", &mut find);
            match metadata.get("models") {
                Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Array(list)) => models = model_names(&list),
                    _ => find(
                        "properties.metadata.models",
                        "is a string but not a JSON array of models".into(),
                    ),
                },
                Some(Value::Array(list)) => {
                    find(
                        "properties.metadata.models",
                        "is an array; Foundry needs it as a JSON string (jsonencode it)".into(),
                    );
                    models = model_names(list);
                }
                Some(Value::Null) | None => {}
                Some(_) => find("properties.metadata.models", "must be a JSON string".into()),
            }
        }
        let project = connection
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.split("/projects/").nth(1))
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string);
        let key = |n: &str| NodeKey::new(FOUNDRY_NAMESPACE, n);
        let connection_key = key(&match &project {
            Some(p) => format!("{p}/{name}"),
            None => name.to_string(),
        });
        let gateway_key = NodeKey::new(FOUNDRY_NAMESPACE, host.clone());
        import
            .nodes
            .push(Node::new(connection_key.clone(), NodeKind::Connection));
        import
            .nodes
            .push(Node::new(gateway_key.clone(), NodeKind::Gateway));
        if let Some(project) = &project {
            let project_key = key(project);
            import
                .nodes
                .push(Node::new(project_key.clone(), NodeKind::Project));
            import.edges.push((
                project_key,
                connection_key.clone(),
                Edge::new("uses", Origin::Foundry),
            ));
        }
        import.edges.push((
            connection_key,
            gateway_key.clone(),
            Edge::new("routes_to", Origin::Foundry),
        ));
        for model in models {
            let model_key = key(&model);
            import
                .nodes
                .push(Node::new(model_key.clone(), NodeKind::Model));
            import.edges.push((
                gateway_key.clone(),
                model_key,
                Edge::new("exposes", Origin::Foundry),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    import.nodes.sort_by(|a, b| a.key.cmp(&b.key));
    import.nodes.dedup_by(|a, b| a.key == b.key);
    Ok((import, findings))
}

/// Keys that differ from a known one only in case: Foundry ignores them.
fn check_case(
    object: &Map<String, Value>,
    known: &[&str],
    at: &str,
    find: &mut impl FnMut(&str, String),
) {
    for key in object.keys() {
        if let Some(expected) = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(key) && **k != key.as_str())
        {
            find(
                &format!("{at}.{key}"),
                format!("keys are case sensitive: Foundry ignores {key:?}, it reads {expected:?}"),
            );
        }
    }
}

fn model_names(list: &[Value]) -> Vec<String> {
    list.iter()
        .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn connection() -> Value {
        json!({
            "id": "/subscriptions/X/resourceGroups/X/providers/Microsoft.CognitiveServices/accounts/X/projects/sampleproject1/connections/conn1",
            "name": "conn1",
            "properties": {
                "audience": "https://cognitiveservices.azure.com",
                "authType": "ApiKey",
                "category": "ApiManagement",
                "credentials": {"key": "s3cr3t-key-never-stored"},
                "isSharedToAll": false,
                "metadata": {
                    "deploymentInPath": "false",
                    "inferenceAPIVersion": null,
                    "models": "[{\"name\":\"gpt-4o\",\"properties\":{\"model\":{\"format\":\"OpenAI\",\"name\":\"gpt-4o\",\"version\":\"2024-08-06\"}}}]"
                },
                "target": "https://contoso.azure-api.net/openai-v1"
            }
        })
    }

    #[test]
    fn a_connection_links_project_connection_gateway_and_models_without_credentials() {
        let (import, findings) = parse_foundry(&connection().to_string(), "conn.json").unwrap();
        assert!(findings.is_empty(), "{findings:?}");
        let edges: Vec<(String, &str, String)> = import
            .edges
            .iter()
            .map(|(a, b, e)| (a.name.clone(), e.kind.as_str(), b.name.clone()))
            .collect();
        assert_eq!(
            edges,
            [
                (
                    "sampleproject1".into(),
                    "uses",
                    "sampleproject1/conn1".into()
                ),
                (
                    "sampleproject1/conn1".into(),
                    "routes_to",
                    "contoso.azure-api.net".into()
                ),
                ("contoso.azure-api.net".into(), "exposes", "gpt-4o".into()),
            ]
        );
        assert!(!format!("{import:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_known_misconfigurations_are_findings() {
        let mut bad = connection();
        let metadata = bad["properties"]["metadata"].as_object_mut().unwrap();
        let in_path = metadata.remove("deploymentInPath").unwrap();
        metadata.insert("DeploymentInPath".into(), in_path);
        metadata.insert("models".into(), json!([{"name": "gpt-4o"}]));
        bad["properties"]["target"] = json!("https://ai.contoso.com/openai-v1");
        bad["properties"]["authType"] = json!("OAuth");
        let (import, findings) =
            parse_foundry(&json!({"value": [bad]}).to_string(), "list.json").unwrap();
        let fields: Vec<&str> = findings.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "properties.authType",
                "properties.target",
                "properties.metadata.DeploymentInPath",
                "properties.metadata.models"
            ]
        );
        // Still imported: the models array is read as Foundry would not.
        assert!(import.nodes.iter().any(|n| n.key.name == "gpt-4o"));
    }

    #[test]
    fn a_connection_without_its_essentials_is_refused_naming_each() {
        let err = parse_foundry(
            &json!([{"name": "a", "properties": {"category": "ApiManagement"}}, {"properties": {}}, 3]).to_string(),
            "bad.json",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "[0] (a).properties.target: is required",
            "[1].name: is required",
            "[2]: must be a JSON object",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from {err}");
        }
        assert!(
            parse_foundry("{", "x.json")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}

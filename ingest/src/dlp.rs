//! DLP events as JSON lines, modelled on Microsoft Purview DLP alerts
//! (`docs/dlp-events.md`): which policy and rule matched which sensitive
//! information types in whose AI interaction, what the service did about it, and
//! which data source the content came from, so hits can be joined to requests
//! (`request_id`) and to the lineage graph (the resource's node key).
//!
//! Field names follow Purview's (`CreationTime`, `PolicyName`, ...); the
//! lower-case names an export script would write are read too. Each hit is
//! identified by the event's `Id`, or when it has none by a digest of everything
//! it says after normalisation, so the same event exported twice, with its keys
//! in another order or under the other names, is counted once.

use serde_json::Value;

use crate::record::{HitRecord, Record};
use crate::scalar::{self, lookup, text, utc_time};

/// Each field's accepted names, the documented one first.
const ID: &[&str] = &["Id", "id"];
const TIME: &[&str] = &["CreationTime", "time"];
const POLICY: &[&str] = &["PolicyName", "policy"];
const RULE: &[&str] = &["RuleName", "rule"];
const SEVERITY: &[&str] = &["Severity", "severity"];
const ACTION: &[&str] = &["Action", "Actions", "action", "actions"];
const SENSITIVE_INFO_TYPES: &[&str] = &["SensitiveInfoTypes", "sensitive_info_types"];
const LABEL: &[&str] = &["SensitivityLabel", "label"];
const AGENT: &[&str] = &["Agent", "agent"];
const APP: &[&str] = &["Application", "app"];
const USER: &[&str] = &["UserId", "user", "user_id"];
const REQUEST_ID: &[&str] = &["RequestId", "request_id"];
const RESOURCE: &[&str] = &["Resource", "resource"];

/// Every accepted top-level name: a quarantine reason must name one of them.
#[cfg(test)]
const FIELDS: [&[&str]; 13] = [
    ID,
    TIME,
    POLICY,
    RULE,
    SEVERITY,
    ACTION,
    SENSITIVE_INFO_TYPES,
    LABEL,
    AGENT,
    APP,
    USER,
    REQUEST_ID,
    RESOURCE,
];

/// What reported the hit, as `dlp_hits.source` says it.
const SOURCE: &str = "purview";

/// What the service did, weakest first: of several actions the strongest is
/// what happened to the content.
const ACTIONS: [&str; 3] = ["audit", "block_with_override", "block"];
const SEVERITIES: [&str; 3] = ["low", "medium", "high"];

/// Maps one DLP event.
pub fn parse_value(event: &Value) -> Result<Record, String> {
    if !event.is_object() {
        return Err("not a DLP event: expected a JSON object".to_owned());
    }
    let (time_field, time) = field(event, TIME).ok_or_else(|| missing(TIME))?;
    let time_us = utc_time(Some(scalar::of(time)), time_field)?.ok_or_else(|| missing(TIME))?;
    let policy = optional_text(event, POLICY)?.ok_or_else(|| missing(POLICY))?;
    let (action_field, action) = field(event, ACTION).ok_or_else(|| missing(ACTION))?;
    let action = strongest_action(action, action_field)?;
    let severity = match optional_text(event, SEVERITY)? {
        None => None,
        Some(given) => Some(one_of(&given, &SEVERITIES, field_name(event, SEVERITY))?),
    };
    let sensitive_info_types = match field(event, SENSITIVE_INFO_TYPES) {
        None => None,
        Some((name, value)) => Some(Value::from(type_names(value, name)?).to_string()),
    };
    let (resource_namespace, resource_name) = match field(event, RESOURCE) {
        None => (None, None),
        Some((name, value)) => {
            let (namespace, node) = resource(value, name)?;
            (Some(namespace), Some(node))
        }
    };
    let mut hit = HitRecord {
        time_us,
        hit_id: String::new(),
        source: SOURCE.to_owned(),
        policy,
        rule: optional_text(event, RULE)?,
        severity: severity.map(str::to_owned),
        action: action.to_owned(),
        sensitive_info_types,
        label: optional_text(event, LABEL)?,
        agent: optional_text(event, AGENT)?,
        app: optional_text(event, APP)?,
        user_id: optional_text(event, USER)?,
        request_id: optional_text(event, REQUEST_ID)?,
        resource_namespace,
        resource_name,
    };
    hit.hit_id = match optional_text(event, ID)? {
        Some(id) => id,
        None => digest(&hit),
    };
    Ok(Record {
        request: None,
        tokens: None,
        metric: None,
        hit: Some(hit),
        span: None,
        cost: None,
    })
}

/// The first of `names` the event has with a non-null value, and that value.
fn field<'v>(event: &'v Value, names: &[&'static str]) -> Option<(&'static str, &'v Value)> {
    names
        .iter()
        .find_map(|name| event.get(name).filter(|v| !v.is_null()).map(|v| (*name, v)))
}

/// The name the event used for a field, for its errors; the documented one if absent.
fn field_name(event: &Value, names: &[&'static str]) -> &'static str {
    field(event, names).map_or(names[0], |(name, _)| name)
}

fn optional_text(event: &Value, names: &[&'static str]) -> Result<Option<String>, String> {
    match field(event, names) {
        None => Ok(None),
        Some((name, _)) => text(lookup(event, name), name),
    }
}

fn missing(names: &[&str]) -> String {
    match names {
        [first, second, ..] => format!("missing field `{first}` (or `{second}`)"),
        [first] => format!("missing field `{first}`"),
        [] => "missing field".to_owned(),
    }
}

/// `given` as one of `allowed`, matched ignoring case, spaces, hyphens and
/// underscores ("Block with override", "BlockWithOverride", "HIGH").
fn one_of(given: &str, allowed: &[&'static str], field: &str) -> Result<&'static str, String> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = squash(given);
    allowed
        .iter()
        .find(|a| squash(a) == wanted)
        .copied()
        .ok_or_else(|| {
            format!(
                "field `{field}`: {:?} is not {}",
                given.chars().take(64).collect::<String>(),
                allowed.join(", ")
            )
        })
}

/// One action, or a list of them (as Purview records every action a rule
/// took), which reads as its strongest. An empty list is a rule that only
/// audited.
fn strongest_action(value: &Value, field: &str) -> Result<&'static str, String> {
    match value {
        Value::Array(items) => {
            let mut strongest = ACTIONS[0];
            for (i, item) in items.iter().enumerate() {
                let name = format!("{field}[{i}]");
                let given = text(Some(scalar::of(item)), &name)?
                    .ok_or_else(|| format!("field `{name}`: empty action"))?;
                let action = one_of(&given, &ACTIONS, &name)?;
                if rank(action) > rank(strongest) {
                    strongest = action;
                }
            }
            Ok(strongest)
        }
        other => {
            let given = text(Some(scalar::of(other)), field)?
                .ok_or_else(|| format!("field `{field}`: empty action"))?;
            one_of(&given, &ACTIONS, field)
        }
    }
}

fn rank(action: &str) -> usize {
    ACTIONS.iter().position(|a| *a == action).unwrap_or(0)
}

/// Sensitive information types: names, or objects with a `name` (Purview's
/// detection details); kept in the order given.
fn type_names(value: &Value, field: &str) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "field `{field}`: expected a list of names or of {{name}} objects"
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = format!("{field}[{i}]");
            let found = match item {
                Value::Object(_) => {
                    let key = ["name", "Name"]
                        .into_iter()
                        .find(|k| item.get(k).is_some_and(|v| !v.is_null()))
                        .unwrap_or("name");
                    text(lookup(item, key), &format!("{name}.{key}"))?
                }
                other => text(Some(scalar::of(other)), &name)?,
            };
            found.ok_or_else(|| format!("field `{name}`: no type name"))
        })
        .collect()
}

/// The lineage node key `{namespace, name}` of the resource the content came from.
fn resource(value: &Value, field: &str) -> Result<(String, String), String> {
    if !value.is_object() {
        return Err(format!(
            "field `{field}`: expected an object {{namespace, name}}"
        ));
    }
    let part = |names: [&str; 2]| -> Result<String, String> {
        let key = names
            .into_iter()
            .find(|k| value.get(k).is_some_and(|v| !v.is_null()))
            .unwrap_or(names[0]);
        let path = format!("{field}.{key}");
        text(lookup(value, key), &path)?.ok_or_else(|| format!("missing field `{path}`"))
    };
    Ok((part(["namespace", "Namespace"])?, part(["name", "Name"])?))
}

/// A hit's identity when the event has no id: everything it says, normalised,
/// as a JSON array (no separator can be confused with a value).
fn digest(hit: &HitRecord) -> String {
    let identity = Value::from(vec![
        Value::from(hit.time_us),
        Value::from(hit.policy.as_str()),
        Value::from(hit.rule.as_deref()),
        Value::from(hit.severity.as_deref()),
        Value::from(hit.action.as_str()),
        Value::from(hit.sensitive_info_types.as_deref()),
        Value::from(hit.label.as_deref()),
        Value::from(hit.agent.as_deref()),
        Value::from(hit.app.as_deref()),
        Value::from(hit.user_id.as_deref()),
        Value::from(hit.request_id.as_deref()),
        Value::from(hit.resource_namespace.as_deref()),
        Value::from(hit.resource_name.as_deref()),
    ])
    .to_string();
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    hex::encode(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_line(line: &str) -> Result<HitRecord, String> {
        let value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        parse_value(&value).map(|r| r.hit.expect("a hit"))
    }

    /// The full line docs/dlp-events.md shows: the documented example must parse.
    fn documented_event() -> &'static str {
        include_str!("../../docs/dlp-events.md")
            .lines()
            .find(|l| l.starts_with("{\"Id\""))
            .expect("an example line in docs/dlp-events.md")
    }

    #[test]
    fn a_purview_event_maps_every_column() {
        let hit = parse_line(documented_event()).unwrap();
        assert_eq!(hit.hit_id, "7c1f4c52-5a8e-4f7e-9a44-2f0d8e5b9b11");
        assert_eq!(hit.time_us, 1_791_209_007_000_000);
        assert_eq!(
            (
                hit.source.as_str(),
                hit.policy.as_str(),
                hit.rule.as_deref()
            ),
            (
                "purview",
                "Contoso PII in AI interactions",
                Some("U.S. SSN, high volume")
            )
        );
        assert_eq!(
            (hit.severity.as_deref(), hit.action.as_str()),
            (Some("high"), "block_with_override")
        );
        assert_eq!(
            hit.sensitive_info_types.as_deref(),
            Some(r#"["U.S. Social Security Number (SSN)","All Full Names"]"#)
        );
        assert_eq!(hit.label.as_deref(), Some("Highly Confidential"));
        assert_eq!(
            (
                hit.agent.as_deref(),
                hit.app.as_deref(),
                hit.user_id.as_deref()
            ),
            (
                Some("hr-assistant"),
                Some("Azure AI Foundry"),
                Some("user-17")
            )
        );
        assert_eq!(
            hit.request_id.as_deref(),
            Some("3f2a9c10-4b1d-4e2f-8a3b-0c9d8e7f6a51")
        );
        assert_eq!(
            (
                hit.resource_namespace.as_deref(),
                hit.resource_name.as_deref()
            ),
            (Some("contoso"), Some("hr-employee-db"))
        );
    }

    #[test]
    fn without_an_id_the_same_event_under_other_names_has_the_same_digest() {
        let purview = r#"{"CreationTime":"2026-10-05T14:03:27","PolicyName":"P","RuleName":"R","Severity":"Medium","Actions":["Audit","Block"],"SensitiveInfoTypes":[{"Name":"Credit Card Number"}],"UserId":"u","Resource":{"Namespace":"contoso","Name":"finance-ledger"}}"#;
        let lower = r#"{"resource":{"name":"finance-ledger","namespace":"contoso"},"user":"u","sensitive_info_types":["Credit Card Number"],"action":"block","severity":"MEDIUM","rule":"R","policy":"P","time":"2026-10-05T14:03:27.000Z"}"#;
        let a = parse_line(purview).unwrap();
        let b = parse_line(lower).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.hit_id.len(), 32, "{}", a.hit_id);
        // Anything the event says is part of its identity.
        let other_user = lower.replace(r#""user":"u""#, r#""user":"v""#);
        assert_ne!(parse_line(&other_user).unwrap().hit_id, a.hit_id);
        let no_rule = lower.replace(r#""rule":"R","#, "");
        assert_ne!(parse_line(&no_rule).unwrap().hit_id, a.hit_id);
    }

    #[test]
    fn actions_read_as_their_strongest_and_optional_fields_may_be_absent() {
        let minimal = |action: &str| {
            format!(r#"{{"time":"2026-10-05T14:03:27Z","policy":"P","action":{action}}}"#)
        };
        for (action, want) in [
            (r#""audit""#, "audit"),
            (r#""Block with override""#, "block_with_override"),
            (r#"["audit","block_with_override"]"#, "block_with_override"),
            (r#"["block","audit"]"#, "block"),
            ("[]", "audit"),
        ] {
            let hit = parse_line(&minimal(action)).unwrap();
            assert_eq!(hit.action, want, "{action}");
            assert_eq!(
                (hit.severity, hit.sensitive_info_types, hit.resource_name),
                (None, None, None)
            );
        }
    }

    #[test]
    fn bad_events_are_refused_naming_the_field() {
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_str(documented_event()).unwrap();
            edit(&mut v);
            v.to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            (
                with(&|v| v["Action"] = "quarantine".into()),
                r#"field `Action`: "quarantine" is not audit, block_with_override, block"#,
            ),
            (
                with(&|v| v["Action"] = serde_json::json!(["audit", "warn"])),
                "field `Action[1]`: \"warn\" is not",
            ),
            (
                with(&|v| v["Severity"] = "Critical".into()),
                r#"field `Severity`: "Critical" is not low, medium, high"#,
            ),
            (
                with(&|v| v["CreationTime"] = "last Tuesday".into()),
                "field `CreationTime`: \"last Tuesday\" is not a time",
            ),
            (
                with(&|v| {
                    v.as_object_mut().unwrap().remove("PolicyName");
                }),
                "missing field `PolicyName` (or `policy`)",
            ),
            (
                with(&|v| {
                    v.as_object_mut().unwrap().remove("Action");
                }),
                "missing field `Action` (or `Actions`)",
            ),
            (
                with(&|v| {
                    v.as_object_mut().unwrap().remove("CreationTime");
                }),
                "missing field `CreationTime` (or `time`)",
            ),
            (
                with(&|v| v["SensitiveInfoTypes"] = "SSN".into()),
                "field `SensitiveInfoTypes`: expected a list",
            ),
            (
                with(&|v| v["SensitiveInfoTypes"] = serde_json::json!(["SSN", {"count": 2}])),
                "field `SensitiveInfoTypes[1]`: no type name",
            ),
            (
                with(&|v| v["Resource"] = serde_json::json!({"namespace": "contoso"})),
                "missing field `Resource.name`",
            ),
            (
                with(&|v| v["Resource"] = "hr-employee-db".into()),
                "field `Resource`: expected an object {namespace, name}",
            ),
            (
                with(&|v| v["UserId"] = serde_json::json!({"upn": "a@contoso.com"})),
                "field `UserId`: expected a string",
            ),
            ("[1]".to_owned(), "not a DLP event"),
        ];
        for (line, want) in cases {
            let err = parse_line(&line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    /// The field a reason names: the first backticked name, without the
    /// element index or nested key (`Resource.name`, `Action[1]`).
    fn named_field(reason: &str) -> Option<&str> {
        let name = reason.split('`').nth(1)?;
        name.split(['.', '[']).next()
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop::sample::select(vec![
                "audit",
                "Block",
                "block with override",
                "High",
                "low",
                "",
                "2026-10-05T14:03:27Z",
                "2026-10-05 14:03:27",
                "contoso",
            ])
            .prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec!["name", "Name", "namespace", "Namespace", "x"]),
                    inner,
                    0..4,
                )
                .prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    /// A well-formed value for a field, so that generated events often parse.
    fn good(names: &[&str]) -> Value {
        match names[0] {
            "CreationTime" => "2026-10-05T14:03:27Z".into(),
            "Action" => serde_json::json!(["audit", "Block"]),
            "Severity" => "High".into(),
            "SensitiveInfoTypes" => serde_json::json!(["SSN", {"name": "IBAN"}]),
            "Resource" => serde_json::json!({"namespace": "contoso", "name": "finance-ledger"}),
            _ => "x".into(),
        }
    }

    /// Each field absent, well-formed or anything, under any of its names.
    fn event() -> impl Strategy<Value = Value> {
        let fields: Vec<_> = FIELDS
            .iter()
            .map(|names| {
                (
                    prop::sample::select(names.to_vec()),
                    prop_oneof![
                        2 => Just(None),
                        5 => Just(Some(good(names))),
                        3 => json_value().prop_map(Some),
                    ],
                )
            })
            .collect();
        fields.prop_map(|fields| {
            Value::Object(
                fields
                    .into_iter()
                    .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
                    .collect(),
            )
        })
    }

    proptest! {
        #[test]
        fn any_event_parses_or_names_a_field(event in event()) {
            match parse_value(&event) {
                Ok(record) => {
                    let hit = record.hit.expect("a hit");
                    prop_assert!(ACTIONS.contains(&hit.action.as_str()));
                    prop_assert!(hit.severity.as_deref().is_none_or(|s| SEVERITIES.contains(&s)));
                    if let Some(types) = &hit.sensitive_info_types {
                        let parsed: Vec<String> = serde_json::from_str(types).expect("a JSON list");
                        prop_assert!(parsed.iter().all(|t| !t.is_empty()));
                    }
                    prop_assert!(!hit.hit_id.is_empty() && !hit.policy.is_empty());
                }
                Err(reason) => {
                    let named = named_field(&reason);
                    prop_assert!(
                        named.is_some_and(|n| FIELDS.iter().any(|f| f.contains(&n))),
                        "{reason}"
                    );
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let mut out = Vec::new();
            crate::Format::PurviewDlp.parse_line(&bytes, &crate::Dimensions::default(), &mut out);
        }
    }
}

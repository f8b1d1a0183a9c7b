//! The APIM policy fragment a gateway can paste (or fetch): per counter key an
//! `llm-token-limit` with the budget's limits, a 403 for blocked keys, and the
//! model rewritten for downgraded ones. The quota in `llm-token-limit` counts per
//! gateway instance; Tollgate's reconciled total is what blocks.
//!
//! APIM evaluates any attribute or element value that starts with `@(` or `@{`
//! as C#. Nothing a user wrote (budget names, scope ids, models, the gateway's
//! name) reaches the fragment but through [`policy_text`] (characters outside
//! `[A-Za-z0-9._:-]` percent-encoded) or [`cs`] (a C# literal whose every other
//! character is a `\uXXXX` escape): neither can hold `@`, `{`, `(`, a quote or
//! a line break, so the only expressions in a fragment are the ones written here.

use tollgate_reports::budget_eval::{GatewayAction, GatewayBudget};
use tollgate_store::BudgetScope;

use crate::xml::escape as xml;

/// Whether a character may appear as itself in policy text.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
}

/// Text for a policy value (a header value, a counter key, a comment):
/// allow-listed characters as they are, every other byte as `%XX`, so two
/// different names never encode alike and none can start an expression.
pub(crate) fn policy_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if allowed(c) {
            out.push(c);
        } else {
            let mut bytes = [0u8; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// [`policy_text`] for inside an XML comment, which may not hold `--`.
fn comment_text(text: &str) -> String {
    policy_text(text).replace("--", "-%2D")
}

/// A C# string literal for a policy expression: allow-listed characters and
/// spaces as they are, every other UTF-16 unit as a `\uXXXX` escape.
fn cs(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if allowed(c) || c == ' ' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04X}"));
            }
        }
    }
    out.push('"');
    out
}

/// The policy expression that is true for the requests a budget counts.
fn condition(entry: &GatewayBudget) -> String {
    let subscription = "context.Subscription != null ? context.Subscription.Id : \"\"";
    match entry.scope {
        BudgetScope::Subscription => format!("({subscription}) == {}", cs(&entry.scope_id)),
        BudgetScope::Product => format!(
            "(context.Product != null ? context.Product.Id : \"\") == {}",
            cs(&entry.scope_id)
        ),
        BudgetScope::Agent => format!(
            "context.Request.Headers.GetValueOrDefault(\"x-agent-id\", \"\") == {}",
            cs(&entry.scope_id)
        ),
        // A cost centre is matched by the subscriptions it pays for.
        BudgetScope::CostCentre if entry.subscriptions.is_empty() => "false".to_owned(),
        BudgetScope::CostCentre => format!(
            "new [] {{ {} }}.Contains({subscription})",
            entry
                .subscriptions
                .iter()
                .map(|s| cs(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn policy_fragment(gateway: &str, version: i64, entries: &[GatewayBudget]) -> String {
    let mut out = String::new();
    out.push_str("<fragment>\n");
    out.push_str(&format!(
        "    <!-- Tollgate budgets for gateway {}, version {version}: {} counter keys. -->\n",
        comment_text(gateway),
        entries.len()
    ));
    if entries.is_empty() {
        out.push_str("</fragment>\n");
        return out;
    }
    // One `choose` per counter key: a request can fall under several budgets
    // (its subscription's, its product's), and each must apply.
    for entry in entries {
        let body = limits(entry);
        if body.is_empty() {
            out.push_str(&format!(
                "    <!-- {}: nothing for the gateway to count (a cost quota); Tollgate blocks or downgrades on exhaustion. -->\n",
                comment_text(&entry.counter_key)
            ));
            continue;
        }
        out.push_str(&format!(
            "    <choose>\n        <when condition=\"@({})\">\n{body}        </when>\n    </choose>\n",
            xml(&condition(entry))
        ));
    }
    out.push_str("</fragment>\n");
    out
}

/// The policy elements one counter key needs, indented for its `when`.
fn limits(entry: &GatewayBudget) -> String {
    let mut out = String::new();
    match &entry.action {
        GatewayAction::Block => {
            out.push_str(&format!(
                "            <return-response>\n                <set-status code=\"403\" reason=\"Budget exhausted\" />\n                <set-header name=\"x-tollgate-budget\" exists-action=\"override\"><value>{}</value></set-header>\n                <set-body>{}</set-body>\n            </return-response>\n",
                policy_text(&entry.budget),
                xml(&format!(
                    "{{\"error\":{{\"code\":\"BudgetExhausted\",\"message\":\"budget {} is exhausted until {}\"}}}}",
                    policy_text(&entry.budget),
                    entry.period_end
                ))
            ));
        }
        GatewayAction::Downgrade { model } => {
            out.push_str(&format!(
                "            <set-body>@{{ var body = context.Request.Body.As&lt;JObject&gt;(preserveContent: true); body[\"model\"] = {}; return body.ToString(); }}</set-body>\n",
                xml(&cs(model))
            ));
        }
        GatewayAction::Throttle { .. } | GatewayAction::None => {}
    }
    if !matches!(entry.action, GatewayAction::Block) {
        let mut limit = format!(
            "            <llm-token-limit counter-key=\"{}\" estimate-prompt-tokens=\"true\"",
            policy_text(&entry.counter_key)
        );
        if let Some(tpm) = entry.tokens_per_minute {
            limit.push_str(&format!(" tokens-per-minute=\"{tpm}\""));
        }
        if let Some(quota) = entry.token_quota {
            limit.push_str(&format!(
                " token-quota=\"{quota}\" token-quota-period=\"{}\"",
                policy_text(&entry.token_quota_period)
            ));
        }
        limit.push_str(" remaining-quota-tokens-header-name=\"x-tollgate-remaining-quota-tokens\" remaining-tokens-header-name=\"x-tollgate-remaining-tokens\" />\n");
        if entry.tokens_per_minute.is_some() || entry.token_quota.is_some() {
            out.push_str(&limit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_store::BudgetState;

    /// Payloads in the forms APIM evaluates, and ways out of a literal or a
    /// comment.
    const HOSTILE: [&str; 8] = [
        r#"@(context.Request.Headers.GetValueOrDefault("Authorization",""))"#,
        "@{ return context.Variables[\"x\"]; }",
        "@((string)context.Variables[\"secret\"])",
        "\" + context.Request.IpAddress + \"",
        "x\\\" || true || \"",
        "--> <set-header name=\"x\"><value>@(1)</value></set-header> <!--",
        "line\nbreak\r\u{0}\u{1F600}",
        "]]></value></set-header>",
    ];

    fn entry(text: &str, action: GatewayAction) -> GatewayBudget {
        GatewayBudget {
            counter_key: format!("subscription:{text}"),
            budget_id: 1,
            budget: text.to_owned(),
            scope: BudgetScope::Subscription,
            scope_id: text.to_owned(),
            subscriptions: vec![text.to_owned()],
            tokens_per_minute: Some(1000),
            shed_by: Vec::new(),
            token_quota: Some(5000),
            token_quota_period: "Monthly".to_owned(),
            tokens_used: 0,
            tokens_remaining: None,
            cost_quota: None,
            cost_used: "0".to_owned(),
            cost_remaining: None,
            currency: None,
            state: BudgetState::Exhausted,
            action,
            period_start: "2026-10-01T00:00:00+00:00".to_owned(),
            period_end: "2026-11-01T00:00:00+00:00".to_owned(),
        }
    }

    /// Every value of the fragment that APIM would evaluate, and every other value.
    fn values(xml: &str) -> (Vec<String>, Vec<String>) {
        let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let mut all = Vec::new();
        for node in doc.descendants() {
            all.extend(node.attributes().map(|a| a.value().to_owned()));
            if node.is_text() || node.is_comment() {
                all.push(node.text().unwrap_or_default().trim().to_owned());
            }
        }
        all.into_iter().partition(|v| v.starts_with('@'))
    }

    fn fragment(text: &str, action: &GatewayAction) -> String {
        let action = match action {
            GatewayAction::Downgrade { .. } => GatewayAction::Downgrade {
                model: text.to_owned(),
            },
            other => other.clone(),
        };
        let mut cost_centre = entry(text, action.clone());
        cost_centre.scope = BudgetScope::CostCentre;
        policy_fragment(text, 3, &[entry(text, action), cost_centre])
    }

    #[test]
    fn nothing_a_user_writes_becomes_a_policy_expression() {
        let actions = [
            GatewayAction::Block,
            GatewayAction::None,
            GatewayAction::Throttle {
                tokens_per_minute: 10,
            },
            GatewayAction::Downgrade {
                model: String::new(),
            },
        ];
        let quotes = |values: &[String]| -> Vec<usize> {
            values.iter().map(|v| v.matches('"').count()).collect()
        };
        for action in &actions {
            let (harmless, _) = values(&fragment("x", action));
            for text in HOSTILE {
                let xml = fragment(text, action);
                let (expressions, plain) = values(&xml);
                for value in &plain {
                    assert!(!value.contains('@'), "{text:?} reached {value:?}\n{xml}");
                }
                // Only ours, with the user's text inside literals it cannot
                // leave: as many quotes as with a harmless name.
                assert_eq!(quotes(&expressions), quotes(&harmless), "{text:?}\n{xml}");
                for e in &expressions {
                    assert!(
                        e.starts_with("@((context.Subscription")
                            || e.starts_with("@(new [] {")
                            || e.starts_with("@{ var body"),
                        "{e}"
                    );
                    assert!(!e[1..].contains('@') && !e.contains('\n'), "{e}");
                }
            }
        }
    }

    #[test]
    fn encodings_keep_ids_readable_and_distinct() {
        assert_eq!(
            policy_text("subscription:sub-a_1.x"),
            "subscription:sub-a_1.x"
        );
        assert_eq!(policy_text("a b@"), "a%20b%40");
        assert_ne!(policy_text("a b"), policy_text("a_b"));
        assert_eq!(cs("gpt-4o mini"), "\"gpt-4o mini\"");
        assert_eq!(cs("a\"b\\"), "\"a\\u0022b\\u005C\"");
        assert_eq!(cs("\u{1F600}"), "\"\\uD83D\\uDE00\"");
    }
}

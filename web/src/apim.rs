//! The APIM policy fragment a gateway can paste (or fetch): per counter key an
//! `llm-token-limit` with the budget's limits, a 403 for blocked keys, and the
//! model rewritten for downgraded ones. The quota in `llm-token-limit` counts per
//! gateway instance; Tollgate's reconciled total is what blocks.

use tollgate_reports::budget_eval::{GatewayAction, GatewayBudget};

use crate::xml::escape as xml;

/// A C# string literal for a policy expression.
fn cs(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The policy expression that is true for the requests a budget counts.
fn condition(entry: &GatewayBudget) -> String {
    let subscription = "context.Subscription != null ? context.Subscription.Id : \"\"";
    match entry.scope.as_str() {
        "subscription" => format!("({subscription}) == {}", cs(&entry.scope_id)),
        "product" => format!(
            "(context.Product != null ? context.Product.Id : \"\") == {}",
            cs(&entry.scope_id)
        ),
        "agent" => format!(
            "context.Request.Headers.GetValueOrDefault(\"x-agent-id\", \"\") == {}",
            cs(&entry.scope_id)
        ),
        // A cost centre is matched by the subscriptions it pays for.
        _ if entry.subscriptions.is_empty() => "false".to_owned(),
        _ => format!(
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
        xml(gateway).replace("--", "- -"),
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
                xml(&entry.counter_key).replace("--", "- -")
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
                xml(&entry.budget),
                xml(&format!(
                    "{{\"error\":{{\"code\":\"BudgetExhausted\",\"message\":\"budget {} is exhausted until {}\"}}}}",
                    entry.budget.replace('"', "'"),
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
            xml(&entry.counter_key)
        );
        if let Some(tpm) = entry.tokens_per_minute {
            limit.push_str(&format!(" tokens-per-minute=\"{tpm}\""));
        }
        if let Some(quota) = entry.token_quota {
            limit.push_str(&format!(
                " token-quota=\"{quota}\" token-quota-period=\"{}\"",
                xml(&entry.token_quota_period)
            ));
        }
        limit.push_str(" remaining-quota-tokens-header-name=\"x-tollgate-remaining-quota-tokens\" remaining-tokens-header-name=\"x-tollgate-remaining-tokens\" />\n");
        if entry.tokens_per_minute.is_some() || entry.token_quota.is_some() {
            out.push_str(&limit);
        }
    }
    out
}

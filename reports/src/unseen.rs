//! Traffic no gateway saw (`docs/otel.md`): model calls that traces show going
//! to an address that is no gateway's, priced with the price book as an
//! estimate. Its own line for FinOps, beside the chargeback and never in its
//! total: the chargeback counts what gateways logged, and these calls passed
//! none, so neither can count the other's.
//!
//! A call is priced at the pay-as-you-go row in force on its day for its model,
//! `GlobalStandard` then `Standard`, in any region (a call straight to a
//! provider names no Azure region or deployment type); a model with no such
//! row leaves its tokens unpriced, said so.

use serde::Serialize;
use tollgate_store::Store;
use tollgate_store::genai::DayCalls;

use crate::Result;
use crate::cost::{PriceBook, Tokens, token_cost_pico};
use crate::month::Month;

/// The deployment types a call outside the gateways is priced as, in order.
const PRICED_AS: [&str; 2] = ["GlobalStandard", "Standard"];

/// One group of unseen calls: where they went, who made them, what they cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnseenLine {
    pub server_address: String,
    pub agent: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub service_name: Option<String>,
    pub calls: i64,
    pub input_tokens: i64,
    pub cached_tokens: i64,
    pub output_tokens: i64,
    /// Estimated cost in pico-units of the currency.
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub estimated_pico: i128,
    /// Tokens no price row covered (their cost is not in `estimated_pico`).
    pub unpriced_tokens: i64,
}

/// The month's traffic no gateway saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnseenTraffic {
    pub month: String,
    pub lines: Vec<UnseenLine>,
    #[serde(with = "crate::rate::serde_amount")]
    #[schema(value_type = String)]
    pub estimated_pico: i128,
    pub unpriced_tokens: i64,
    /// The price book's currency, when it has one.
    pub currency: Option<String>,
}

/// The month's unseen traffic: calls to addresses `is_gateway` refuses.
pub async fn unseen_traffic(
    store: &Store,
    month: Month,
    is_gateway: &(dyn Fn(&str) -> bool + Sync),
) -> Result<UnseenTraffic> {
    let (from, to) = (
        crate::fine::micros(month.first_day()),
        crate::fine::micros(month.next()?.first_day()),
    );
    let calls = store.model_calls_by_day(from, to).await?;
    let book = PriceBook::new(store.db.price_book().await?);
    Ok(price_unseen(month, &calls, &book, is_gateway))
}

/// Groups and prices the calls that went around the gateways, most costly first.
pub fn price_unseen(
    month: Month,
    calls: &[DayCalls],
    book: &PriceBook,
    is_gateway: &dyn Fn(&str) -> bool,
) -> UnseenTraffic {
    type Key = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let mut groups: std::collections::BTreeMap<Key, UnseenLine> = Default::default();
    for day in calls.iter().filter(|c| !is_gateway(&c.server_address)) {
        let key = (
            day.server_address.clone(),
            day.agent.clone(),
            day.model.clone(),
            day.provider.clone(),
            day.service_name.clone(),
        );
        let line = groups.entry(key).or_insert_with(|| UnseenLine {
            server_address: day.server_address.clone(),
            agent: day.agent.clone(),
            model: day.model.clone(),
            provider: day.provider.clone(),
            service_name: day.service_name.clone(),
            ..Default::default()
        });
        line.calls = line.calls.saturating_add(day.calls);
        line.input_tokens = line.input_tokens.saturating_add(day.input_tokens);
        line.cached_tokens = line.cached_tokens.saturating_add(day.cached_tokens);
        line.output_tokens = line.output_tokens.saturating_add(day.output_tokens);
        let tokens = Tokens {
            prompt: day.input_tokens,
            cached: day.cached_tokens.min(day.input_tokens),
            completion: day.output_tokens,
        };
        let price = day.model.as_deref().and_then(|model| {
            PRICED_AS
                .iter()
                .find_map(|kind| book.in_force(model, kind, "any", &day.day))
        });
        match price {
            Some(price) => line.estimated_pico += token_cost_pico(&tokens, price),
            None => line.unpriced_tokens = line.unpriced_tokens.saturating_add(tokens.billable()),
        }
    }
    let mut lines: Vec<UnseenLine> = groups.into_values().collect();
    lines.sort_by(|a, b| {
        b.estimated_pico
            .cmp(&a.estimated_pico)
            .then_with(|| b.calls.cmp(&a.calls))
    });
    UnseenTraffic {
        month: month.to_string(),
        estimated_pico: lines.iter().map(|l| l.estimated_pico).sum(),
        unpriced_tokens: lines.iter().map(|l| l.unpriced_tokens).sum(),
        currency: book.currencies().next().map(str::to_owned),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use tollgate_store::state::PriceRow;

    use super::*;

    fn price(model: &str, kind: &str, from: &str, input: i64) -> PriceRow {
        PriceRow {
            model: model.into(),
            deployment_type: kind.into(),
            region: "any".into(),
            currency: "USD".into(),
            unit_tokens: 1_000_000,
            input_rate_pico: input,
            cached_input_rate_pico: input / 2,
            output_rate_pico: input * 4,
            effective_from: from.into(),
            effective_to: None,
            source: "prices.csv:2".into(),
        }
    }

    fn day(
        day: &str,
        address: &str,
        model: &str,
        input: i64,
        cached: i64,
        output: i64,
    ) -> DayCalls {
        DayCalls {
            day: day.into(),
            server_address: address.into(),
            agent: Some("claims-triage".into()),
            model: Some(model.into()),
            provider: None,
            service_name: Some("claims-bot".into()),
            calls: 1,
            input_tokens: input,
            cached_tokens: cached,
            output_tokens: output,
        }
    }

    #[test]
    fn calls_around_the_gateways_are_priced_and_gateway_calls_left_out() {
        // 2.50 per 1M input (1.25 cached), 10.00 per 1M output.
        let book = PriceBook::new(vec![
            price("gpt-4o", "GlobalStandard", "2026-01-01", 2_500_000_000_000),
            price("gpt-4o-mini", "Standard", "2026-01-01", 150_000_000_000),
        ]);
        let month: Month = "2026-10".parse().unwrap();
        let calls = [
            day(
                "2026-10-05",
                "api.openai.com",
                "gpt-4o",
                1_000_000,
                200_000,
                100_000,
            ),
            day("2026-10-06", "api.openai.com", "gpt-4o", 1_000_000, 0, 0),
            day(
                "2026-10-05",
                "apim-contoso.azure-api.net",
                "gpt-4o",
                9_000_000,
                0,
                0,
            ),
            day(
                "2026-10-05",
                "api.openai.com",
                "gpt-4o-mini",
                1_000_000,
                0,
                0,
            ),
            day(
                "2026-10-05",
                "api.mistral.ai",
                "mistral-large",
                1_000,
                0,
                500,
            ),
        ];
        let unseen = price_unseen(month, &calls, &book, &|a| a == "apim-contoso.azure-api.net");
        let shape: Vec<_> = unseen
            .lines
            .iter()
            .map(|l| {
                (
                    l.server_address.as_str(),
                    l.model.as_deref(),
                    l.calls,
                    l.estimated_pico,
                    l.unpriced_tokens,
                )
            })
            .collect();
        // gpt-4o: 0.8M x 2.50 + 0.2M x 1.25 + 0.1M x 10 = 3.25 on the 5th, 2.50 on the 6th.
        assert_eq!(
            shape,
            [
                ("api.openai.com", Some("gpt-4o"), 2, 5_750_000_000_000, 0),
                ("api.openai.com", Some("gpt-4o-mini"), 1, 150_000_000_000, 0),
                ("api.mistral.ai", Some("mistral-large"), 1, 0, 1_500),
            ]
        );
        assert_eq!(unseen.estimated_pico, 5_900_000_000_000);
        assert_eq!(unseen.unpriced_tokens, 1_500);
        assert_eq!(unseen.currency.as_deref(), Some("USD"));
    }
}

//! The provider's cost lines (`billed_costs`, `docs/reconciliation.md`): Azure
//! Cost Management's FOCUS cost-and-usage export (FOCUS 1.0 and 1.2 columns
//! with Azure's `x_` extensions) and the classic actual or amortised
//! cost-details export, each as CSV (plain or gzip) or Parquet. Every row
//! reaches [`parse_value`] as a JSON object of its cells; which export it is
//! comes from its columns, matched without regard to case (the cost-details
//! API writes `costInBillingCurrency` where the portal writes
//! `CostInBillingCurrency`). Amounts are exact (pico-units); nothing is
//! mapped to models or backends here: the raw line is the record, and
//! reconciliation reads it through the meter and resource maps.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Decimal128Builder, Int64Array, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use serde_json::Value;
use tollgate_store::rate::parse_pico_rounded;
use tollgate_store::schema::{BILLED_COSTS_SCHEMA, amount_type};

use crate::record::{MICROS_PER_DAY, Record};

/// Which export a line came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CostExport {
    #[default]
    Focus,
    CostDetails,
}

impl CostExport {
    pub fn as_str(self) -> &'static str {
        match self {
            CostExport::Focus => "focus",
            CostExport::CostDetails => "cost-details",
        }
    }

    /// The column a line's charge time is read from, as errors name it.
    pub fn time_column(self) -> &'static str {
        match self {
            CostExport::Focus => "ChargePeriodStart",
            CostExport::CostDetails => "Date",
        }
    }
}

/// One cost line as `billed_costs` stores it; amounts in pico-units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostRecord {
    pub time_us: i64,
    pub period_end_us: Option<i64>,
    pub line_uid: String,
    pub line_key: String,
    pub export: CostExport,
    pub currency: String,
    /// In schema order, `charge_category` to `commitment_discount_id`.
    pub text: [Option<String>; 12],
    pub quantity: Option<i128>,
    pub unit: Option<String>,
    pub pricing_quantity: Option<i128>,
    pub pricing_unit: Option<String>,
    pub list_unit_price: Option<i128>,
    pub billed_cost: i128,
    pub effective_cost: Option<i128>,
    pub list_cost: Option<i128>,
    pub tags: Option<String>,
}

impl CostRecord {
    pub fn day(&self) -> i64 {
        self.time_us.div_euclid(MICROS_PER_DAY)
    }

    /// The text fields with the names bounds checks report them by.
    pub fn named_text(&self) -> impl Iterator<Item = (&Option<String>, &str)> + '_ {
        self.text.iter().zip(TEXT_FIELDS.map(|(name, _, _)| name))
    }
}

/// The text columns: the schema's name, then the FOCUS and the cost-details
/// columns each is read from (first present wins).
const TEXT_FIELDS: [(&str, &[&str], &[&str]); 12] = [
    ("charge_category", &["ChargeCategory"], &["ChargeType"]),
    (
        "resource_id",
        &["ResourceId"],
        &["ResourceId", "InstanceId"],
    ),
    ("resource_name", &["ResourceName"], &["ResourceName"]),
    ("region", &["RegionId", "RegionName"], &["ResourceLocation"]),
    ("sub_account", &["SubAccountId"], &["SubscriptionId"]),
    ("service_name", &["ServiceName"], &["ConsumedService"]),
    ("meter", &["x_SkuMeterName"], &["MeterName"]),
    (
        "meter_category",
        &["x_SkuMeterCategory"],
        &["MeterCategory"],
    ),
    (
        "meter_subcategory",
        &["x_SkuMeterSubcategory"],
        &["MeterSubCategory"],
    ),
    ("sku_id", &["SkuId"], &["MeterId", "ProductId"]),
    ("sku_price_id", &["SkuPriceId"], &[]),
    (
        "commitment_discount_id",
        &["CommitmentDiscountId"],
        &["BenefitId", "ReservationId"],
    ),
];

/// Whether a (lower-cased) column carries an amount rather than naming the
/// charge: costs, prices, quantities and exchange rates, in every spelling
/// Azure writes them (`BilledCost`, `x_BilledCostInUsd`, `PaygCostInBillingCurrency`,
/// `UnitPrice`, `x_BillingExchangeRate`, ...). Everything else identifies it.
fn is_amount(column: &str) -> bool {
    // Ids and dates name the charge whatever else their names say
    // (`SkuPriceId`, `x_ExchangeRateDate`).
    if column.ends_with("id") || column.contains("date") {
        return false;
    }
    let cost = column.contains("cost")
        && !["center", "centre", "allocation", "category", "type"]
            .iter()
            .any(|not| column.contains(not));
    cost || column.contains("price")
        || column.ends_with("quantity")
        || column.contains("exchangerate")
}

/// Columns that hold a time, lower-cased.
const TIME_COLUMNS: [&str; 8] = [
    "chargeperiodstart",
    "chargeperiodend",
    "billingperiodstart",
    "billingperiodend",
    "date",
    "usagedatetime",
    "billingperiodstartdate",
    "billingperiodenddate",
];

/// The cells of one row by lower-cased column name; empty cells are absent.
struct Cells(BTreeMap<String, String>);

impl Cells {
    fn of(value: &Value) -> Result<Cells, String> {
        let Value::Object(map) = value else {
            return Err("a cost line must be a row of named columns".to_owned());
        };
        let mut cells = BTreeMap::new();
        for (name, cell) in map {
            let text = match cell {
                Value::String(s) => s.trim().to_owned(),
                // JSON lines and Parquet numbers: their decimal text.
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => continue,
                // Tags as an object, as some JSON exports write them.
                Value::Object(_) => cell.to_string(),
                Value::Array(_) => {
                    return Err(format!("field `{name}`: expected a value, got a list"));
                }
            };
            if !text.is_empty() {
                cells.insert(name.to_ascii_lowercase(), text);
            }
        }
        Ok(Cells(cells))
    }

    /// The first of `names` present, with the name it was found under.
    fn first(&self, names: &[&'static str]) -> Option<(&'static str, &str)> {
        names.iter().find_map(|name| {
            let cell = self.0.get(&name.to_ascii_lowercase())?;
            Some((*name, cell.as_str()))
        })
    }

    fn text(&self, names: &[&'static str]) -> Option<String> {
        self.first(names).map(|(_, text)| text.to_owned())
    }

    fn amount(&self, names: &[&'static str]) -> Result<Option<i128>, String> {
        match self.first(names) {
            None => Ok(None),
            Some((name, text)) => parse_pico_rounded(text)
                .map(Some)
                .map_err(|e| format!("field `{name}`: {e}")),
        }
    }

    fn required_amount(&self, names: &[&'static str]) -> Result<i128, String> {
        self.amount(names)?
            .ok_or_else(|| format!("missing field `{}`", names[0]))
    }

    fn time(&self, names: &[&'static str]) -> Result<Option<i64>, String> {
        match self.first(names) {
            None => Ok(None),
            Some((name, text)) => parse_time(text)
                .map(Some)
                .ok_or_else(|| format!("field `{name}`: {text:?} is not a date or time")),
        }
    }

    /// Hex of the first 128 bits of SHA-256 over the cells, sorted by name;
    /// `all` or only those that identify the charge (no amounts). Amounts and
    /// times are hashed as the values they are, so the same bill as CSV and
    /// as Parquet (`1400000` or `1400000.0`, a time as text or a timestamp)
    /// is the same lines.
    fn hash(&self, all: bool) -> String {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for (name, cell) in &self.0 {
            let amount = is_amount(name);
            // An invoice id is filled in once the month is invoiced: the
            // month-to-date line and the invoiced one are the same charge.
            if !all && (amount || name.contains("invoiceid")) {
                continue;
            }
            let value = match amount {
                true => parse_pico_rounded(cell).ok().map(|v| v.to_string()),
                false if TIME_COLUMNS.contains(&name.as_str()) => {
                    parse_time(cell).map(|t| t.to_string())
                }
                false => None,
            };
            digest.update(name.as_bytes());
            digest.update(b"\x1f");
            digest.update(value.as_deref().unwrap_or(cell).as_bytes());
            digest.update(b"\x1e");
        }
        hex::encode(&digest.finish().as_ref()[..16])
    }
}

/// RFC 3339, the offset-less forms exports write in UTC, a date alone, or the
/// cost-details `MM/DD/YYYY`.
fn parse_time(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    const TIMES: [&str; 3] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%m/%d/%Y %H:%M:%S",
    ];
    if let Some(t) = TIMES
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    {
        return Some(t.and_utc().timestamp_micros());
    }
    ["%Y-%m-%d", "%m/%d/%Y"]
        .iter()
        .find_map(|f| chrono::NaiveDate::parse_from_str(text, f).ok())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// Which export a row's columns say it is.
fn export_of(cells: &Cells) -> Result<CostExport, String> {
    let has = |name: &str| cells.0.contains_key(name);
    if has("billedcost") || has("chargeperiodstart") {
        Ok(CostExport::Focus)
    } else if has("costinbillingcurrency") || has("metername") {
        Ok(CostExport::CostDetails)
    } else {
        Err(
            "neither a FOCUS line (BilledCost, ChargePeriodStart) nor a cost-details \
             line (CostInBillingCurrency, MeterName)"
                .to_owned(),
        )
    }
}

/// Reads one cost line (a CSV row or a Parquet row as text cells).
pub fn parse_value(value: &Value) -> Result<Record, String> {
    let cells = Cells::of(value)?;
    let export = export_of(&cells)?;
    let cost = match export {
        CostExport::Focus => focus_line(&cells)?,
        CostExport::CostDetails => cost_details_line(&cells)?,
    };
    Ok(Record {
        cost: Some(cost),
        ..Record::default()
    })
}

fn currency(cells: &Cells, names: &[&'static str]) -> Result<String, String> {
    let (name, text) = cells
        .first(names)
        .ok_or_else(|| format!("missing field `{}`", names[0]))?;
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(format!("field `{name}`: {text:?} is not a currency code"))
    }
}

fn texts(cells: &Cells, export: CostExport) -> [Option<String>; 12] {
    TEXT_FIELDS.map(|(_, focus, details)| match export {
        CostExport::Focus => cells.text(focus),
        CostExport::CostDetails => cells.text(details),
    })
}

fn focus_line(cells: &Cells) -> Result<CostRecord, String> {
    Ok(CostRecord {
        time_us: cells
            .time(&["ChargePeriodStart"])?
            .ok_or("missing field `ChargePeriodStart`")?,
        period_end_us: cells.time(&["ChargePeriodEnd"])?,
        line_uid: cells.hash(true),
        line_key: cells.hash(false),
        export: CostExport::Focus,
        currency: currency(cells, &["BillingCurrency"])?,
        text: texts(cells, CostExport::Focus),
        quantity: cells.amount(&["ConsumedQuantity"])?,
        unit: cells.text(&["ConsumedUnit"]),
        pricing_quantity: cells.amount(&["PricingQuantity"])?,
        pricing_unit: cells.text(&["PricingUnit"]),
        list_unit_price: cells.amount(&["ListUnitPrice"])?,
        billed_cost: cells.required_amount(&["BilledCost"])?,
        effective_cost: cells.amount(&["EffectiveCost"])?,
        list_cost: cells.amount(&["ListCost"])?,
        tags: cells.text(&["Tags"]),
    })
}

/// The classic export: cost in the billing currency is what was billed (and,
/// in the amortised export, what it effectively cost); the list cost is the
/// quantity at the pay-as-you-go price when the export has one.
fn cost_details_line(cells: &Cells) -> Result<CostRecord, String> {
    let billed = cells.required_amount(&["CostInBillingCurrency", "Cost", "PreTaxCost"])?;
    let quantity = cells.amount(&["Quantity"])?;
    let payg = cells.amount(&["PayGPrice"])?;
    let list_cost = match (quantity, payg) {
        (Some(q), Some(p)) => Some(
            q.checked_mul(p)
                .map(|v| v / i128::from(tollgate_store::rate::PICO))
                .ok_or("field `Quantity`: quantity times PayGPrice is out of range")?,
        ),
        _ => None,
    };
    let tags = cells.text(&["Tags"]).map(|t| match t.starts_with('{') {
        true => t,
        // The classic export writes the members without their braces.
        false => format!("{{{t}}}"),
    });
    Ok(CostRecord {
        time_us: cells
            .time(&["Date", "UsageDateTime"])?
            .ok_or("missing field `Date`")?,
        period_end_us: None,
        line_uid: cells.hash(true),
        line_key: cells.hash(false),
        export: CostExport::CostDetails,
        currency: currency(
            cells,
            &["BillingCurrencyCode", "BillingCurrency", "Currency"],
        )?,
        text: texts(cells, CostExport::CostDetails),
        quantity,
        unit: cells.text(&["UnitOfMeasure"]),
        pricing_quantity: None,
        pricing_unit: None,
        list_unit_price: payg,
        billed_cost: billed,
        effective_cost: Some(billed),
        list_cost,
        tags,
    })
}

#[derive(Debug)]
pub(crate) struct CostColumns {
    times: [TimestampMicrosecondBuilder; 2],
    ids: [StringBuilder; 4],
    text: [StringBuilder; 12],
    quantities: [Decimal128Builder; 2],
    units: [StringBuilder; 2],
    money: [Decimal128Builder; 4],
    tags: StringBuilder,
}

impl Default for CostColumns {
    fn default() -> Self {
        let time = || TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let amount = || Decimal128Builder::new().with_data_type(amount_type());
        CostColumns {
            times: [time(), time()],
            ids: Default::default(),
            text: Default::default(),
            quantities: [amount(), amount()],
            units: Default::default(),
            money: [amount(), amount(), amount(), amount()],
            tags: StringBuilder::new(),
        }
    }
}

impl CostColumns {
    pub(crate) fn push(&mut self, c: &CostRecord) {
        self.times[0].append_value(c.time_us);
        self.times[1].append_option(c.period_end_us);
        let ids = [&c.line_uid, &c.line_key, c.export.as_str(), &c.currency];
        for (builder, value) in self.ids.iter_mut().zip(ids) {
            builder.append_value(value);
        }
        for (builder, value) in self.text.iter_mut().zip(&c.text) {
            builder.append_option(value.as_deref());
        }
        let [quantity, pricing_quantity] = &mut self.quantities;
        let [unit, pricing_unit] = &mut self.units;
        quantity.append_option(c.quantity);
        unit.append_option(c.unit.as_deref());
        pricing_quantity.append_option(c.pricing_quantity);
        pricing_unit.append_option(c.pricing_unit.as_deref());
        let money = [
            c.list_unit_price,
            Some(c.billed_cost),
            c.effective_cost,
            c.list_cost,
        ];
        for (builder, value) in self.money.iter_mut().zip(money) {
            builder.append_option(value);
        }
        self.tags.append_option(c.tags.as_deref());
    }

    pub(crate) fn finish(&mut self, batch_id: i64) -> arrow::error::Result<RecordBatch> {
        let len = self.ids[0].len();
        let [start, end] = &mut self.times;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(start.finish()), Arc::new(end.finish())];
        columns.extend(
            self.ids
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend(
            self.text
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        let [quantity, pricing_quantity] = &mut self.quantities;
        let [unit, pricing_unit] = &mut self.units;
        columns.push(Arc::new(quantity.finish()));
        columns.push(Arc::new(unit.finish()));
        columns.push(Arc::new(pricing_quantity.finish()));
        columns.push(Arc::new(pricing_unit.finish()));
        columns.extend(
            self.money
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.tags.finish()));
        columns.push(Arc::new(Int64Array::from_value(batch_id, len)));
        RecordBatch::try_new(BILLED_COSTS_SCHEMA.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cost(value: Value) -> Result<CostRecord, String> {
        parse_value(&value).map(|r| r.cost.unwrap_or_default())
    }

    const PICO: i128 = 1_000_000_000_000;

    #[test]
    fn a_focus_line_keeps_its_amounts_exact() {
        let line = cost(json!({
            "BilledCost": "2.425", "EffectiveCost": "2.425", "ListCost": "2.5",
            "BillingCurrency": "usd", "ChargeCategory": "Usage",
            "ChargePeriodStart": "2026-10-01T00:00:00Z", "ChargePeriodEnd": "2026-10-02T00:00:00Z",
            "ConsumedQuantity": "1000000", "ConsumedUnit": "Tokens",
            "PricingQuantity": "1", "PricingUnit": "1M Tokens", "ListUnitPrice": "2.5",
            "ResourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a",
            "x_SkuMeterName": "gpt-4o 0806 Inp glbl 1M Tokens", "Tags": "{}", "SkuPriceId": ""
        }))
        .unwrap();
        assert_eq!(line.export, CostExport::Focus);
        assert_eq!(line.currency, "USD");
        assert_eq!(line.billed_cost, 2_425_000_000_000);
        assert_eq!(line.list_cost, Some(5 * PICO / 2));
        assert_eq!(line.quantity, Some(1_000_000 * PICO));
        assert_eq!(
            line.text[6].as_deref(),
            Some("gpt-4o 0806 Inp glbl 1M Tokens")
        );
        assert_eq!(line.text[10], None, "an empty cell is absent");
        assert_eq!(line.period_end_us, Some(line.time_us + MICROS_PER_DAY));
    }

    #[test]
    fn a_cost_details_line_prices_its_list_cost_from_payg() {
        let line = cost(json!({
            "Date": "10/02/2026", "BillingCurrencyCode": "EUR", "MeterName": "Provisioned Managed Unit",
            "Quantity": "240", "UnitOfMeasure": "1 Hour", "EffectivePrice": "0.95",
            "PayGPrice": "1", "CostInBillingCurrency": "228", "Tags": "\"team\": \"a\""
        }))
        .unwrap();
        assert_eq!(line.export, CostExport::CostDetails);
        assert_eq!(line.list_cost, Some(240 * PICO));
        assert_eq!(line.effective_cost, Some(228 * PICO));
        assert_eq!(line.tags.as_deref(), Some("{\"team\": \"a\"}"));
        assert_eq!(
            chrono::DateTime::from_timestamp_micros(line.time_us).map(|t| t.to_rfc3339()),
            Some("2026-10-02T00:00:00+00:00".to_owned())
        );
    }

    #[test]
    fn column_names_match_without_case_and_amounts_are_not_identity() {
        let a = cost(json!({"costInBillingCurrency": "1", "date": "2026-10-01",
            "billingCurrency": "USD", "meterName": "m", "quantity": "1"}))
        .unwrap();
        let b = cost(json!({"costInBillingCurrency": "1.5", "date": "2026-10-01",
            "billingCurrency": "USD", "meterName": "m", "quantity": "2"}))
        .unwrap();
        assert_eq!(a.line_key, b.line_key, "a restated line is the same charge");
        let invoiced = cost(json!({"costInBillingCurrency": "1", "date": "2026-10-01",
            "billingCurrency": "USD", "meterName": "m", "quantity": "1", "InvoiceId": "G012"}))
        .unwrap();
        assert_eq!(
            a.line_key, invoiced.line_key,
            "invoicing names no new charge"
        );
        assert_ne!(a.line_uid, b.line_uid, "but not the same line");
        for amount in [
            "x_BilledCostInUsd",
            "UnitPrice",
            "PaygCostInBillingCurrency",
            "x_BillingExchangeRate",
            "ConsumedQuantity",
            "x_EffectiveUnitPrice",
        ] {
            assert!(is_amount(&amount.to_ascii_lowercase()), "{amount}");
        }
        for name in [
            "CostCenter",
            "x_CostCategory",
            "ChargeType",
            "CostAllocationRuleName",
            "SkuPriceId",
            "x_ExchangeRateDate",
            "MeterName",
            "ResourceId",
        ] {
            assert!(!is_amount(&name.to_ascii_lowercase()), "{name}");
        }
    }

    #[test]
    fn bad_lines_name_their_field() {
        let check = |value: Value, expect: &str| {
            let error = cost(value).unwrap_err();
            assert!(error.contains(expect), "{error:?} should name {expect:?}");
        };
        let focus = |field: &str, text: &str| {
            let mut line = json!({"BilledCost": "1", "BillingCurrency": "USD",
                "ChargePeriodStart": "2026-10-01T00:00:00Z"});
            line[field] = json!(text);
            line
        };
        check(focus("BilledCost", "abc"), "field `BilledCost`");
        check(
            focus("ChargePeriodStart", "yesterday"),
            "field `ChargePeriodStart`",
        );
        check(
            focus("BillingCurrency", "dollars"),
            "field `BillingCurrency`",
        );
        check(focus("ListCost", "1e9999"), "field `ListCost`");
        check(focus("ConsumedQuantity", "NaN"), "field `ConsumedQuantity`");
        check(
            json!({"ChargePeriodStart": "2026-10-01", "BillingCurrency": "USD"}),
            "`BilledCost`",
        );
        check(
            json!({"Date": "2026-10-01", "MeterName": "m"}),
            "`CostInBillingCurrency`",
        );
        check(json!({"Something": "else"}), "neither a FOCUS line");
        check(json!([1]), "named columns");
        check(json!({"BilledCost": ["1"]}), "field `BilledCost`");
    }
}

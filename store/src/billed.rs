//! The committed cost lines of a period (`billed_costs`), each as the latest
//! batch that has it says: a provider restates a day's lines for some days
//! after, and a restated export is a new batch whose lines share their
//! `line_key` with the ones they restate. Read whole at one manifest
//! watermark; reconciliation groups them.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, Int64Type};

use crate::{Result, Store};

/// One cost line; amounts and quantities in pico-units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BilledLine {
    pub time_us: i64,
    /// `focus` or `cost-details`.
    pub export: String,
    pub currency: String,
    pub charge_category: Option<String>,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub meter: Option<String>,
    pub quantity: Option<i128>,
    pub unit: Option<String>,
    pub pricing_quantity: Option<i128>,
    pub pricing_unit: Option<String>,
    pub list_unit_price: Option<i128>,
    pub billed_cost: i128,
    pub effective_cost: Option<i128>,
    pub list_cost: Option<i128>,
    /// The ingest batch the line was read from (its file).
    pub batch_id: i64,
}

fn lines_sql(from_us: i64, to_us: i64) -> String {
    format!(
        "SELECT CAST(c.time AS BIGINT), c.export, c.currency, c.charge_category, \
           c.resource_id, c.resource_name, c.meter, c.unit, c.pricing_unit, \
           c.quantity, c.pricing_quantity, c.list_unit_price, c.billed_cost, \
           c.effective_cost, c.list_cost, c.batch_id \
         FROM billed_costs c JOIN \
           (SELECT line_key, MAX(batch_id) AS latest FROM billed_costs GROUP BY line_key) l \
           ON c.line_key = l.line_key AND c.batch_id = l.latest \
         WHERE c.time >= to_timestamp_micros({from_us}) AND c.time < to_timestamp_micros({to_us}) \
         ORDER BY 1, 5, 7"
    )
}

impl Store {
    /// The cost lines charged in `[from_us, to_us)`, restated lines as last stated.
    pub async fn billed_lines(&self, from_us: i64, to_us: i64) -> Result<Vec<BilledLine>> {
        let ctx = self.query_session().await?;
        let batches = ctx.sql(&lines_sql(from_us, to_us)).await?.collect().await?;
        let mut lines = Vec::new();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                lines.push(line(batch, row));
            }
        }
        Ok(lines)
    }
}

fn line(batch: &RecordBatch, row: usize) -> BilledLine {
    let int = |i: usize| {
        let ints = batch.column(i).as_primitive::<Int64Type>();
        if ints.is_null(row) {
            0
        } else {
            ints.value(row)
        }
    };
    let text = |i: usize| {
        let strings = batch.column(i).as_string::<i32>();
        (!strings.is_null(row)).then(|| strings.value(row).to_owned())
    };
    let amount = |i: usize| {
        let amounts = batch.column(i).as_primitive::<Decimal128Type>();
        (!amounts.is_null(row)).then(|| amounts.value(row))
    };
    BilledLine {
        time_us: int(0),
        export: text(1).unwrap_or_default(),
        currency: text(2).unwrap_or_default(),
        charge_category: text(3),
        resource_id: text(4),
        resource_name: text(5),
        meter: text(6),
        unit: text(7),
        pricing_unit: text(8),
        quantity: amount(9),
        pricing_quantity: amount(10),
        list_unit_price: amount(11),
        billed_cost: amount(12).unwrap_or(0),
        effective_cost: amount(13),
        list_cost: amount(14),
        batch_id: int(15),
    }
}

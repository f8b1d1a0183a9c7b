//! One DLP or content-safety hit (`dlp_hits` table) and the Arrow columns that
//! collect them, apart from `record.rs` because hits share nothing with the
//! request and token rows but the partitioning by day.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int64Array, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use tollgate_store::schema::DLP_HITS_SCHEMA;

use crate::record::MICROS_PER_DAY;

/// A hit as `dlp_hits` stores it; `severity` and `action` are already the
/// table's lower-case words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HitRecord {
    pub time_us: i64,
    pub hit_id: String,
    pub source: String,
    pub policy: String,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub action: String,
    /// The matched sensitive information types as a JSON array of names.
    pub sensitive_info_types: Option<String>,
    pub label: Option<String>,
    pub agent: Option<String>,
    pub app: Option<String>,
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    pub resource_namespace: Option<String>,
    pub resource_name: Option<String>,
}

impl HitRecord {
    pub fn day(&self) -> i64 {
        self.time_us.div_euclid(MICROS_PER_DAY)
    }

    /// The text columns after `time`, in DLP_HITS_SCHEMA order.
    fn text(&self) -> [Option<&str>; 14] {
        [
            Some(&self.hit_id),
            Some(&self.source),
            Some(&self.policy),
            self.rule.as_deref(),
            self.severity.as_deref(),
            Some(&self.action),
            self.sensitive_info_types.as_deref(),
            self.label.as_deref(),
            self.agent.as_deref(),
            self.app.as_deref(),
            self.user_id.as_deref(),
            self.request_id.as_deref(),
            self.resource_namespace.as_deref(),
            self.resource_name.as_deref(),
        ]
    }
}

#[derive(Debug)]
pub(crate) struct HitColumns {
    time: TimestampMicrosecondBuilder,
    text: [StringBuilder; 14],
}

impl Default for HitColumns {
    fn default() -> Self {
        HitColumns {
            time: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            text: Default::default(),
        }
    }
}

impl HitColumns {
    pub(crate) fn push(&mut self, hit: &HitRecord) {
        self.time.append_value(hit.time_us);
        for (builder, value) in self.text.iter_mut().zip(hit.text()) {
            builder.append_option(value);
        }
    }

    pub(crate) fn finish(&mut self, batch_id: i64) -> arrow::error::Result<RecordBatch> {
        let len = self.time.len();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.time.finish())];
        columns.extend(
            self.text
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(Int64Array::from_value(batch_id, len)));
        RecordBatch::try_new(DLP_HITS_SCHEMA.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, StringArray};

    use super::*;

    #[test]
    fn columns_land_under_their_schema_names() {
        let mut columns = HitColumns::default();
        columns.push(&HitRecord {
            time_us: 5,
            hit_id: "h-1".into(),
            source: "purview".into(),
            policy: "PII".into(),
            severity: Some("high".into()),
            action: "block".into(),
            request_id: Some("r-1".into()),
            resource_name: Some("hr-employee-db".into()),
            ..Default::default()
        });
        let batch = columns.finish(9).unwrap();
        let text = |name: &str| {
            let column = batch.column_by_name(name).unwrap();
            let strings = column.as_any().downcast_ref::<StringArray>().unwrap();
            (!strings.is_null(0)).then(|| strings.value(0).to_owned())
        };
        assert_eq!(text("severity").as_deref(), Some("high"));
        assert_eq!(text("action").as_deref(), Some("block"));
        assert_eq!(text("request_id").as_deref(), Some("r-1"));
        assert_eq!(text("resource_name").as_deref(), Some("hr-employee-db"));
        assert_eq!(text("rule"), None);
        assert_eq!(text("resource_namespace"), None);
    }
}

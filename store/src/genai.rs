//! What the committed `genai_spans` say in aggregate: the links lineage draws
//! from traces (agent -> tool, data -> tool, agent -> model) and the model
//! calls grouped by where they went, which `lineage::bypass` judges. Read
//! whole at one manifest watermark; the questions are small groupings.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};

use crate::{Result, Store};

/// Which link between two names the spans show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpanLinkKind {
    /// An agent called a tool (an `execute_tool` span in its trace).
    AgentTool,
    /// A tool read a data source (`db.*` or `url.full` on it or under it).
    DataTool,
    /// An agent called a model (a chat, completion or embeddings span).
    AgentModel,
}

impl SpanLinkKind {
    const ALL: [SpanLinkKind; 3] = [
        SpanLinkKind::AgentTool,
        SpanLinkKind::DataTool,
        SpanLinkKind::AgentModel,
    ];

    /// What [`links_sql`] tags the kind's rows with.
    const fn tag(self) -> &'static str {
        match self {
            SpanLinkKind::AgentTool => "agent_tool",
            SpanLinkKind::DataTool => "data_tool",
            SpanLinkKind::AgentModel => "agent_model",
        }
    }
}

/// One link, with how often and when it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanLink {
    pub kind: SpanLinkKind,
    pub from: String,
    pub to: String,
    pub calls: i64,
    pub first_us: i64,
    pub last_us: i64,
}

/// Model calls that went to one address, for one agent, model and service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCalls {
    pub server_address: String,
    pub agent: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub service_name: Option<String>,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub first_us: i64,
    pub last_us: i64,
    /// One trace that shows such a call, to start an investigation from.
    pub trace_id: String,
}

/// Model calls of one day to one address, with their token counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCalls {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub server_address: String,
    pub agent: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub service_name: Option<String>,
    pub calls: i64,
    pub input_tokens: i64,
    pub cached_tokens: i64,
    pub output_tokens: i64,
}

/// The operations that are model calls.
const MODEL_CALL: &str =
    "operation IN ('chat', 'text_completion', 'embeddings', 'generate_content')";

/// Who made a model call and where it went: the grouping of both call
/// questions, its first five columns.
const CALLER: &str = "server_address, agent, model, provider, service_name";

fn links_sql() -> String {
    // A tool span whose agent its own export could not name takes its
    // parent's (the invoke_agent span may have come in an earlier export).
    let [agent_tool, data_tool, agent_model] = SpanLinkKind::ALL.map(SpanLinkKind::tag);
    format!(
        "SELECT '{agent_tool}', COALESCE(c.agent, p.agent), c.tool, COUNT(*), \
           CAST(MIN(c.time) AS BIGINT), CAST(MAX(c.time) AS BIGINT) \
         FROM genai_spans c LEFT JOIN genai_spans p \
           ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id \
         WHERE c.operation = 'execute_tool' AND c.tool IS NOT NULL \
           AND COALESCE(c.agent, p.agent) IS NOT NULL \
         GROUP BY 2, 3 \
         UNION ALL \
         SELECT '{data_tool}', COALESCE(data_namespace, data_url, data_system), tool, COUNT(*), \
           CAST(MIN(time) AS BIGINT), CAST(MAX(time) AS BIGINT) \
         FROM genai_spans WHERE operation = 'execute_tool' AND tool IS NOT NULL \
           AND COALESCE(data_namespace, data_url, data_system) IS NOT NULL \
         GROUP BY 2, 3 \
         UNION ALL \
         SELECT '{agent_model}', agent, model, COUNT(*), \
           CAST(MIN(time) AS BIGINT), CAST(MAX(time) AS BIGINT) \
         FROM genai_spans WHERE {MODEL_CALL} AND agent IS NOT NULL AND model IS NOT NULL \
         GROUP BY 2, 3"
    )
}

fn model_calls_sql() -> String {
    format!(
        "SELECT {CALLER}, COUNT(*), \
           CAST(SUM(COALESCE(input_tokens, 0)) AS BIGINT), \
           CAST(SUM(COALESCE(output_tokens, 0)) AS BIGINT), \
           CAST(MIN(time) AS BIGINT), CAST(MAX(time) AS BIGINT), MAX(trace_id) \
         FROM genai_spans WHERE {MODEL_CALL} AND server_address IS NOT NULL \
         GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    )
}

fn day_calls_sql(from_us: i64, to_us: i64) -> String {
    format!(
        "SELECT {CALLER}, CAST(CAST(time AS DATE) AS VARCHAR), COUNT(*), \
           CAST(SUM(COALESCE(input_tokens, 0)) AS BIGINT), \
           CAST(SUM(COALESCE(cached_tokens, 0)) AS BIGINT), \
           CAST(SUM(COALESCE(output_tokens, 0)) AS BIGINT) \
         FROM genai_spans WHERE {MODEL_CALL} AND server_address IS NOT NULL \
           AND time >= to_timestamp_micros({from_us}) AND time < to_timestamp_micros({to_us}) \
         GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 6, 1, 2, 3, 4, 5"
    )
}

impl Store {
    /// The links the committed spans show, each with its calls and sightings.
    pub async fn span_links(&self) -> Result<Vec<SpanLink>> {
        let mut links = Vec::new();
        for batch in self.collect(&links_sql()).await? {
            let rows = Rows::of(&batch)?;
            for row in 0..batch.num_rows() {
                let (Some(kind), Some(from), Some(to)) =
                    (rows.text(0, row), rows.text(1, row), rows.text(2, row))
                else {
                    continue;
                };
                let Some(kind) = SpanLinkKind::ALL.into_iter().find(|k| k.tag() == kind) else {
                    continue; // no tag of ours: not a link
                };
                links.push(SpanLink {
                    kind,
                    from: from.to_owned(),
                    to: to.to_owned(),
                    calls: rows.int(3, row),
                    first_us: rows.int(4, row),
                    last_us: rows.int(5, row),
                });
            }
        }
        Ok(links)
    }

    /// Model calls grouped by the address they went to (and agent, model,
    /// provider, service), for the bypass findings and their FinOps line.
    pub async fn model_calls_by_address(&self) -> Result<Vec<ModelCalls>> {
        let mut calls = Vec::new();
        for batch in self.collect(&model_calls_sql()).await? {
            let rows = Rows::of(&batch)?;
            for row in 0..batch.num_rows() {
                let Some(server_address) = rows.text(0, row) else {
                    continue;
                };
                let owned = |i: usize| rows.text(i, row).map(str::to_owned);
                calls.push(ModelCalls {
                    server_address: server_address.to_owned(),
                    agent: owned(1),
                    model: owned(2),
                    provider: owned(3),
                    service_name: owned(4),
                    calls: rows.int(5, row),
                    input_tokens: rows.int(6, row),
                    output_tokens: rows.int(7, row),
                    first_us: rows.int(8, row),
                    last_us: rows.int(9, row),
                    trace_id: owned(10).unwrap_or_default(),
                });
            }
        }
        Ok(calls)
    }

    /// Model calls per day and address in `[from_us, to_us)`: what prices
    /// the traffic no gateway saw.
    pub async fn model_calls_by_day(&self, from_us: i64, to_us: i64) -> Result<Vec<DayCalls>> {
        let mut calls = Vec::new();
        for batch in self.collect(&day_calls_sql(from_us, to_us)).await? {
            let rows = Rows::of(&batch)?;
            for row in 0..batch.num_rows() {
                let (Some(server_address), Some(day)) = (rows.text(0, row), rows.text(5, row))
                else {
                    continue;
                };
                let owned = |i: usize| rows.text(i, row).map(str::to_owned);
                calls.push(DayCalls {
                    day: day.to_owned(),
                    server_address: server_address.to_owned(),
                    agent: owned(1),
                    model: owned(2),
                    provider: owned(3),
                    service_name: owned(4),
                    calls: rows.int(6, row),
                    input_tokens: rows.int(7, row),
                    cached_tokens: rows.int(8, row),
                    output_tokens: rows.int(9, row),
                });
            }
        }
        Ok(calls)
    }

    async fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.query_session().await?;
        Ok(ctx.sql(sql).await?.collect().await?)
    }
}

/// A result batch's columns as text and whole numbers.
struct Rows {
    text: Vec<Option<arrow::array::ArrayRef>>,
    batch: RecordBatch,
}

impl Rows {
    fn of(batch: &RecordBatch) -> Result<Rows> {
        let text = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Int64 => Ok(None),
                _ => arrow::compute::cast(c, &DataType::Utf8).map(Some),
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(Rows {
            text,
            batch: batch.clone(),
        })
    }

    fn text(&self, column: usize, row: usize) -> Option<&str> {
        let strings = self.text.get(column)?.as_ref()?.as_string::<i32>();
        (!strings.is_null(row)).then(|| strings.value(row))
    }

    fn int(&self, column: usize, row: usize) -> i64 {
        let ints = self.batch.column(column).as_primitive::<Int64Type>();
        if ints.is_null(row) {
            0
        } else {
            ints.value(row)
        }
    }
}

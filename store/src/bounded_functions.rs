//! Scalar functions that build values from small inputs (`repeat('a', 1e9)`,
//! `range(1, 1e8)`, `lpad(s, 1e9)`) allocate outside DataFusion's memory pool:
//! one call can take gigabytes before any operator is asked. For SQL from the
//! network each of them is replaced by the same function behind a check of
//! what it would build, from its arguments, before it runs: more than the
//! bound is refused with the function's name. An argument whose size cannot be
//! told counts as its whole memory size, and a range whose length cannot be
//! told is refused. The `||` operator is rewritten into the bounded `concat`
//! (keeping its NULL semantics), so chains of it are bounded too.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue, resources_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::binary::BinaryTypeCoercer;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Documentation, Expr, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;

/// What a function's output size follows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Builds {
    /// `repeat(text, n)`: the text's length times n.
    Repeat,
    /// `lpad(text, n[, fill])`, `rpad`: n characters (4 bytes each at most).
    Pad,
    /// `replace(text, from, to)`, `regexp_replace(text, pattern, to[, flags])`:
    /// every character replaced at worst.
    Replace,
    /// `concat(...)`, `concat_ws(sep, ...)`: the arguments together.
    Concat,
    /// `range(start, stop[, step])`, `generate_series`: the elements between.
    Range,
    /// `array_repeat(value, n)`: n copies of the value.
    Copies,
    /// `array_resize(array, n[, value])`: n elements of the fill value.
    Resize,
    /// `encode(value, 'hex' | 'base64')`, `to_hex`: twice the value at most.
    Encode,
    /// `array_concat(...)`, `array_append`, `array_prepend`: the arguments together.
    Join,
}

const FUNCTIONS: [(&str, Builds); 16] = [
    ("repeat", Builds::Repeat),
    ("lpad", Builds::Pad),
    ("rpad", Builds::Pad),
    ("replace", Builds::Replace),
    ("regexp_replace", Builds::Replace),
    ("concat", Builds::Concat),
    ("concat_ws", Builds::Concat),
    ("range", Builds::Range),
    ("generate_series", Builds::Range),
    ("array_repeat", Builds::Copies),
    ("array_resize", Builds::Resize),
    ("encode", Builds::Encode),
    ("to_hex", Builds::Encode),
    ("array_concat", Builds::Join),
    ("array_append", Builds::Join),
    ("array_prepend", Builds::Join),
];

/// Replaces the value-building functions of `ctx` by bounded ones: a call
/// that would build more than `max_bytes` (over all the rows it is given)
/// fails instead of allocating.
pub fn bound_functions(ctx: &SessionContext, max_bytes: u64) -> Result<()> {
    for (name, builds) in FUNCTIONS {
        let Ok(inner) = ctx.udf(name) else { continue };
        ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
            inner: inner.as_ref().clone(),
            builds,
            max_bytes,
        }));
    }
    let concat = ctx.udf("concat")?;
    let operator = Arc::new(ScalarUDF::new_from_impl(ConcatOperator {
        concat: concat.as_ref().clone(),
        signature: Signature::any(2, Volatility::Immutable),
    }));
    ctx.add_analyzer_rule(Arc::new(BoundedStringConcat { operator }));
    Ok(())
}

/// `a || b` on text as the bounded [`ConcatOperator`], so that a chain of it
/// cannot build what `concat` may not.
#[derive(Debug)]
struct BoundedStringConcat {
    operator: Arc<ScalarUDF>,
}

impl AnalyzerRule for BoundedStringConcat {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        let rewrite = |expr: Expr| -> Result<Transformed<Expr>> {
            Ok(match expr {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::StringConcat,
                    right,
                }) => Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                    self.operator.clone(),
                    vec![*left, *right],
                ))),
                other => Transformed::no(other),
            })
        };
        plan.transform_up_with_subqueries(|plan| {
            plan.map_expressions(|expr| expr.transform_up(rewrite))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "bounded_string_concat"
    }
}

/// `||`: NULL when either side is, else both sides joined, through the
/// bounded `concat` and in the type `||` has.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConcatOperator {
    concat: ScalarUDF,
    signature: Signature,
}

impl ScalarUDFImpl for ConcatOperator {
    fn name(&self) -> &str {
        "string_concat"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [l, r] => BinaryTypeCoercer::new(l, &Operator::StringConcat, r).get_result_type(),
            _ => datafusion::common::plan_err!("|| takes two operands"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let wanted = args.return_type().clone();
        let operands = ColumnarValue::values_to_arrays(&args.args)?;
        let joined = self.concat.invoke_with_args(args)?.into_array(rows)?;
        let mut nulls = arrow::compute::is_null(&operands[0])?;
        for operand in &operands[1..] {
            nulls = arrow::compute::or(&nulls, &arrow::compute::is_null(operand)?)?;
        }
        let joined = arrow::compute::nullif(&joined, &nulls)?;
        Ok(ColumnarValue::Array(arrow::compute::cast(
            &joined, &wanted,
        )?))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    builds: Builds,
    max_bytes: u64,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows.max(1);
        let bytes = estimate(self.builds, &args.args, rows)?;
        if bytes > self.max_bytes {
            return resources_err!(
                "{}() would build {} MiB, more than the {} MiB one call may (a bound on SQL from the network)",
                self.inner.name(),
                bytes >> 20,
                self.max_bytes >> 20
            );
        }
        self.inner.invoke_with_args(args)
    }
}

/// The bytes a call would build over `rows` rows, at most.
fn estimate(builds: Builds, args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let arg = |i: usize| args.get(i);
    let total = match builds {
        Builds::Repeat => per_row(rows, |row| {
            Ok(value_bytes(arg(0), row)?.saturating_mul(count(arg(1), row)?))
        })?,
        Builds::Pad => per_row(rows, |row| Ok(count(arg(1), row)?.saturating_mul(4)))?,
        Builds::Replace => per_row(rows, |row| {
            let text = value_bytes(arg(0), row)?;
            let to = value_bytes(arg(2), row)?;
            Ok(text.saturating_add(text.saturating_add(1).saturating_mul(to)))
        })?,
        Builds::Concat | Builds::Join => per_row(rows, |row| {
            (0..args.len()).try_fold(0u64, |sum, i| {
                Ok(sum.saturating_add(value_bytes(arg(i), row)?))
            })
        })?,
        Builds::Range => per_row(rows, |row| Ok(range_len(args, row)?.saturating_mul(8)))?,
        Builds::Copies => per_row(rows, |row| {
            let each = value_bytes(arg(0), row)?.max(8);
            Ok(count(arg(1), row)?.saturating_mul(each))
        })?,
        Builds::Resize => per_row(rows, |row| {
            let each = value_bytes(arg(2), row)?.max(8);
            Ok(count(arg(1), row)?.saturating_mul(each))
        })?,
        Builds::Encode => per_row(rows, |row| Ok(value_bytes(arg(0), row)?.saturating_mul(2)))?,
    };
    Ok(total)
}

fn per_row(rows: usize, each: impl Fn(usize) -> Result<u64>) -> Result<u64> {
    (0..rows).try_fold(0u64, |sum, row| Ok(sum.saturating_add(each(row)?)))
}

/// An argument as a column of `rows` values (a scalar repeated once).
fn value(arg: &ColumnarValue, row: usize) -> Result<ScalarValue> {
    match arg {
        ColumnarValue::Scalar(s) => Ok(s.clone()),
        ColumnarValue::Array(a) if row < a.len() => ScalarValue::try_from_array(a, row),
        ColumnarValue::Array(_) => Ok(ScalarValue::Null),
    }
}

/// The bytes an argument holds in `row`: a text's or binary's length, else
/// its whole memory size (a list counts all its elements); 0 when null or
/// absent.
fn value_bytes(arg: Option<&ColumnarValue>, row: usize) -> Result<u64> {
    let Some(arg) = arg else { return Ok(0) };
    if let ColumnarValue::Array(a) = arg
        && a.data_type() == &DataType::Utf8
    {
        let strings = a.as_string::<i32>();
        return Ok(if row < strings.len() && strings.is_valid(row) {
            strings.value(row).len() as u64
        } else {
            0
        });
    }
    Ok(match value(arg, row)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.len() as u64,
        ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) => b.len() as u64,
        ScalarValue::Null => 0,
        other if other.is_null() => 0,
        other => other.size() as u64,
    })
}

/// A count argument (`n` of repeat, lpad, array_repeat) in `row`.
fn count(arg: Option<&ColumnarValue>, row: usize) -> Result<u64> {
    let Some(arg) = arg else { return Ok(0) };
    if let ColumnarValue::Array(a) = arg
        && a.data_type() == &DataType::Int64
    {
        let ints = a.as_primitive::<Int64Type>();
        return Ok(if row < ints.len() && ints.is_valid(row) {
            ints.value(row).max(0) as u64
        } else {
            0
        });
    }
    Ok(int_of(&value(arg, row)?).map_or(0, |n| n.max(0) as u64))
}

fn int_of(value: &ScalarValue) -> Option<i64> {
    match value.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(n) => n,
        _ => None,
    }
}

/// How many elements `range(start, stop, step)` makes in `row`: integers
/// exactly; dates and timestamps by their span over the step's shortest
/// length (a month as 28 days).
fn range_len(args: &[ColumnarValue], row: usize) -> Result<u64> {
    let values: Vec<ScalarValue> = args.iter().map(|a| value(a, row)).collect::<Result<_>>()?;
    let (start, stop) = match values.as_slice() {
        [stop] => (ScalarValue::Int64(Some(0)), stop.clone()),
        [start, stop, ..] => (start.clone(), stop.clone()),
        [] => return Ok(0),
    };
    let step = values.get(2);
    let integers = start.data_type().is_integer() && stop.data_type().is_integer();
    if integers && let (Some(a), Some(b)) = (int_of(&start), int_of(&stop)) {
        let step = step.and_then(int_of).unwrap_or(1).unsigned_abs().max(1);
        return Ok(b.abs_diff(a) / step + 1);
    }
    let span = nanos_of(&stop)
        .zip(nanos_of(&start))
        .map(|(b, a)| b.abs_diff(a));
    let step = step
        .and_then(interval_nanos)
        .unwrap_or(86_400_000_000_000)
        .max(1);
    // A range of what cannot be told is refused (NULL bounds build nothing).
    let nothing = start.is_null() || stop.is_null();
    Ok(match span {
        Some(span) => span / step + 1,
        None if nothing => 0,
        None => u64::MAX,
    })
}

fn nanos_of(value: &ScalarValue) -> Option<i64> {
    let ts = value
        .cast_to(&DataType::Timestamp(
            arrow::datatypes::TimeUnit::Nanosecond,
            None,
        ))
        .ok()?;
    match ts {
        ScalarValue::TimestampNanosecond(n, _) => n,
        _ => None,
    }
}

/// The shortest length of an interval step, in nanoseconds.
fn interval_nanos(value: &ScalarValue) -> Option<u64> {
    const DAY: i128 = 86_400_000_000_000;
    let nanos: i128 = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) => {
            i128::from(v.months) * 28 * DAY + i128::from(v.days) * DAY + i128::from(v.nanoseconds)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            i128::from(v.days) * DAY + i128::from(v.milliseconds) * 1_000_000
        }
        ScalarValue::IntervalYearMonth(Some(months)) => i128::from(*months) * 28 * DAY,
        _ => return None,
    };
    u64::try_from(nanos.unsigned_abs()).ok()
}

/// The functions bounded, for the docs and tests.
pub fn bounded_names() -> Vec<&'static str> {
    FUNCTIONS.iter().map(|(name, _)| *name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(ctx: &SessionContext, sql: &str) -> Result<usize> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn builders_past_the_bound_are_refused_by_name() {
        let ctx = SessionContext::new();
        bound_functions(&ctx, 16 << 20).unwrap();
        let refused = [
            ("SELECT length(repeat('a', 1000000000))", "repeat()"),
            ("SELECT lpad('a', 1000000000)", "lpad()"),
            ("SELECT rpad('a', 1000000000, 'b')", "rpad()"),
            (
                "SELECT count(*) FROM (SELECT unnest(range(1, 100000000)) AS x)",
                "range()",
            ),
            ("SELECT generate_series(1, 25000000)", "generate_series()"),
            (
                "SELECT range(TIMESTAMP '2000-01-01T00:00:00', TIMESTAMP '2100-01-01T00:00:00', INTERVAL '1 second')",
                "range()",
            ),
            ("SELECT array_repeat(1, 100000000)", "array_repeat()"),
            (
                "SELECT replace(repeat('a', 10000000), 'a', repeat('b', 100))",
                "replace()",
            ),
            (
                "SELECT array_repeat(repeat('a', 10000000), 100)",
                "array_repeat()",
            ),
            (
                "SELECT array_repeat(array_repeat(1, 1000000), 1000)",
                "array_repeat()",
            ),
            (
                "SELECT length(repeat('a', 10000000) || repeat('a', 10000000))",
                "concat()",
            ),
            ("SELECT encode(repeat('a', 10000000), 'hex')", "encode()"),
        ];
        for (sql, name) in refused {
            let err = run(&ctx, sql).await.unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains("more than the 16 MiB"),
                "{sql}: {err}"
            );
        }
        // Ordinary uses still answer.
        for sql in [
            "SELECT repeat('ab', 3), lpad('7', 3, '0'), replace('abc', 'b', 'x')",
            "SELECT unnest(range(1, 745))",
            "SELECT range(DATE '2026-10-01', DATE '2026-11-01', INTERVAL '1 day')",
            "SELECT concat('a', 'b', 1), concat_ws('-', 'a', 'b'), array_repeat('x', 3)",
            "SELECT encode('ab', 'hex'), array_concat([1], [2]), array_append([1], 2)",
            "SELECT repeat(column1, column2) FROM (VALUES ('a', 2), ('bc', 3))",
        ] {
            run(&ctx, sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        assert_eq!(bounded_names().len(), FUNCTIONS.len());
    }

    #[tokio::test]
    async fn the_concat_operator_keeps_its_meaning() {
        let ctx = SessionContext::new();
        bound_functions(&ctx, 16 << 20).unwrap();
        let batches = ctx
            .sql(
                "SELECT 'a' || 'b' AS ab, 'a' || NULL AS n, column1 || '-' || column2 AS c \
                 FROM (VALUES ('x', 'y'), (NULL, 'z'))",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        // NULL on either side is NULL, as `||` says (concat would skip it).
        assert!(text.contains("| ab |   | x-y |"), "{text}");
        assert!(text.contains("| ab |   |     |"), "{text}");
        let plan = ctx
            .sql("EXPLAIN SELECT 'a' || column1 FROM (VALUES ('x'))")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let plan = arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(plan.contains("string_concat"), "{plan}");
    }
}

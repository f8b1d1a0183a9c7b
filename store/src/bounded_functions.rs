//! Scalar functions that build values from small inputs (`repeat('a', 1e9)`,
//! `range(1, 1e8)`, `lpad(s, 1e9)`) allocate outside DataFusion's memory pool:
//! one call can take gigabytes before any operator is asked. For SQL from the
//! network each of them is replaced by the same function behind a check of
//! what it would build, from its arguments, before it runs: more than the
//! bound is refused with the function's name.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, resources_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
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
    /// `array_repeat(value, n)`, `array_resize(array, n[, value])`: n elements.
    Elements,
}

const FUNCTIONS: [(&str, Builds); 11] = [
    ("repeat", Builds::Repeat),
    ("lpad", Builds::Pad),
    ("rpad", Builds::Pad),
    ("replace", Builds::Replace),
    ("regexp_replace", Builds::Replace),
    ("concat", Builds::Concat),
    ("concat_ws", Builds::Concat),
    ("range", Builds::Range),
    ("generate_series", Builds::Range),
    ("array_repeat", Builds::Elements),
    ("array_resize", Builds::Elements),
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
    Ok(())
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
            Ok(text_len(arg(0), row)?.saturating_mul(count(arg(1), row)?))
        })?,
        Builds::Pad => per_row(rows, |row| Ok(count(arg(1), row)?.saturating_mul(4)))?,
        Builds::Replace => per_row(rows, |row| {
            let text = text_len(arg(0), row)?;
            let to = text_len(arg(2), row)?;
            Ok(text.saturating_add(text.saturating_add(1).saturating_mul(to)))
        })?,
        Builds::Concat => per_row(rows, |row| {
            (0..args.len()).try_fold(
                0u64,
                |sum, i| Ok(sum.saturating_add(text_len(arg(i), row)?)),
            )
        })?,
        Builds::Range => per_row(rows, |row| Ok(range_len(args, row)?.saturating_mul(8)))?,
        Builds::Elements => per_row(rows, |row| Ok(count(arg(1), row)?.saturating_mul(8)))?,
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

/// The byte length of a text argument in `row` (0 when null or absent).
fn text_len(arg: Option<&ColumnarValue>, row: usize) -> Result<u64> {
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
        // Numbers and the like, as text: at most a few dozen bytes.
        ScalarValue::Null => 0,
        other if other.is_null() => 0,
        _ => 40,
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
    Ok(span.map_or(0, |span| span / step + 1))
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
            "SELECT repeat(column1, column2) FROM (VALUES ('a', 2), ('bc', 3))",
        ] {
            run(&ctx, sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        assert_eq!(bounded_names().len(), FUNCTIONS.len());
    }
}

//! A JSON value read leniently, so that a wrong type becomes a quarantine reason that
//! names its field instead of an anonymous serde error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An object or array, where a scalar was expected.
    Compound,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
}

impl Scalar<'_> {
    fn describe(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::UInt(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => format!("{:?}", truncate(s, 64)),
            Scalar::Compound => "an object or array".into(),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Typed access to optional fields; every error names the field.
pub fn text(v: Option<Scalar<'_>>, field: &str) -> Result<Option<String>, String> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) if s.is_empty() => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s.into_owned())),
        // Numeric ids (user 42) are still ids.
        Some(Scalar::Int(i)) => Ok(Some(i.to_string())),
        Some(Scalar::UInt(u)) => Ok(Some(u.to_string())),
        Some(other) => Err(format!(
            "field `{field}`: expected a string, got {}",
            other.describe()
        )),
    }
}

pub fn required_text(v: Option<Scalar<'_>>, field: &str) -> Result<String, String> {
    text(v, field)?.ok_or_else(|| format!("missing field `{field}`"))
}

/// A number written as a string (CSV cells, some query APIs) read as the number.
fn numeric(v: Option<Scalar<'_>>) -> Option<Scalar<'_>> {
    match v {
        Some(Scalar::Str(s)) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                Some(Scalar::Int(i))
            } else if let Ok(f) = t
                .parse::<f64>()
                .map_err(|_| ())
                .and_then(|f| if f.is_finite() { Ok(f) } else { Err(()) })
            {
                Some(Scalar::Float(f))
            } else {
                Some(Scalar::Str(s))
            }
        }
        other => other,
    }
}

/// A non-negative whole number (token counts, milliseconds).
pub fn count(v: Option<Scalar<'_>>, field: &str) -> Result<Option<i64>, String> {
    match numeric(v) {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Int(i)) if i < 0 => Err(format!("field `{field}`: negative value {i}")),
        Some(Scalar::Int(i)) => Ok(Some(i)),
        Some(Scalar::UInt(u)) => i64::try_from(u)
            .map(Some)
            .map_err(|_| format!("field `{field}`: {u} is too large")),
        Some(Scalar::Float(f)) if f < 0.0 => Err(format!("field `{field}`: negative value {f}")),
        Some(Scalar::Float(f)) if f.fract() == 0.0 && f < 9.0e15 => Ok(Some(f as i64)),
        Some(other) => Err(format!(
            "field `{field}`: expected a non-negative whole number, got {}",
            other.describe()
        )),
    }
}

/// A non-negative duration in milliseconds; fractions are rounded.
pub fn millis(v: Option<Scalar<'_>>, field: &str) -> Result<Option<i64>, String> {
    match numeric(v) {
        Some(Scalar::Float(f)) if (0.0..9.0e15).contains(&f) => Ok(Some(f.round() as i64)),
        other => count(other, field),
    }
}

/// An HTTP status code.
pub fn status(v: Option<Scalar<'_>>, field: &str) -> Result<Option<i32>, String> {
    match count(v, field)? {
        None => Ok(None),
        Some(code @ 100..=599) => Ok(Some(code as i32)),
        Some(code) => Err(format!(
            "field `{field}`: {code} is not an HTTP status code"
        )),
    }
}

/// Prompt and cached token counts, checked together: cached tokens are the part
/// of the prompt served from the cache, so more cached than prompt tokens would
/// bill tokens that were never sent.
pub fn prompt_and_cached(
    prompt: Option<Scalar<'_>>,
    prompt_field: &str,
    cached: Option<Scalar<'_>>,
    cached_field: &str,
) -> Result<(i64, i64), String> {
    let prompt = count(prompt, prompt_field)?.unwrap_or(0);
    let cached = count(cached, cached_field)?.unwrap_or(0);
    if cached > prompt {
        return Err(format!(
            "field `{cached_field}`: {cached} exceeds {prompt_field} {prompt}"
        ));
    }
    Ok((prompt, cached))
}

/// A time in UTC, to microseconds: RFC 3339, or the offset-less forms exports
/// write in UTC (database `2026-10-01 09:00:00.123`, Azure portal CSV
/// `2026/10/01 9:00:00.123` and `10/1/2026, 9:00:00.123 AM`).
pub fn utc_time(v: Option<Scalar<'_>>, field: &str) -> Result<Option<i64>, String> {
    let Some(raw) = text(v, field)? else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&raw) {
        return Ok(Some(t.timestamp_micros()));
    }
    const FORMATS: [&str; 5] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%m/%d/%Y, %I:%M:%S%.f %p",
        "%m/%d/%Y %I:%M:%S%.f %p",
    ];
    FORMATS
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(raw.trim(), f).ok())
        .map(|t| Some(t.and_utc().timestamp_micros()))
        .ok_or_else(|| format!("field `{field}`: {raw:?} is not a time"))
}

/// A non-negative amount of money (a gateway's cost estimate).
pub fn amount(v: Option<Scalar<'_>>, field: &str) -> Result<Option<f64>, String> {
    match numeric(v) {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Int(i)) if i >= 0 => Ok(Some(i as f64)),
        Some(Scalar::UInt(u)) => Ok(Some(u as f64)),
        Some(Scalar::Float(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
        Some(other) => Err(format!(
            "field `{field}`: expected a non-negative amount, got {}",
            other.describe()
        )),
    }
}

pub fn flag(v: Option<Scalar<'_>>, field: &str) -> Result<Option<bool>, String> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        // Python-written exports say None for "not recorded".
        Some(Scalar::Str(s)) if s.is_empty() || s == "None" || s == "null" => Ok(None),
        Some(Scalar::Bool(b)) => Ok(Some(b)),
        Some(Scalar::Str(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Scalar::Str(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(format!(
            "field `{field}`: expected true or false, got {}",
            other.describe()
        )),
    }
}

/// The value at a dotted path (object keys only).
pub fn lookup_value<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// The value at a dotted path, as a [`Scalar`] for the typed accessors.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<Scalar<'a>> {
    lookup_value(value, path).map(of)
}

/// A value already found, as a [`Scalar`].
pub fn of(value: &Value) -> Scalar<'_> {
    match value {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Scalar::Int(i),
            (None, Some(u), _) => Scalar::UInt(u),
            (_, _, Some(f)) => Scalar::Float(f),
            _ => Scalar::Compound,
        },
        Value::String(s) => Scalar::Str(s.as_str().into()),
        Value::Array(_) | Value::Object(_) => Scalar::Compound,
    }
}

/// A record's fields by dotted path, each read naming its field as the
/// record spells it (`prefix.path`), so no path is written twice.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    value: Option<&'a Value>,
    prefix: &'static str,
}

impl<'a> Fields<'a> {
    /// The fields of `value` itself.
    pub fn of(value: &'a Value) -> Self {
        Fields {
            value: Some(value),
            prefix: "",
        }
    }

    /// The fields of a section, if the record has it, named under `prefix`.
    pub fn under(value: Option<&'a Value>, prefix: &'static str) -> Self {
        Fields { value, prefix }
    }

    pub fn get(&self, path: &str) -> Option<Scalar<'a>> {
        self.value.and_then(|v| lookup(v, path))
    }

    /// How errors name the field at `path`.
    pub fn name(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}.{path}", self.prefix)
        }
    }

    pub fn text(&self, path: &str) -> Result<Option<String>, String> {
        text(self.get(path), &self.name(path))
    }

    pub fn count(&self, path: &str) -> Result<Option<i64>, String> {
        count(self.get(path), &self.name(path))
    }

    pub fn millis(&self, path: &str) -> Result<Option<i64>, String> {
        millis(self.get(path), &self.name(path))
    }

    pub fn amount(&self, path: &str) -> Result<Option<f64>, String> {
        amount(self.get(path), &self.name(path))
    }

    pub fn status(&self, path: &str) -> Result<Option<i32>, String> {
        status(self.get(path), &self.name(path))
    }

    pub fn flag(&self, path: &str) -> Result<Option<bool>, String> {
        flag(self.get(path), &self.name(path))
    }

    pub fn utc_time(&self, path: &str) -> Result<Option<i64>, String> {
        utc_time(self.get(path), &self.name(path))
    }

    pub fn required_text(&self, path: &str) -> Result<String, String> {
        required_text(self.get(path), &self.name(path))
    }
}

pub fn first_text(value: &Value, paths: &[&str]) -> Result<Option<String>, String> {
    for path in paths {
        if let Some(found) = text(lookup(value, path), path)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Scalar<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn counts_name_their_field() {
        assert_eq!(count(Some(parse("12")), "t"), Ok(Some(12)));
        assert_eq!(count(Some(parse("12.0")), "t"), Ok(Some(12)));
        assert_eq!(count(Some(parse("null")), "t"), Ok(None));
        assert_eq!(
            count(Some(parse("-3")), "prompt_tokens"),
            Err("field `prompt_tokens`: negative value -3".into())
        );
        let err = count(Some(parse("\"12a\"")), "completion_tokens").unwrap_err();
        assert!(
            err.starts_with("field `completion_tokens`: expected a non-negative whole number"),
            "{err}"
        );
        assert!(count(Some(parse("1.5")), "t").is_err());
        assert!(count(Some(parse("[1]")), "t").is_err());
    }

    #[test]
    fn numbers_in_strings_and_python_nones() {
        assert_eq!(count(Some(parse("\"200\"")), "t"), Ok(Some(200)));
        assert_eq!(status(Some(parse("\"429\"")), "s"), Ok(Some(429)));
        assert_eq!(amount(Some(parse("\"0.25\"")), "a"), Ok(Some(0.25)));
        assert!(count(Some(parse("\"-1\"")), "t").is_err());
        assert_eq!(flag(Some(parse("\"None\"")), "f"), Ok(None));
        assert_eq!(text(Some(parse("\"007\"")), "id"), Ok(Some("007".into())));
    }

    #[test]
    fn export_time_formats() {
        let at = |s: &str| utc_time(Some(Scalar::Str(s.into())), "t");
        let want = Ok(Some(1_790_845_202_123_000));
        assert_eq!(at("2026-10-01T09:00:02.123Z"), want);
        assert_eq!(at("2026-10-01 09:00:02.123"), want);
        assert_eq!(at("2026/10/01 9:00:02.123"), want);
        assert_eq!(at("10/1/2026, 9:00:02.123 AM"), want);
        assert_eq!(at("10/1/2026, 9:00:02 PM"), Ok(Some(1_790_888_402_000_000)));
        assert!(at("yesterday").is_err());
    }

    #[test]
    fn status_codes_are_checked() {
        assert_eq!(status(Some(parse("429")), "s"), Ok(Some(429)));
        assert!(status(Some(parse("42")), "s").is_err());
    }

    #[test]
    fn compound_values_are_skipped_whole() {
        assert_eq!(parse(r#"{"a":[1,{"b":2}]}"#), Scalar::Compound);
    }
}

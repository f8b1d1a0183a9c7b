//! Request headers as a gateway logged them, borrowed from the line they came in,
//! for adapters that map a record without building a [`serde_json::Value`] first.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::dimensions::Source;
use crate::scalar::Scalar;

/// The name/value pairs of a `requestHeaders` object, in logged order.
#[derive(Debug, Default)]
pub(crate) struct HeaderMap<'a> {
    entries: Vec<(Cow<'a, str>, Scalar<'a>)>,
    /// False for shapes only the general (`Value`) path reads the same way: a JSON
    /// string holding the object, array or fractional values, anything not an object.
    usable: bool,
}

impl HeaderMap<'_> {
    pub(crate) fn is_usable(&self) -> bool {
        self.usable
    }

    /// The value of a `header:NAME` source, if it holds text or a whole number.
    /// Among headers of that name in any case, the one whose spelling sorts first
    /// wins, and the last of exact repeats: what a JSON object map (sorted keys,
    /// the last duplicate kept) gives the general path.
    pub(crate) fn find(&self, source: &Source) -> Option<String> {
        let Source::Header(name) = source else {
            return None;
        };
        let (_, value) = self
            .entries
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .reduce(|best, next| if next.0 <= best.0 { next } else { best })?;
        match value {
            Scalar::Str(s) if !s.is_empty() => Some(s.to_string()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::UInt(u) => Some(u.to_string()),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderMap<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeaderMapVisitor)
    }
}

struct HeaderMapVisitor;

impl HeaderMapVisitor {
    fn unusable<'a>() -> HeaderMap<'a> {
        HeaderMap {
            entries: Vec::new(),
            usable: false,
        }
    }
}

impl<'de> Visitor<'de> for HeaderMapVisitor {
    type Value = HeaderMap<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request headers")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut headers = HeaderMap {
            entries: Vec::new(),
            usable: true,
        };
        while let Some((key, value)) = map.next_entry::<Scalar<'de>, Scalar<'de>>()? {
            match (key, &value) {
                (
                    Scalar::Str(name),
                    Scalar::Str(_)
                    | Scalar::Int(_)
                    | Scalar::UInt(_)
                    | Scalar::Null
                    | Scalar::Bool(_),
                ) => headers.entries.push((name, value)),
                _ => headers.usable = false,
            }
        }
        Ok(headers)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::unusable())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Self::unusable())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Self::unusable())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Self::unusable())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Self::unusable())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Self::unusable())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(HeaderMap {
            entries: Vec::new(),
            usable: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(json: &str) -> HeaderMap<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn finds_a_header_in_any_case_borrowing_plain_values() {
        let h = headers(r#"{"X-Agent-Id":"agent-7","x-count":42,"x-empty":"","x-flag":true}"#);
        assert!(h.is_usable());
        let find = |name: &str| h.find(&Source::Header(name.to_owned()));
        assert_eq!(find("x-agent-id").as_deref(), Some("agent-7"));
        assert_eq!(find("x-count").as_deref(), Some("42"));
        assert_eq!(find("x-empty"), None);
        assert_eq!(find("x-flag"), None);
        assert_eq!(find("x-missing"), None);
        assert!(matches!(h.entries[0].0, Cow::Borrowed(_)));
    }

    #[test]
    fn repeated_names_resolve_as_a_sorted_json_map_would() {
        let h = headers(r#"{"x-agent-id":"a","X-Agent-Id":"b","x-agent-id":"c"}"#);
        assert_eq!(
            h.find(&Source::Header("x-agent-id".to_owned())).as_deref(),
            Some("b")
        );
        let h = headers(r#"{"x-agent-id":"a","x-agent-id":"c"}"#);
        assert_eq!(
            h.find(&Source::Header("x-agent-id".to_owned())).as_deref(),
            Some("c")
        );
    }

    #[test]
    fn shapes_the_general_path_must_read_are_flagged() {
        assert!(!headers(r#""{\"x-agent-id\":\"a\"}""#).is_usable());
        assert!(!headers(r#"{"x-agent-id":["a","b"]}"#).is_usable());
        assert!(!headers(r#"{"x-agent-id":1.5}"#).is_usable());
        assert!(!headers(r#"[1,2]"#).is_usable());
        assert!(headers("null").is_usable());
    }
}

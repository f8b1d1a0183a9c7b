//! A mergeable latency sketch with 1% relative accuracy (the DDSketch scheme):
//! values fall into logarithmic buckets `(γ^(i-1), γ^i]` with `γ = (1+α)/(1-α)`,
//! so any quantile read back is within `α` of the true value at that rank. Hourly
//! rollups keep one per row; merging is adding bucket counts, so percentiles of
//! any grouping and any span of hours come out of the stored sketches exactly as
//! accurate as from the raw requests.

use std::collections::BTreeMap;

/// The relative accuracy of every quantile.
pub const RELATIVE_ACCURACY: f64 = 0.01;
const FORMAT_VERSION: u8 = 1;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySketch {
    /// Values of zero (or below): no bucket holds them.
    zeros: u64,
    buckets: BTreeMap<i32, u64>,
}

impl LatencySketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value (milliseconds; anything not above zero counts as zero).
    pub fn add(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        if value <= 0.0 {
            self.zeros += 1;
        } else {
            let index = (value.ln() / gamma().ln()).ceil() as i32;
            *self.buckets.entry(index).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &LatencySketch) {
        self.zeros = self.zeros.saturating_add(other.zeros);
        for (&index, &count) in &other.buckets {
            let bucket = self.buckets.entry(index).or_default();
            *bucket = bucket.saturating_add(count);
        }
    }

    pub fn count(&self) -> u64 {
        self.zeros + self.buckets.values().sum::<u64>()
    }

    /// The value at rank `floor(q·(n-1))` of the values added, within 1%;
    /// `None` for an empty sketch. `q` is clamped to `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        let g = gamma();
        for (&index, &count) in &self.buckets {
            seen += count;
            if seen > rank {
                // The point of the bucket equally far, relatively, from both ends.
                return Some(2.0 * g.powi(index) / (g + 1.0));
            }
        }
        None
    }

    /// How many values were above `threshold`, within the sketch's 1% (a
    /// bucket counts whole, by its representative value).
    pub fn count_above(&self, threshold: f64) -> u64 {
        let g = gamma();
        self.buckets
            .iter()
            .filter(|&(&index, _)| 2.0 * g.powi(index) / (g + 1.0) > threshold)
            .map(|(_, &count)| count)
            .sum()
    }

    /// A compact, stable encoding: a version byte, the zero count, the number of
    /// buckets, then each bucket as (index delta, count), all LEB128 varints
    /// (indices zig-zag encoded).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.buckets.len() * 3);
        out.push(FORMAT_VERSION);
        put_varint(&mut out, self.zeros);
        put_varint(&mut out, self.buckets.len() as u64);
        let mut previous = 0i64;
        for (&index, &count) in &self.buckets {
            let delta = i64::from(index) - previous;
            previous = i64::from(index);
            put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
            put_varint(&mut out, count);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<LatencySketch, String> {
        let mut input = bytes;
        match input.split_first() {
            Some((&FORMAT_VERSION, rest)) => input = rest,
            Some((v, _)) => return Err(format!("unknown latency sketch version {v}")),
            None => return Err("empty latency sketch".to_owned()),
        }
        let zeros = take_varint(&mut input)?;
        let len = take_varint(&mut input)?;
        let mut buckets = BTreeMap::new();
        let mut index = 0i64;
        for _ in 0..len {
            let zigzag = take_varint(&mut input)?;
            let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
            index = index
                .checked_add(delta)
                .ok_or("bucket index out of range")?;
            let index = i32::try_from(index).map_err(|_| "bucket index out of range")?;
            buckets.insert(index, take_varint(&mut input)?);
        }
        if !input.is_empty() {
            return Err("trailing bytes after latency sketch".to_owned());
        }
        Ok(LatencySketch { zeros, buckets })
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or("latency sketch ends inside a number")?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("latency sketch number longer than 64 bits".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn an_empty_sketch_has_no_quantiles() {
        assert_eq!(LatencySketch::new().quantile(0.5), None);
    }

    #[test]
    fn zeros_and_a_bad_encoding_are_handled() {
        let mut s = LatencySketch::new();
        s.add(0.0);
        s.add(0.0);
        s.add(100.0);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!((s.quantile(1.0).unwrap() - 100.0).abs() <= 1.0);
        assert!(LatencySketch::decode(&[]).is_err());
        assert!(LatencySketch::decode(&[9]).is_err());
        let mut bytes = s.encode();
        bytes.push(0);
        assert!(LatencySketch::decode(&bytes).is_err());
        bytes.truncate(bytes.len() - 2);
        assert!(LatencySketch::decode(&bytes).is_err());
        // Corrupt deltas that would overflow are refused, not a panic.
        let mut huge = vec![1, 0, 2];
        for _ in 0..2 {
            huge.extend([
                0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1,
            ]);
        }
        assert!(LatencySketch::decode(&huge).is_err());
    }

    proptest! {
        #[test]
        fn quantiles_are_within_one_percent(
            values in prop::collection::vec(0.0f64..600_000.0, 1..400),
            q in 0.0f64..=1.0,
        ) {
            let mut s = LatencySketch::new();
            values.iter().for_each(|&v| s.add(v));
            let want = exact(&values, q);
            let got = s.quantile(q).unwrap();
            prop_assert!((got - want).abs() <= want * RELATIVE_ACCURACY + 1e-9,
                "q {q}: got {got}, exact {want}");
        }

        #[test]
        fn merged_sketches_equal_one_over_all_values_and_survive_encoding(
            a in prop::collection::vec(0u32..100_000, 0..200),
            b in prop::collection::vec(0u32..100_000, 0..200),
        ) {
            let sketch = |values: &[u32]| {
                let mut s = LatencySketch::new();
                values.iter().for_each(|&v| s.add(f64::from(v)));
                s
            };
            let mut merged = sketch(&a);
            merged.merge(&sketch(&b));
            let all: Vec<u32> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(&merged, &sketch(&all));
            prop_assert_eq!(LatencySketch::decode(&merged.encode()), Ok(merged));
        }
    }
}

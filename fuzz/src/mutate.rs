//! Inputs made from real ones: the samples and generated reference files,
//! mutated at the byte level and, where they are JSON, at the value level,
//! towards what hostile senders write (extreme numbers, huge and control
//! strings, deep nesting, wrong types, truncation). Not coverage-guided: a
//! seeded random walk from real inputs, reproducible from its seed.

use serde_json::Value;

/// SplitMix64: small, fast, the same sequence for a seed everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that break parsers: overflow, signs, non-numbers, odd times.
const HOSTILE_TEXT: [&str; 24] = [
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "-1",
    "0",
    "1e309",
    "-1e309",
    "NaN",
    "1.7976931348623157e308",
    "4.9e-324",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2030-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-02-30T25:61:61Z",
    "=HYPERLINK(\"http://evil.example\")",
    "@(context.Request.Headers.GetValueOrDefault(\"Authorization\",\"\"))",
    "inj\"} 1\nfake 42",
    "\u{1b}[31m\u{7}",
    "\u{0}",
    "\u{feff}",
    "\u{10ffff}",
    "",
];

/// One mutated input from `seeds`.
pub fn input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = rng.pick(seeds).clone();
    for _ in 0..1 + rng.below(4) {
        data = if rng.below(3) == 0 {
            json_mutation(rng, &data).unwrap_or_else(|| byte_mutation(rng, data, seeds))
        } else {
            byte_mutation(rng, data, seeds)
        };
    }
    // Inputs stay small: the bounds on big ones are tested apart.
    data.truncate(256 * 1024);
    data
}

fn byte_mutation(rng: &mut Rng, mut data: Vec<u8>, seeds: &[Vec<u8>]) -> Vec<u8> {
    let len = data.len();
    let at = rng.below(len + 1);
    match rng.below(9) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 => {
            let bytes: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
            data.splice(at..at, bytes);
        }
        2 if len > 0 => {
            let end = (at + 1 + rng.below(64)).min(len);
            data.drain(at.min(end)..end);
        }
        3 if len > 0 => {
            let from = rng.below(len);
            let end = (from + 1 + rng.below(256)).min(len);
            let copy = data[from..end].to_vec();
            data.splice(at..at, copy);
        }
        4 => {
            let other = rng.pick(seeds);
            let from = rng.below(other.len() + 1);
            data.splice(at..at, other[from..].iter().take(512).copied());
        }
        5 => {
            let text = rng.pick(&HOSTILE_TEXT).as_bytes().to_vec();
            data.splice(at..at, text);
        }
        6 => data.truncate(at),
        7 => {
            let b = *rng.pick(b"{}[]\",:\n\r\\0-.eE");
            data.insert(at, b);
        }
        _ => {
            // A run of digits where a number was: beyond every integer type.
            let digits = vec![b'9'; 1 + rng.below(40)];
            data.splice(at..at, digits);
        }
    }
    data
}

/// A JSON input (or JSON lines) with one value somewhere replaced.
fn json_mutation(rng: &mut Rng, data: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(data).ok()?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > 1 && serde_json::from_str::<Value>(lines[0]).is_ok() {
        let i = rng.below(lines.len());
        let mut value: Value = serde_json::from_str(lines[i]).ok()?;
        mutate_value(rng, &mut value, 0);
        let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        out[i] = value.to_string();
        return Some(out.join("\n").into_bytes());
    }
    let mut value: Value = serde_json::from_str(text).ok()?;
    mutate_value(rng, &mut value, 0);
    Some(value.to_string().into_bytes())
}

fn mutate_value(rng: &mut Rng, value: &mut Value, depth: usize) {
    let descend = depth < 12 && rng.below(4) != 0;
    match value {
        Value::Object(map) if descend && !map.is_empty() => {
            let key = rng.pick(&map.keys().cloned().collect::<Vec<_>>()).clone();
            match rng.below(6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let copy = map.get(&key).cloned().unwrap_or(Value::Null);
                    map.insert(format!("{key}{}", rng.below(3)), copy);
                }
                _ => {
                    if let Some(child) = map.get_mut(&key) {
                        mutate_value(rng, child, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let i = rng.below(items.len());
            match rng.below(5) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    for _ in 0..1 + rng.below(64) {
                        items.push(copy.clone());
                    }
                }
                _ => mutate_value(rng, &mut items[i], depth + 1),
            }
        }
        other => *other = replacement(rng),
    }
}

fn replacement(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::from(rng.next() as i64),
        3 => serde_json::Number::from_f64(f64::from_bits(rng.next()))
            .map_or(Value::Null, Value::Number),
        4 => Value::from(u64::MAX),
        5 => Value::String("x".repeat(rng.below(70_000))),
        6 => {
            // Deep nesting, up to past serde_json's recursion limit.
            let mut v = Value::Null;
            for _ in 0..rng.below(200) {
                v = Value::Array(vec![v]);
            }
            v
        }
        7 => Value::Object(serde_json::Map::new()),
        _ => Value::String((*rng.pick(&HOSTILE_TEXT)).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_inputs() {
        let seeds = vec![br#"{"a":[1,{"b":"c"}]}"#.to_vec(), b"x,y\n1,2\n".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50).map(|_| input(&mut rng, &seeds)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}

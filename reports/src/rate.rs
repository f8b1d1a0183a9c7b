//! Exact money rates: a decimal as written in a price sheet, held as an integer
//! number of pico-units (10^-12) of its currency, so sums never drift.

/// Pico-units per currency unit.
pub const PICO: i64 = 1_000_000_000_000;
const DECIMALS: usize = 12;

/// Parses a non-negative decimal (`2.50`, `0.000275`, `10`) into pico-units.
pub fn parse_pico(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if t.is_empty()
        || (whole.is_empty() && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
    {
        return Err(format!("{text:?} is not a non-negative decimal number"));
    }
    if fraction.len() > DECIMALS {
        return Err(format!("{text:?} has more than {DECIMALS} decimal places"));
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| format!("{text:?} is too large"))?
    };
    let padded = format!("{fraction:0<DECIMALS$}");
    let fraction: i64 = padded.parse().unwrap_or(0);
    whole
        .checked_mul(PICO)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Formats pico-units as the shortest exact decimal (`2500000000000` -> `2.5`).
pub fn format_pico(pico: i64) -> String {
    // Signed parts would lose the minus of `-0.5`: format the magnitude.
    let sign = if pico < 0 { "-" } else { "" };
    let magnitude = pico.unsigned_abs();
    let (whole, fraction) = (magnitude / PICO as u64, magnitude % PICO as u64);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:0DECIMALS$}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// [`format_pico`] for the wide sums of a report.
pub fn format_pico_wide(pico: i128) -> String {
    let sign = if pico < 0 { "-" } else { "" };
    let magnitude = pico.unsigned_abs();
    let per = PICO as u128;
    let (whole, fraction) = (magnitude / per, magnitude % per);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:0DECIMALS$}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// Parses what [`format_pico_wide`] writes (a decimal, possibly negative).
pub fn parse_pico_wide(text: &str) -> Result<i128, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let bad = || format!("{text:?} is not a decimal amount");
    if whole.is_empty() || fraction.len() > DECIMALS {
        return Err(bad());
    }
    let whole: i128 = whole.parse().map_err(|_| bad())?;
    let fraction: i128 = if fraction.is_empty() {
        0
    } else if fraction.bytes().all(|b| b.is_ascii_digit()) {
        format!("{fraction:0<DECIMALS$}")
            .parse()
            .map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    let value = whole
        .checked_mul(i128::from(PICO))
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(bad)?;
    Ok(if negative { -value } else { value })
}

/// Serde for pico amounts as exact decimal strings of the currency (`"24.5"`):
/// JSON numbers lose digits beyond 2^53 in most readers.
pub mod serde_amount {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(pico: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_pico_wide(*pico))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_pico_wide(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_price_sheet_decimals_exactly() {
        assert_eq!(parse_pico("2.50"), Ok(2_500_000_000_000));
        assert_eq!(parse_pico("0.000275"), Ok(275_000_000));
        assert_eq!(parse_pico("10"), Ok(10 * PICO));
        assert_eq!(parse_pico(".5"), Ok(PICO / 2));
        assert_eq!(parse_pico("0.000000000001"), Ok(1));
        for bad in [
            "",
            "-1",
            "1e-3",
            "abc",
            ".",
            "1.2.3",
            "0.0000000000001",
            "99999999999",
        ] {
            assert!(parse_pico(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn negative_amounts_keep_their_sign() {
        assert_eq!(format_pico(-PICO / 2), "-0.5");
        assert_eq!(format_pico(-3 * PICO), "-3");
        assert_eq!(format_pico(i64::MIN), "-9223372.036854775808");
    }

    proptest::proptest! {
        #[test]
        fn wide_amounts_round_trip(pico in -i128::MAX..=i128::MAX) {
            let text = format_pico_wide(pico);
            proptest::prop_assert_eq!(parse_pico_wide(&text), Ok(pico));
        }

        #[test]
        fn format_and_parse_round_trip(pico in 0i64..(1i64 << 62)) {
            proptest::prop_assert_eq!(parse_pico(&format_pico(pico)), Ok(pico));
        }
    }
}

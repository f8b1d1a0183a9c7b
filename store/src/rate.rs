//! Exact money: a decimal as written in a price sheet or a cost export, held as an integer
//! number of pico-units (10^-12) of its currency, so sums never drift.

/// Pico-units per currency unit.
pub const PICO: i64 = 1_000_000_000_000;
const DECIMALS: usize = 12;

use std::borrow::Cow;

/// Parses a non-negative decimal (`2.50`, `0.000275`, `10`, or `2.75e-04` as
/// spreadsheets and Python write it) into pico-units.
pub fn parse_pico(text: &str) -> Result<i64, String> {
    let not_decimal = || format!("{text:?} is not a non-negative decimal number");
    let t = plain_decimal(text.trim()).ok_or_else(not_decimal)?;
    let (whole, fraction) = t.split_once('.').unwrap_or((&t, ""));
    // Trailing zeros change nothing: `0.1000000000000` is 0.1 exactly.
    let fraction = fraction.trim_end_matches('0');
    if t.is_empty() || t == "." || !is_digits(whole) || !is_digits(fraction) {
        return Err(not_decimal());
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

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// The plain decimal that scientific notation (`7.5e-05`, `1E+3`) is exactly
/// (`0.000075`, `1000`); text without an exponent as it is. `None` when the
/// mantissa or the exponent is not a number, or the exponent is past 999.
fn plain_decimal(text: &str) -> Option<Cow<'_, str>> {
    let Some(at) = text.find(['e', 'E']) else {
        return Some(Cow::Borrowed(text));
    };
    let (mantissa, exponent) = (&text[..at], &text[at + 1..]);
    let exponent_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if exponent_digits.is_empty() || exponent_digits.len() > 3 || !is_digits(exponent_digits) {
        return None;
    }
    let shift: i64 = exponent.parse().ok()?;
    let (sign, unsigned) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let point = whole.len() as i64 + shift;
    let (whole, fraction) = if point <= 0 {
        (
            "0".to_owned(),
            format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
        )
    } else if point as usize >= digits.len() {
        let zeros = "0".repeat(point as usize - digits.len());
        (format!("{digits}{zeros}"), String::new())
    } else {
        let (w, f) = digits.split_at(point as usize);
        (w.to_owned(), f.to_owned())
    };
    let fraction = fraction.trim_end_matches('0');
    Some(Cow::Owned(if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }))
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
    signed_pico(text, false).ok_or_else(|| format!("{text:?} is not a decimal amount"))
}

/// Parses a decimal amount as cost exports write it (signed, plain or
/// scientific), rounded half away from zero to pico-units: exports carry up to
/// 15 decimals, more than a currency's pico-unit can hold.
pub fn parse_pico_rounded(text: &str) -> Result<i128, String> {
    let trimmed = text.trim();
    (trimmed.len() <= 64)
        .then(|| signed_pico(trimmed, true))
        .flatten()
        .ok_or_else(|| format!("{text:?} is not a decimal amount"))
}

/// A signed decimal (plain or scientific) in pico-units: exactly (`None`
/// past 12 places, and a whole part required), or `round`ed half away from
/// zero at the 12th place.
fn signed_pico(text: &str, round: bool) -> Option<i128> {
    let plain = plain_decimal(text)?;
    let (negative, digits) = match plain.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, &*plain),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction = fraction.trim_end_matches('0');
    let no_whole = whole.is_empty() && (!round || fraction.is_empty());
    if no_whole || !is_digits(whole) || !is_digits(fraction) {
        return None;
    }
    if !round && fraction.len() > DECIMALS {
        return None;
    }
    let kept = &fraction[..fraction.len().min(DECIMALS)];
    let carry = i128::from(
        fraction
            .as_bytes()
            .get(DECIMALS)
            .is_some_and(|d| *d >= b'5'),
    );
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let kept: i128 = format!("{kept:0<DECIMALS$}").parse().ok()?;
    let value = whole
        .checked_mul(i128::from(PICO))?
        .checked_add(kept + carry)?;
    Some(if negative { -value } else { value })
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
    fn cost_export_amounts_round_to_pico_units() {
        let check = |text: &str, expect: Result<i128, ()>| {
            assert_eq!(parse_pico_rounded(text).map_err(|_| ()), expect, "{text}");
        };
        check("0.97", Ok(970_000_000_000));
        check("-1.5", Ok(-1_500_000_000_000));
        check("1.2E-05", Ok(12_000_000));
        check("0.0000000000015", Ok(2));
        check("-0.0000000000015", Ok(-2));
        check("0.0000000000014999", Ok(1));
        check("12", Ok(12 * i128::from(PICO)));
        check(".5", Ok(PICO as i128 / 2));
        for bad in ["", "abc", "1.2.3", "-", ".", "1e9999", "NaN", "1,5", "+-1"] {
            check(bad, Err(()));
        }
    }

    #[test]
    fn parses_price_sheet_decimals_exactly() {
        assert_eq!(parse_pico("2.50"), Ok(2_500_000_000_000));
        assert_eq!(parse_pico("0.000275"), Ok(275_000_000));
        assert_eq!(parse_pico("10"), Ok(10 * PICO));
        assert_eq!(parse_pico(".5"), Ok(PICO / 2));
        assert_eq!(parse_pico("0.000000000001"), Ok(1));
        assert_eq!(parse_pico("0.1000000000000"), Ok(PICO / 10));
        for bad in [
            "",
            "-1",
            "abc",
            ".",
            "1.2.3",
            "0.0000000000001",
            "99999999999",
            "+5",
        ] {
            assert!(parse_pico(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scientific_notation_is_the_decimal_it_exactly_is() {
        fn check(text: &str, expect: Result<i64, ()>) {
            assert_eq!(parse_pico(text).map_err(|_| ()), expect, "{text}");
        }
        check("7.5e-05", Ok(75_000_000));
        check("7.5E-05", Ok(75_000_000));
        check("2.75e-4", Ok(275_000_000));
        check("1e3", Ok(1000 * PICO));
        check("1E+3", Ok(1000 * PICO));
        check(".5e1", Ok(5 * PICO));
        check("5.e0", Ok(5 * PICO));
        check("1e-12", Ok(1));
        check("1.50000000000000e-5", Ok(15_000_000));
        check("0e999", Ok(0));
        // Past the book's precision, negative, or not a number at all.
        check("1e-13", Err(()));
        check("-1e-3", Err(()));
        check("1e30", Err(()));
        check("1e", Err(()));
        check("e5", Err(()));
        check("1e5.5", Err(()));
        check("1e1000", Err(()));
        check("1e--3", Err(()));
        check("1e-3e2", Err(()));
    }

    #[test]
    fn wide_amounts_take_scientific_notation_too() {
        assert_eq!(parse_pico_wide("2.5e2"), Ok(250 * i128::from(PICO)));
        assert_eq!(parse_pico_wide("-1e-12"), Ok(-1));
        assert!(parse_pico_wide("-+5").is_err());
        assert!(parse_pico_wide("1e-13").is_err());
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

        #[test]
        fn an_exponent_only_moves_the_point(pico in 0i64..(1i64 << 62), shift in 0i64..=12) {
            // `pico` x 10^-shift units is `pico` x 10^(12 - shift) pico-units.
            let scaled = format!("{pico}e-{shift}");
            let expect = pico.checked_mul(10i64.pow(12 - shift as u32));
            proptest::prop_assert_eq!(parse_pico(&scaled).ok(), expect);
        }
    }
}

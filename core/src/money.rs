//! Exact money: amounts as integer nano-units (10^-9) of their currency, and
//! ISO 4217 currency codes.
//!
//! People buy commitments on these figures, so no amount is ever a binary
//! float: the clouds' decimal texts are parsed digit by digit, JSON numbers
//! through their shortest decimal form, and every conversion (a look-back
//! total to a month, an hourly rate to a month) is one exact rational
//! computation rounded once, half to even, to the nano-unit. Nano-units are
//! `google.type.Money`'s precision, so what is stored is what the API says.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Nano-units in one unit of a currency.
pub const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// An exact amount of money, in nano-units of a currency kept beside it.
/// Covers ±9.2 billion units, far beyond any one recommendation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Amount(i64);

/// Why a figure is not an amount.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a decimal number.
    #[error("{0:?} is not a decimal number")]
    NotANumber(String),
    /// Beyond what an amount holds.
    #[error("{0} is out of range for an amount")]
    OutOfRange(String),
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// From nano-units.
    pub const fn from_nanos(nanos: i64) -> Self {
        Amount(nanos)
    }

    /// From whole units (e.g. dollars); `None` out of range.
    pub fn from_units(units: i64) -> Option<Self> {
        units.checked_mul(NANOS_PER_UNIT).map(Amount)
    }

    /// The amount in nano-units.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// `google.type.Money`'s split: whole units and nano-units, both of the
    /// amount's sign.
    pub const fn units_and_nanos(self) -> (i64, i32) {
        (self.0 / NANOS_PER_UNIT, (self.0 % NANOS_PER_UNIT) as i32)
    }

    /// From `google.type.Money`'s split; `None` when the parts disagree in
    /// sign, `nanos` is out of its range, or the sum is out of range.
    pub fn from_units_and_nanos(units: i64, nanos: i64) -> Option<Self> {
        if nanos.abs() >= NANOS_PER_UNIT || (units != 0 && nanos != 0 && units.signum() != nanos.signum()) {
            return None;
        }
        units.checked_mul(NANOS_PER_UNIT)?.checked_add(nanos).map(Amount)
    }

    /// Parses a decimal text as the clouds send amounts: an optional sign,
    /// digits with an optional fraction, an optional exponent (`1.5E-4`).
    /// More than nine decimals are rounded half to even.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let (mantissa, scale) = parse_decimal(text.trim()).ok_or_else(|| AmountError::NotANumber(shorten(text)))?;
        // mantissa × 10^-scale in nanos is mantissa × 10^(9 - scale).
        let exponent = 9 - scale;
        let nanos = if exponent >= 0 {
            pow10(exponent).and_then(|p| mantissa.checked_mul(p))
        } else {
            let divisor = pow10(-exponent);
            match divisor {
                Some(d) => Some(div_round_half_even(mantissa, d)),
                // Smaller than any nano-unit.
                None => Some(0),
            }
        };
        nanos.and_then(|n| i64::try_from(n).ok()).map(Amount).ok_or_else(|| AmountError::OutOfRange(shorten(text)))
    }

    /// A JSON number, read through its shortest decimal form (the digits the
    /// sender wrote for any number a double holds exactly enough):
    /// `279881.9457795231` is 279,881.945779523 and 100 nanos.
    pub fn from_json_number(value: f64) -> Result<Self, AmountError> {
        if !value.is_finite() {
            return Err(AmountError::NotANumber(value.to_string()));
        }
        // Rust prints the shortest round-trip form without an exponent.
        Amount::parse(&value.to_string())
    }

    /// `self × numerator / denominator`, computed exactly and rounded once,
    /// half to even, to the nano-unit; `None` for a zero denominator or a
    /// result out of range.
    pub fn mul_div(self, numerator: i128, denominator: i128) -> Option<Self> {
        if denominator == 0 {
            return None;
        }
        let product = i128::from(self.0).checked_mul(numerator)?;
        i64::try_from(div_round_half_even(product, denominator)).ok().map(Amount)
    }

    /// The sum; `None` out of range.
    pub fn checked_add(self, other: Amount) -> Option<Self> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// The difference; `None` out of range.
    pub fn checked_sub(self, other: Amount) -> Option<Self> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// The negated amount (a cost projection's saving).
    pub fn checked_neg(self) -> Option<Self> {
        self.0.checked_neg().map(Amount)
    }

    /// Whether the amount is above zero.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// `self / whole × 100`, a percentage for display and filtering (not an
    /// amount, so a float); 0 when `whole` is not positive.
    pub fn percent_of(self, whole: Amount) -> f64 {
        if whole.0 <= 0 { 0.0 } else { self.0 as f64 / whole.0 as f64 * 100.0 }
    }

    /// `self / other`: how many times `other` fits (break-even months);
    /// 0 when `other` is not positive.
    pub fn ratio(self, other: Amount) -> f64 {
        if other.0 <= 0 { 0.0 } else { self.0 as f64 / other.0 as f64 }
    }

    /// An approximation for charts and logs, never for sums or storage.
    pub fn approx_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_UNIT as f64
    }
}

/// The exact decimal, without trailing zeros: `1025.795138889`, `-0.5`, `12`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (units, nanos) = (abs / NANOS_PER_UNIT as u64, abs % NANOS_PER_UNIT as u64);
        if nanos == 0 {
            return write!(f, "{sign}{units}");
        }
        let fraction = format!("{nanos:09}");
        write!(f, "{sign}{units}.{}", fraction.trim_end_matches('0'))
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollars.
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a code as the clouds send it (surrounding spaces trimmed,
    /// any case); anything but three ASCII letters is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let code = text.trim().to_ascii_uppercase();
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(format!("{:?} is not an ISO 4217 currency code", shorten(text))),
        }
    }

    /// The code, e.g. `"USD"`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("three ASCII letters")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Currency::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// At most 40 characters of a figure, for error messages.
fn shorten(text: &str) -> String {
    crate::quote::at_most(text, 40)
}

/// `(mantissa, scale)` with value = mantissa × 10^-scale; `scale` may be
/// negative after an exponent. `None` for anything but a decimal number.
fn parse_decimal(text: &str) -> Option<(i128, i32)> {
    let (number, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, digits) = match number.as_bytes().first()? {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Trailing fraction zeros carry no value; dropping them keeps long
    // zero tails ("1.50000000000000000000") within range.
    let fraction = fraction.trim_end_matches('0');
    let whole = whole.trim_start_matches('0');
    if whole.len() + fraction.len() > 36 {
        return None;
    }
    let mut mantissa: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa * 10 + i128::from(b - b'0');
    }
    let scale = i32::try_from(fraction.len()).ok()?.checked_sub(exponent)?;
    Some((if negative { -mantissa } else { mantissa }, scale))
}

fn pow10(exponent: i32) -> Option<i128> {
    10i128.checked_pow(u32::try_from(exponent).ok()?)
}

/// `n / d` rounded half to even (banker's rounding: no drift in sums).
fn div_round_half_even(n: i128, d: i128) -> i128 {
    let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
    let quotient = n.div_euclid(d);
    let remainder = n.rem_euclid(d);
    match (2 * remainder).cmp(&d) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient & 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(text: &str) -> Amount {
        Amount::parse(text).unwrap()
    }

    #[test]
    fn decimal_texts_parse_exactly() {
        assert_eq!(amount("79.20").nanos(), 79_200_000_000);
        assert_eq!(amount("-0.000000001").nanos(), -1);
        assert_eq!(amount("1094.3647983296").nanos(), 1_094_364_798_330, "ten decimals round to nine");
        assert_eq!(amount("0.0000000005").nanos(), 0, "half to even: 0.5 nano rounds to 0");
        assert_eq!(amount("0.0000000015").nanos(), 2, "half to even: 1.5 nanos round to 2");
        assert_eq!(amount("1.5E-4").nanos(), 150_000);
        assert_eq!(amount("2e3").nanos(), 2_000 * NANOS_PER_UNIT);
        assert_eq!(amount(" 12 ").nanos(), 12 * NANOS_PER_UNIT);
        assert_eq!(amount(".5").nanos(), 500_000_000);
        assert_eq!(amount("1.50000000000000000000000000000000000000").nanos(), 1_500_000_000);
        for bad in ["", "-", ".", "1.2.3", "12a", "NaN", "inf", "1e", "0x10", "١٢"] {
            assert!(matches!(Amount::parse(bad), Err(AmountError::NotANumber(_))), "{bad:?}");
        }
        assert!(matches!(Amount::parse("9300000000"), Err(AmountError::OutOfRange(_))));
        assert!(matches!(Amount::parse("1e400"), Err(AmountError::OutOfRange(_)) | Err(AmountError::NotANumber(_))));
        let long = "9".repeat(5000);
        assert!(Amount::parse(&long).unwrap_err().to_string().len() < 80, "the message quotes a bounded prefix");
    }

    #[test]
    fn json_numbers_keep_the_digits_that_were_sent() {
        assert_eq!(Amount::from_json_number(279881.9457795231).unwrap().to_string(), "279881.945779523");
        assert_eq!(Amount::from_json_number(0.1).unwrap().nanos(), 100_000_000);
        assert_eq!(Amount::from_json_number(12.0785105).unwrap().to_string(), "12.0785105");
        assert!(Amount::from_json_number(f64::NAN).is_err());
        assert!(Amount::from_json_number(1e300).is_err());
    }

    #[test]
    fn sums_of_decimal_amounts_are_exact_where_floats_drift() {
        let floats: f64 = (0..10).map(|_| 0.1).sum();
        assert_ne!(floats, 1.0);
        let exact = (0..10).fold(Amount::ZERO, |sum, _| sum.checked_add(amount("0.1")).unwrap());
        assert_eq!(exact, amount("1"));
    }

    #[test]
    fn conversions_round_once_half_to_even() {
        // 1011.74 over a 30-day look-back is 1025.7919444… per 730-hour month.
        assert_eq!(amount("1011.74").mul_div(730, 720).unwrap().to_string(), "1025.791944444");
        assert_eq!(Amount::from_nanos(5).mul_div(1, 10), Some(Amount::from_nanos(0)));
        assert_eq!(Amount::from_nanos(15).mul_div(1, 10), Some(Amount::from_nanos(2)));
        assert_eq!(Amount::from_nanos(-15).mul_div(1, 10), Some(Amount::from_nanos(-2)));
        assert_eq!(Amount::from_nanos(7).mul_div(-1, 2), Some(Amount::from_nanos(-4)));
        assert_eq!(amount("1").mul_div(1, 0), None);
        assert_eq!(Amount::from_nanos(i64::MAX).mul_div(2, 1), None);
    }

    #[test]
    fn money_splits_keep_one_sign() {
        assert_eq!(amount("-1.75").units_and_nanos(), (-1, -750_000_000));
        assert_eq!(amount("0.25").units_and_nanos(), (0, 250_000_000));
        assert_eq!(Amount::from_units_and_nanos(-300, -500_000_000), Some(amount("-300.5")));
        assert_eq!(Amount::from_units_and_nanos(-1, 5), None, "signs must agree");
        assert_eq!(Amount::from_units_and_nanos(1, 1_000_000_000), None);
        assert_eq!(Amount::from_units_and_nanos(i64::MAX, 0), None);
        for text in ["0", "-0.5", "12", "1025.791944444", "-9000000000.000000001"] {
            let a = amount(text);
            assert_eq!(a.to_string(), text);
            let (units, nanos) = a.units_and_nanos();
            assert_eq!(Amount::from_units_and_nanos(units, i64::from(nanos)), Some(a));
        }
    }

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(Currency::parse("usd").unwrap(), Currency::USD);
        assert_eq!(Currency::parse(" EUR ").unwrap().as_str(), "EUR");
        for bad in ["", "US", "USDT", "U$D", "ÉUR"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(serde_json::to_string(&Currency::USD).unwrap(), "\"USD\"");
        assert!(serde_json::from_str::<Currency>("\"dollars\"").is_err());
    }
}

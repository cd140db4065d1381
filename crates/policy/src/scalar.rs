//! Typed readings of condition values: exact decimals, dates, IP networks (policy.md §2.3).
//!
//! Condition values and context values are strings; each operator family reads both sides
//! with the same function here. A value that does not read is "no match" (see condition.rs).

use std::cmp::Ordering;
use std::net::IpAddr;

/// A decimal number compared exactly (no `f64` rounding): sign, integer digits without
/// leading zeros, fraction digits without trailing zeros. Used by the `Numeric*` operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    negative: bool,
    int: String,
    frac: String,
}

impl Decimal {
    /// Reads `[+-]digits[.digits]` or `[+-].digits`; exponents are not accepted.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, text.get(1..)?),
            b'+' => (false, text.get(1..)?),
            _ => (false, text),
        };
        let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.trim_end_matches('0').to_owned();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Decimal {
            negative,
            int,
            frac,
        })
    }

    fn cmp_magnitude(&self, other: &Decimal) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An instant as nanoseconds since the Unix epoch, UTC.
pub(crate) type Instant = i128;

const NANOS: i128 = 1_000_000_000;

/// Reads a `Date*` value: a W3C/ISO 8601 date or date-time (`2018-08-10`,
/// `2018-08-10T00:00:00Z`, `…T00:00:00.5+02:00`, `…T00:00`), or, when the text has no `-`
/// and no `T`, epoch seconds (policy.md §2.3, PMapper note "datetimestamps need dashes").
/// Dates without a zone are UTC.
pub(crate) fn parse_date(text: &str) -> Option<Instant> {
    if !text.contains('-') && !text.contains(['t', 'T']) {
        let seconds: i64 = text.parse().ok()?;
        if seconds < 0 {
            return None;
        }
        return Some(i128::from(seconds) * NANOS);
    }
    let (date, time) = match text.find(['t', 'T']) {
        Some(i) => (text.get(..i)?, Some(text.get(i + 1..)?)),
        None => (text, None),
    };
    let days = parse_day(date)?;
    let (seconds, nanos, offset) = match time {
        Some(time) => parse_time(time)?,
        None => (0, 0, 0),
    };
    Some((i128::from(days) * 86_400 + i128::from(seconds) - i128::from(offset)) * NANOS + nanos)
}

/// `YYYY[-MM[-DD]]` (year may have a sign and more digits) to days since 1970-01-01.
fn parse_day(text: &str) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let mut parts = body.split('-');
    let year_text = parts.next()?;
    if year_text.len() < 4 || year_text.len() > 9 || !all_digits(year_text) {
        return None;
    }
    let mut year: i64 = year_text.parse().ok()?;
    if negative {
        year = -year;
    }
    let month = match parts.next() {
        Some(m) => fixed(m, 2, 1, 12)?,
        None => 1,
    };
    let day = match parts.next() {
        Some(d) => fixed(d, 2, 1, days_in_month(year, month))?,
        None => 1,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `hh[:mm[:ss[.fraction]]][Z|±hh[:?mm]]` to (seconds of day, nanoseconds, zone offset s).
fn parse_time(text: &str) -> Option<(i64, i128, i64)> {
    let (clock, offset) = if let Some(clock) = text.strip_suffix(['z', 'Z']) {
        (clock, 0)
    } else if let Some(i) = text.find(['+', '-']) {
        (text.get(..i)?, parse_offset(text.get(i..)?)?)
    } else {
        (text, 0)
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let hour = fixed(parts.next()?, 2, 0, 23)?;
    let minute = parts.next().map_or(Some(0), |m| fixed(m, 2, 0, 59))?;
    let second = parts.next().map_or(Some(0), |s| fixed(s, 2, 0, 59))?;
    if parts.next().is_some() {
        return None;
    }
    let nanos = if clock.contains('.') {
        if fraction.is_empty() || fraction.len() > 9 || !all_digits(fraction) {
            return None;
        }
        let scaled = format!("{fraction:0<9}");
        scaled.parse::<i128>().ok()?
    } else {
        0
    };
    Some((
        i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second),
        nanos,
        offset,
    ))
}

fn parse_offset(text: &str) -> Option<i64> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let body = text.get(1..)?;
    let (hours, minutes) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None if body.len() == 4 => (body.get(..2)?, body.get(2..)?),
        None => (body, "00"),
    };
    let hours = fixed(hours, 2, 0, 23)?;
    let minutes = fixed(minutes, 2, 0, 59)?;
    Some(sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60))
}

fn fixed(text: &str, width: usize, min: u32, max: u32) -> Option<u32> {
    if text.len() != width || !all_digits(text) {
        return None;
    }
    let n: u32 = text.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `days_from_civil`: proleptic Gregorian date to days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An IPv4 or IPv6 network for `IpAddress` / `NotIpAddress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Reads `addr` or `addr/prefix`; an address alone is `/32` or `/128` (policy.md §2.3).
    pub(crate) fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = addr.parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if all_digits(p) && p.len() <= 3 => p.parse::<u8>().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Network { address, prefix })
    }

    /// Whether `ip` lies inside this network (same address family only).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Reads a context value for `IpAddress`: an address, or a network whose address is used.
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    Network::parse(text).map(|n| n.address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn decimals_compare_exactly() {
        assert_eq!(d("10"), d("010.000"));
        assert!(d("0.1") < d("0.10000000000000000001"));
        assert!(d("-2") < d("-1.5"));
        assert!(d("-0") == d("0"));
        assert!(d("9007199254740993") > d("9007199254740992"));
        assert!(Decimal::parse("1e3").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse(".").is_none());
        assert!(Decimal::parse("abc").is_none());
    }

    #[test]
    fn dates_in_iso_and_epoch_forms() {
        let midnight = parse_date("2018-08-10T00:00:00Z").unwrap();
        assert_eq!(parse_date("1533859200"), Some(midnight));
        assert_eq!(parse_date("2018-08-10"), Some(midnight));
        assert_eq!(parse_date("2018-08-10T02:00:00+02:00"), Some(midnight));
        assert_eq!(parse_date("2018-08-09T22:00-0200"), Some(midnight));
        assert_eq!(parse_date("2018-08-10T00:00:00.000Z"), Some(midnight));
        assert!(parse_date("2018-08-10T00:00:00.5Z").unwrap() > midnight);
        assert_eq!(parse_date("1970-01-01T00:00:00Z"), Some(0));
        for bad in [
            "sdfdsf",
            "234-13",
            "9223372036854775808",
            "2018-02-30",
            "2018-08-10T25",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn networks() {
        let net = Network::parse("203.0.113.0/24").unwrap();
        assert!(net.contains("203.0.113.77".parse().unwrap()));
        assert!(!net.contains("203.0.114.1".parse().unwrap()));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("203.0.113.77".parse().unwrap()));
        assert!(Network::parse("1.2.3.4/33").is_none());
        assert!(
            Network::parse("1.2.3.4")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
    }
}

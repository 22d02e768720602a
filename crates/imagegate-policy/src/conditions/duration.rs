//! Go-compatible durations (`time.ParseDuration`, `Duration.String`) and a small RFC 3339 /
//! Go-layout time parser and formatter, written here so the crate needs no date crate.

use std::fmt::Write as _;

/// Nanoseconds per unit, as Go's `time` package defines them.
const NANOS_PER_SECOND: i128 = 1_000_000_000;
/// Seconds between 0001-01-01T00:00:00Z (Go's zero time) and the Unix epoch.
const SECONDS_ZERO_TO_UNIX: i64 = 62_135_596_800;

/// Parses a Go duration (`"1h30m"`, `"300ms"`, `"-1.5h"`, `"0"`) into nanoseconds.
pub(crate) fn parse_duration(input: &str) -> Option<i64> {
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number = &rest[..digits_end];
        rest = &rest[digits_end..];
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return None;
        }
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "h" => 3_600 * NANOS_PER_SECOND,
            _ => return None,
        };
        let int_value: i128 = if int_part.is_empty() {
            0
        } else {
            if int_part.len() > 20 {
                return None;
            }
            int_part.parse().ok()?
        };
        let mut value = int_value.checked_mul(scale)?;
        // Fractional digits beyond nanosecond precision are dropped, as Go does.
        let mut place = scale;
        for digit in frac_part.bytes().take(30) {
            place /= 10;
            if place == 0 {
                break;
            }
            value += i128::from(digit - b'0') * place;
        }
        total = total.checked_add(value)?;
        if total > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let signed = if negative { -total } else { total };
    i64::try_from(signed).ok()
}

/// Formats nanoseconds as Go's `Duration.String()` does (`"1h30m0s"`, `"300ms"`, `"0s"`).
pub(crate) fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    let abs = nanos.unsigned_abs();
    if abs < 1_000_000_000 {
        let (unit, divisor, width) = if abs < 1_000 {
            ("ns", 1, 0)
        } else if abs < 1_000_000 {
            ("µs", 1_000, 3)
        } else {
            ("ms", 1_000_000, 6)
        };
        let _ = write!(out, "{}", abs / divisor);
        push_fraction(&mut out, abs % divisor, width);
        out.push_str(unit);
        return out;
    }
    let seconds = abs / 1_000_000_000;
    let fraction = abs % 1_000_000_000;
    let hours = seconds / 3600;
    let minutes = (seconds / 60) % 60;
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{}", seconds % 60);
    push_fraction(&mut out, fraction, 9);
    out.push('s');
    out
}

fn push_fraction(out: &mut String, fraction: u64, width: usize) {
    if fraction == 0 || width == 0 {
        return;
    }
    let digits = format!("{fraction:0width$}");
    out.push('.');
    out.push_str(digits.trim_end_matches('0'));
}

/// An instant with the UTC offset it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp {
    /// Seconds since the Unix epoch (UTC).
    pub unix: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// Offset from UTC in seconds used when formatting.
    pub offset: i32,
}

impl Timestamp {
    /// Total nanoseconds since the Unix epoch.
    pub(crate) fn unix_nanos(&self) -> i128 {
        i128::from(self.unix) * NANOS_PER_SECOND + i128::from(self.nanos)
    }

    /// Builds a timestamp from nanoseconds since the Unix epoch.
    pub(crate) fn from_unix_nanos(nanos: i128, offset: i32) -> Option<Timestamp> {
        let unix = i64::try_from(nanos.div_euclid(NANOS_PER_SECOND)).ok()?;
        let sub = u32::try_from(nanos.rem_euclid(NANOS_PER_SECOND)).ok()?;
        // Keep years within 0000..=9999 so formatting stays RFC 3339.
        if !(-62_167_219_200..=253_402_300_799).contains(&unix) {
            return None;
        }
        Some(Timestamp {
            unix,
            nanos: sub,
            offset,
        })
    }

    /// The current time in UTC.
    pub(crate) fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            unix: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: since.subsec_nanos(),
            offset: 0,
        }
    }

    /// The same instant expressed in UTC.
    pub(crate) fn utc(self) -> Timestamp {
        Timestamp { offset: 0, ..self }
    }

    /// Adds a duration in nanoseconds.
    pub(crate) fn add(self, nanos: i64) -> Option<Timestamp> {
        Timestamp::from_unix_nanos(self.unix_nanos() + i128::from(nanos), self.offset)
    }

    /// Rounds down to a multiple of `nanos` since Go's zero time (as `time.Truncate`).
    pub(crate) fn truncate(self, nanos: i64) -> Option<Timestamp> {
        if nanos <= 0 {
            return Some(self);
        }
        let since_zero = self.unix_nanos() + i128::from(SECONDS_ZERO_TO_UNIX) * NANOS_PER_SECOND;
        let truncated = since_zero - since_zero.rem_euclid(i128::from(nanos));
        Timestamp::from_unix_nanos(
            truncated - i128::from(SECONDS_ZERO_TO_UNIX) * NANOS_PER_SECOND,
            self.offset,
        )
    }

    /// Formats as Go's `time.RFC3339` (`2006-01-02T15:04:05Z07:00`, no fraction).
    pub(crate) fn to_rfc3339(self) -> String {
        let local = self.unix + i64::from(self.offset);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut out = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        if self.offset == 0 {
            out.push('Z');
        } else {
            let sign = if self.offset < 0 { '-' } else { '+' };
            let abs = self.offset.unsigned_abs();
            let _ = write!(out, "{sign}{:02}:{:02}", abs / 3600, (abs / 60) % 60);
        }
        out
    }
}

/// Parses RFC 3339 (`2021-10-05T05:18:11Z`, `...11.5+02:00`).
pub(crate) fn parse_rfc3339(input: &str) -> Option<Timestamp> {
    parse_layout("2006-01-02T15:04:05Z07:00", input)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Calendar date for days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Layout tokens of Go's reference time `Mon Jan 2 15:04:05 MST 2006`, longest first.
const TOKENS: &[&str] = &[
    "January",
    "Monday",
    "Z07:00:00",
    "-07:00:00",
    "Z07:00",
    "-07:00",
    "Z0700",
    "-0700",
    "Z07",
    "-07",
    "2006",
    "Jan",
    "Mon",
    "MST",
    "002",
    "__2",
    "_2",
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "15",
    "PM",
    "pm",
    "1",
    "2",
    "3",
    "4",
    "5",
    ".000000000",
    ".999999999",
    ".000000",
    ".999999",
    ".000",
    ".999",
    ".00",
    ".99",
    ".0",
    ".9",
    ",000",
    ",999",
];

/// Parses `input` with a Go time layout (a subset: numeric fields, month and weekday names,
/// fractional seconds, numeric zones and `Z`; named zones other than UTC/GMT are rejected).
pub(crate) fn parse_layout(layout: &str, input: &str) -> Option<Timestamp> {
    let mut year: i64 = 0;
    let mut month: u32 = 1;
    let mut day: u32 = 1;
    let mut hour: u32 = 0;
    let mut minute: u32 = 0;
    let mut second: u32 = 0;
    let mut nanos: u32 = 0;
    let mut offset: i32 = 0;
    let mut pm: Option<bool> = None;
    let mut layout_rest = layout;
    let mut rest = input;
    while !layout_rest.is_empty() {
        let token = TOKENS.iter().find(|t| layout_rest.starts_with(**t));
        let Some(token) = token else {
            let c = layout_rest.chars().next()?;
            rest = rest.strip_prefix(c)?;
            layout_rest = &layout_rest[c.len_utf8()..];
            continue;
        };
        layout_rest = &layout_rest[token.len()..];
        match *token {
            "2006" => year = i64::from(take_digits(&mut rest, 4, 4)?),
            "06" => year = 1900 + i64::from(take_digits(&mut rest, 2, 2)?),
            "01" => month = take_digits(&mut rest, 2, 2)?,
            "1" => month = take_digits(&mut rest, 1, 2)?,
            "02" => day = take_digits(&mut rest, 2, 2)?,
            "2" => day = take_digits(&mut rest, 1, 2)?,
            "_2" | "__2" => {
                rest = rest.trim_start_matches(' ');
                day = take_digits(&mut rest, 1, 3)?;
            }
            "002" => {
                let _ = take_digits(&mut rest, 3, 3)?;
            }
            "15" => hour = take_digits(&mut rest, 1, 2)?,
            "03" => hour = take_digits(&mut rest, 2, 2)?,
            "3" => hour = take_digits(&mut rest, 1, 2)?,
            "04" => minute = take_digits(&mut rest, 2, 2)?,
            "4" => minute = take_digits(&mut rest, 1, 2)?,
            "05" => {
                second = take_digits(&mut rest, 2, 2)?;
                nanos = take_optional_fraction(&mut rest, layout_rest)?;
            }
            "5" => {
                second = take_digits(&mut rest, 1, 2)?;
                nanos = take_optional_fraction(&mut rest, layout_rest)?;
            }
            "PM" | "pm" => {
                let word = rest.get(..2)?;
                pm = Some(word.eq_ignore_ascii_case("pm"));
                if !word.eq_ignore_ascii_case("pm") && !word.eq_ignore_ascii_case("am") {
                    return None;
                }
                rest = &rest[2..];
            }
            "January" => {
                let idx = MONTHS.iter().position(|m| starts_with_ci(rest, m))?;
                rest = &rest[MONTHS[idx].len()..];
                month = u32::try_from(idx + 1).ok()?;
            }
            "Jan" => {
                let idx = MONTHS.iter().position(|m| starts_with_ci(rest, &m[..3]))?;
                rest = &rest[3..];
                month = u32::try_from(idx + 1).ok()?;
            }
            "Monday" => {
                let w = WEEKDAYS.iter().find(|w| starts_with_ci(rest, w))?;
                rest = &rest[w.len()..];
            }
            "Mon" => {
                WEEKDAYS.iter().find(|w| starts_with_ci(rest, &w[..3]))?;
                rest = &rest[3..];
            }
            "MST" => {
                if let Some(r) = rest
                    .strip_prefix("UTC")
                    .or_else(|| rest.strip_prefix("GMT"))
                {
                    rest = r;
                    offset = 0;
                } else {
                    return None;
                }
            }
            t if t.starts_with('Z') || t.starts_with('-') => {
                if t.starts_with('Z') && (rest.starts_with('Z') || rest.starts_with('z')) {
                    rest = &rest[1..];
                    offset = 0;
                } else {
                    offset = take_offset(&mut rest, t.trim_start_matches(['Z', '-']))?;
                }
            }
            t if t.starts_with('.') || t.starts_with(',') => {
                // An explicit fraction field in the layout.
                let sep = t.chars().next()?;
                if let Some(r) = rest.strip_prefix(sep) {
                    rest = r;
                    nanos = take_fraction_digits(&mut rest)?;
                } else if t.as_bytes().get(1) == Some(&b'0') {
                    return None;
                }
            }
            _ => return None,
        }
    }
    if !rest.is_empty() {
        return None;
    }
    if let Some(is_pm) = pm {
        if hour == 0 || hour > 12 {
            return None;
        }
        if is_pm && hour < 12 {
            hour += 12;
        } else if !is_pm && hour == 12 {
            hour = 0;
        }
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some(Timestamp {
        unix: local - i64::from(offset),
        nanos,
        offset,
    })
}

fn starts_with_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .get(..needle.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(needle))
}

fn take_digits(rest: &mut &str, min: usize, max: usize) -> Option<u32> {
    let count = rest
        .bytes()
        .take(max)
        .take_while(u8::is_ascii_digit)
        .count();
    if count < min {
        return None;
    }
    let value = rest[..count].parse().ok()?;
    *rest = &rest[count..];
    Some(value)
}

/// After seconds, Go accepts a fractional part even when the layout has none, unless the
/// layout itself continues with a fraction field.
fn take_optional_fraction(rest: &mut &str, layout_rest: &str) -> Option<u32> {
    if layout_rest.starts_with('.') || layout_rest.starts_with(',') {
        return Some(0);
    }
    let sep = rest.chars().next();
    if matches!(sep, Some('.') | Some(','))
        && rest.as_bytes().get(1).is_some_and(u8::is_ascii_digit)
    {
        *rest = &rest[1..];
        return take_fraction_digits(rest);
    }
    Some(0)
}

fn take_fraction_digits(rest: &mut &str) -> Option<u32> {
    let count = rest.bytes().take_while(u8::is_ascii_digit).count();
    if count == 0 {
        return Some(0);
    }
    let mut nanos: u32 = 0;
    let mut place: u32 = 100_000_000;
    for digit in rest[..count].bytes() {
        nanos += u32::from(digit - b'0') * place;
        place /= 10;
    }
    *rest = &rest[count..];
    Some(nanos)
}

/// Parses `±hh`, `±hhmm`, `±hh:mm`, `±hh:mm:ss` according to the layout shape.
fn take_offset(rest: &mut &str, shape: &str) -> Option<i32> {
    let sign = match rest.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    *rest = &rest[1..];
    let hours = take_digits(rest, 2, 2)?;
    let mut minutes = 0;
    let mut seconds = 0;
    match shape {
        "07" => {}
        "0700" => minutes = take_digits(rest, 2, 2)?,
        "07:00" => {
            *rest = rest.strip_prefix(':')?;
            minutes = take_digits(rest, 2, 2)?;
        }
        "07:00:00" => {
            *rest = rest.strip_prefix(':')?;
            minutes = take_digits(rest, 2, 2)?;
            *rest = rest.strip_prefix(':')?;
            seconds = take_digits(rest, 2, 2)?;
        }
        _ => return None,
    }
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = i32::try_from(hours * 3600 + minutes * 60 + seconds).ok()?;
    Some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_like_go() {
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_duration("-1.5h"), Some(-5_400_000_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("1"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration(".5s"), Some(500_000_000));
        assert_eq!(parse_duration("9999999999999999999h"), None);
        assert_eq!(format_duration(5_400_000_000_000), "1h30m0s");
        assert_eq!(format_duration(300_000_000), "300ms");
        assert_eq!(format_duration(1_500), "1.5µs");
        assert_eq!(format_duration(-60_000_000_000), "-1m0s");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = parse_rfc3339("2021-10-05T05:18:11Z").expect("valid");
        assert_eq!(t.unix, 1_633_411_091);
        assert_eq!(t.to_rfc3339(), "2021-10-05T05:18:11Z");
        let t = parse_rfc3339("2021-10-05T07:18:11.25+02:00").expect("valid");
        assert_eq!(t.unix, 1_633_411_091);
        assert_eq!(t.nanos, 250_000_000);
        assert_eq!(t.to_rfc3339(), "2021-10-05T07:18:11+02:00");
        assert!(parse_rfc3339("2021-02-30T00:00:00Z").is_none());
        assert!(parse_rfc3339("not a time").is_none());
    }
}

//! Kubernetes resource quantities (`"1Gi"`, `"500m"`, `"1e3"`) and semantic versions, the
//! two string forms Kyverno's numeric operators and arithmetic functions understand.

use std::cmp::Ordering;

/// How a quantity is written, which decides how results are formatted (as Kubernetes
/// canonicalises them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `Ki`, `Mi`, … (powers of 1024).
    Binary,
    /// `m`, `k`, `M`, … or no suffix (powers of 1000).
    Decimal,
    /// `e3`, `E6`, … (powers of ten).
    Exponent,
}

/// A parsed quantity, exact to the nano unit as Kubernetes keeps it (finer values round up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity {
    /// Value in units of 10^-9.
    pub nanos: i128,
    /// Suffix family the quantity was written in.
    pub format: Format,
}

impl Quantity {
    /// The value as a float (for comparisons with plain numbers).
    pub(crate) fn as_f64(&self) -> f64 {
        self.nanos as f64 / 1e9
    }
}

/// Parses a Kubernetes quantity; `None` when `input` is not one or is out of range.
pub(crate) fn parse_quantity(input: &str) -> Option<Quantity> {
    let s = input.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let negative = s.starts_with('-');
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_len = body
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(body.len());
    let number = &body[..number_len];
    let suffix = &body[number_len..];
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return None;
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let frac_len = i32::try_from(frac_part.len()).ok()?;
    let (exp10, pow2, format) = match suffix {
        "" => (0, 0, Format::Decimal),
        "Ki" => (0, 10, Format::Binary),
        "Mi" => (0, 20, Format::Binary),
        "Gi" => (0, 30, Format::Binary),
        "Ti" => (0, 40, Format::Binary),
        "Pi" => (0, 50, Format::Binary),
        "Ei" => (0, 60, Format::Binary),
        "n" => (-9, 0, Format::Decimal),
        "u" => (-6, 0, Format::Decimal),
        "m" => (-3, 0, Format::Decimal),
        "k" => (3, 0, Format::Decimal),
        "M" => (6, 0, Format::Decimal),
        "G" => (9, 0, Format::Decimal),
        "T" => (12, 0, Format::Decimal),
        "P" => (15, 0, Format::Decimal),
        "E" => (18, 0, Format::Decimal),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().ok()?;
            if !(-40..=40).contains(&exp) {
                return None;
            }
            (exp, 0, Format::Exponent)
        }
        _ => return None,
    };
    let mut nanos = mantissa.checked_mul(1i128.checked_shl(pow2)?)?;
    let scale = exp10 + 9 - frac_len;
    if scale >= 0 {
        nanos = nanos.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)?;
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        // Kubernetes rounds values finer than a nano unit up.
        nanos = nanos / divisor + i128::from(nanos % divisor != 0);
    }
    Some(Quantity {
        nanos: if negative { -nanos } else { nanos },
        format,
    })
}

/// Formats nanos the way Kubernetes' `Quantity.String()` canonicalises: the largest suffix
/// of the family that keeps an integer mantissa.
pub(crate) fn format_quantity(nanos: i128, format: Format) -> String {
    if nanos == 0 {
        return "0".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    if format == Format::Binary && abs.is_multiple_of(1_000_000_000) {
        let units = abs / 1_000_000_000;
        const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
        let mut k = 0;
        while k < 6 && units.is_multiple_of(1u128 << (10 * (k + 1))) {
            k += 1;
        }
        return format!("{sign}{}{}", units >> (10 * k), SUFFIXES[k]);
    }
    const DECIMAL: [&str; 10] = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];
    let mut step = 0;
    let mut mantissa = abs;
    while step < 9 && mantissa.is_multiple_of(1000) {
        mantissa /= 1000;
        step += 1;
    }
    let suffix = if format == Format::Exponent {
        let exp = 3 * i32::try_from(step).unwrap_or(0) - 9;
        if exp == 0 {
            String::new()
        } else {
            format!("e{exp}")
        }
    } else {
        DECIMAL[step].to_owned()
    };
    format!("{sign}{mantissa}{suffix}")
}

/// A semantic version (`MAJOR.MINOR.PATCH[-pre][+build]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<String>,
}

/// Parses a strict semantic version (a leading `v` is tolerated).
pub(crate) fn parse_version(input: &str) -> Option<Version> {
    let s = input.trim();
    let s = s.strip_prefix('v').unwrap_or(s);
    let s = s.split_once('+').map_or(s, |(v, _)| v);
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (s, None),
    };
    let mut parts = core.split('.');
    let major = parse_numeric_part(parts.next()?)?;
    let minor = parse_numeric_part(parts.next()?)?;
    let patch = parse_numeric_part(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    let pre = match pre {
        Some(p) => {
            let ids: Vec<String> = p.split('.').map(str::to_owned).collect();
            if ids
                .iter()
                .any(|i| i.is_empty() || !i.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                return None;
            }
            ids
        }
        None => Vec::new(),
    };
    Some(Version {
        major,
        minor,
        patch,
        pre,
    })
}

fn parse_numeric_part(part: &str) -> Option<u64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if part.len() > 1 && part.starts_with('0') {
        return None;
    }
    part.parse().ok()
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &other.pre),
            })
    }
}

fn compare_prerelease(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(n), Ok(m)) => n.cmp(&m),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// Evaluates a blang/semver range (`">=1.0.0 <2.0.0 || 3.x"`) against `version`.
/// Returns `None` when the range does not parse.
pub(crate) fn range_matches(range: &str, version: &Version) -> Option<bool> {
    let mut any = false;
    for alternative in range.split("||") {
        let mut all = true;
        let comparators: Vec<&str> = alternative.split_whitespace().collect();
        if comparators.is_empty() {
            return None;
        }
        for comparator in comparators {
            all &= comparator_matches(comparator, version)?;
        }
        any |= all;
    }
    Some(any)
}

fn comparator_matches(comparator: &str, version: &Version) -> Option<bool> {
    let op_len = comparator
        .find(|c: char| !matches!(c, '<' | '>' | '=' | '!'))
        .unwrap_or(comparator.len());
    let (op, target) = comparator.split_at(op_len);
    // x-ranges: "1.x", "1.2.x", "1.*"
    let parts: Vec<&str> = target.split('.').collect();
    if let Some(wild) = parts
        .iter()
        .position(|p| *p == "x" || *p == "X" || *p == "*")
    {
        let fixed: Vec<u64> = parts[..wild]
            .iter()
            .map(|p| parse_numeric_part(p))
            .collect::<Option<_>>()?;
        let inside = fixed
            .iter()
            .zip([version.major, version.minor, version.patch])
            .all(|(a, b)| *a == b);
        return match op {
            "" | "=" | "==" => Some(inside),
            "!" | "!=" => Some(!inside),
            _ => None,
        };
    }
    let target = parse_version(target)?;
    let ord = version.cmp(&target);
    Some(match op {
        "" | "=" | "==" => ord == Ordering::Equal,
        "!" | "!=" => ord != Ordering::Equal,
        ">" => ord == Ordering::Greater,
        ">=" => ord != Ordering::Less,
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let q = |s: &str| parse_quantity(s).map(|q| q.nanos);
        assert_eq!(q("1Gi"), Some(1_073_741_824_000_000_000));
        assert_eq!(q("1024Mi"), q("1Gi"));
        assert_eq!(q("100m"), q("0.1"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1e-12"), Some(1));
        assert!(parse_quantity("main").is_none());
        assert!(parse_quantity("1h").is_none());
        assert_eq!(
            format_quantity(2_147_483_648_000_000_000, Format::Binary),
            "2Gi"
        );
        assert_eq!(
            format_quantity(1_610_612_736_000_000_000, Format::Binary),
            "1536Mi"
        );
        assert_eq!(format_quantity(300_000_000, Format::Decimal), "300m");
        assert_eq!(format_quantity(1_500_000_000_000, Format::Decimal), "1500");
        assert_eq!(format_quantity(2_000_000_000_000, Format::Exponent), "2e3");
    }

    #[test]
    fn versions() {
        let v = parse_version("1.2.3").expect("version");
        assert_eq!(range_matches(">1.0.0 <2.0.0", &v), Some(true));
        assert_eq!(range_matches(">=2.0.0 || 1.x", &v), Some(true));
        assert_eq!(range_matches("<1.2.3", &v), Some(false));
        assert!(parse_version("1.2.3-rc.1").expect("pre") < v);
        assert_eq!(range_matches("garbage", &v), None);
    }
}

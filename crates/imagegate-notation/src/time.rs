//! Times as Unix seconds, and the textual forms the formats use (crate-private).

/// RFC 3339 text of Unix seconds (for messages).
pub(crate) fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("@{unix}"))
}

/// Reads an RFC 3339 time (JWS `io.cncf.notary.signingTime` and friends), to whole seconds.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Reads an ASN.1 GeneralizedTime body (`YYYYMMDDHHMMSS[.fraction]Z`) as Unix
/// milliseconds. RFC 3161 allows a fraction, which `der`'s strict type refuses.
pub(crate) fn parse_generalized_time_millis(body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(body).ok()?;
    let text = text.strip_suffix('Z')?;
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| whole.get(range)?.parse::<i16>().ok();
    let datetime = jiff::civil::DateTime::new(
        num(0..4)?,
        i8::try_from(num(4..6)?).ok()?,
        i8::try_from(num(6..8)?).ok()?,
        i8::try_from(num(8..10)?).ok()?,
        i8::try_from(num(10..12)?).ok()?,
        i8::try_from(num(12..14)?).ok()?,
        0,
    )
    .ok()?;
    let seconds = datetime
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp()
        .as_second();
    let millis = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<3}");
            padded.get(..3)?.parse::<i64>().ok()?
        }
        Some(_) => return None,
    };
    seconds.checked_mul(1000)?.checked_add(millis)
}

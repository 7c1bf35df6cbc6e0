//! Times as people and other services write them: RFC 3339 timestamps (read from query
//! strings, written in the command line's output and by the sandbox's fakes) or Unix
//! milliseconds.

/// Milliseconds since the Unix epoch from `"1718900000000"` or an RFC 3339 timestamp such as
/// `"2024-06-20T16:13:20Z"`, `"2024-06-20T18:13:20.5+02:00"`. A timestamp before the epoch
/// (`"1969-07-20T20:17:40Z"`) is the epoch: nothing the coordinator recorded is older.
pub fn parse_time_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{text} is too large for milliseconds since the Unix epoch"));
    }
    rfc3339_ms(text)
        .map(|ms| u64::try_from(ms).unwrap_or(0))
        .ok_or_else(|| {
        format!(
            "\"{text}\" is not a time; write an RFC 3339 timestamp such as 2024-06-20T16:13:20Z \
             or milliseconds since the Unix epoch such as 1718900000000"
        )
    })
}

/// An RFC 3339 timestamp in UTC with milliseconds, `2024-06-20T16:13:20.000Z`, of milliseconds
/// since the Unix epoch.
pub fn format_time_ms(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (rest / 3_600_000, rest / 60_000 % 60);
    let (second, millis) = (rest / 1000 % 60, rest % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Milliseconds since the Unix epoch (negative before it) of an RFC 3339 timestamp.
fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = fraction[..digits]
            .chars()
            .chain("00".chars())
            .take(3)
            .collect();
        millis = ms.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num_str(&rest[1..3])?, num_str(&rest[4..6])?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn num_str(s: &str) -> Option<i64> {
    if s.bytes().all(|c| c.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc_with_milliseconds() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time_ms(1_741_101_669_402),
            "2025-03-04T15:21:09.402Z"
        );
        assert_eq!(format_time_ms(951_868_799_000), "2000-02-29T23:59:59.000Z");
        assert_eq!(
            format_time_ms(4_107_542_400_001),
            "2100-03-01T00:00:00.001Z"
        );
    }

    #[test]
    fn unix_milliseconds_pass_through() {
        assert_eq!(parse_time_ms("1718900000000"), Ok(1_718_900_000_000));
        assert_eq!(parse_time_ms("0"), Ok(0));
    }

    #[test]
    fn rfc3339_timestamps_convert_with_their_offset() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time_ms("2024-06-20T16:13:20Z"), Ok(1_718_900_000_000));
        assert_eq!(
            parse_time_ms("2024-06-20T18:13:20.5+02:00"),
            Ok(1_718_900_000_500)
        );
        assert_eq!(
            parse_time_ms("2024-06-20T11:13:20.123456-05:00"),
            Ok(1_718_900_000_123)
        );
        assert_eq!(parse_time_ms("2000-02-29T00:00:00z"), Ok(951_782_400_000));
    }

    #[test]
    fn a_timestamp_before_the_epoch_is_the_epoch() {
        assert_eq!(parse_time_ms("1969-12-31T23:59:59Z"), Ok(0));
        assert_eq!(parse_time_ms("0105-12-17T17:45:40.65-10:54"), Ok(0));
        assert_eq!(parse_time_ms("0000-01-01T00:00:00+23:59"), Ok(0));
        assert_eq!(parse_time_ms("1970-01-01T00:00:00.001+00:00"), Ok(1));
    }

    #[test]
    fn times_format_as_rfc3339_and_read_back() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time_ms(1_718_900_000_500),
            "2024-06-20T16:13:20.500Z"
        );
        assert_eq!(format_time_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for ms in [
            0,
            1,
            86_399_999,
            951_868_799_999,
            1_718_900_000_123,
            4_102_444_800_000,
        ] {
            assert_eq!(parse_time_ms(&format_time_ms(ms)), Ok(ms), "{ms}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_an_example() {
        for bad in [
            "",
            "yesterday",
            "2024-06-20",
            "2024-06-20T16:13:20",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-06-20T16:13:20+2:00",
        ] {
            let e = parse_time_ms(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}

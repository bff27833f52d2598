//! Durations a user types: `WTENV_LOCK_TIMEOUT`, the flags `--grace`
//! and `--timeout`, and a config's `ready_timeout` and health timings. One
//! reading, and one way to say what it accepts, for all of them (a config
//! names the key it refuses, at its line and column, and also takes a
//! bare number as seconds).

use std::time::Duration;

/// What [`parse`] accepts, for the message that refuses anything else.
pub const FORMS: &str = "seconds (30) or a duration (30s, 500ms, 1m), at most a year";

/// The longest duration accepted: each is added to the clock (a
/// deadline), which a duration of `1e19` seconds would overflow. A year
/// as `1y` reads it (humantime's year: 365.25 days), so `1y` is accepted.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600 + 6 * 3600);

/// What is said of a value longer than [`MAX`].
const TOO_LONG: &str = "longer than a year (1y), the most accepted";

/// Why a value is not a duration [`read`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Neither seconds nor a duration: text of another shape, a negative
    /// number, NaN.
    NotADuration,
    /// Longer than [`MAX`] (infinity included).
    TooLong,
}

impl Refusal {
    /// What the value refused is, said after it (`"2y" is longer than
    /// a year (1y), the most accepted`): which of the two refusals.
    pub fn said(self) -> &'static str {
        match self {
            Refusal::NotADuration => "not a duration",
            Refusal::TooLong => TOO_LONG,
        }
    }

    /// The whole refusal of the value written as `shown`: which of the
    /// two it is, and what is accepted when it is not a duration
    /// (`2x is not a duration: expected seconds (30) ...`, `"2y" is
    /// longer than a year (1y), the most accepted`). A flag's and a
    /// config's words.
    pub fn of(self, shown: &str) -> String {
        match self {
            Refusal::NotADuration => format!("{shown} is {}: expected {FORMS}", self.said()),
            Refusal::TooLong => format!("{shown} is {}", self.said()),
        }
    }
}

/// A bare number of seconds, as Rust reads a decimal number (`30`,
/// `1.5`, `1e3`), or a duration (`30s`, `500ms`, `1m`, `1h 30m`), of at
/// most [`MAX`].
pub fn read(text: &str) -> Result<Duration, Refusal> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(secs) => from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|_| Refusal::NotADuration)
            .and_then(capped),
    }
}

/// A number of seconds (a config's `ready_timeout = 30`), of at most
/// [`MAX`].
pub fn from_secs(secs: f64) -> Result<Duration, Refusal> {
    if secs.is_nan() || secs < 0.0 {
        return Err(Refusal::NotADuration);
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| Refusal::TooLong)
        .and_then(capped)
}

fn capped(duration: Duration) -> Result<Duration, Refusal> {
    if duration > MAX {
        Err(Refusal::TooLong)
    } else {
        Ok(duration)
    }
}

/// A duration wtenv computed (what is left of a timeout, halved), said
/// as a person reads it: rounded to whole milliseconds below a second,
/// else to tenths of a second, then written as a value typed is
/// (humantime: `500ms`, `1s 100ms`, `30s`). A raw clock difference
/// printed as it is reads `1s 125ms 188us 982ns`.
pub fn said(duration: Duration) -> String {
    let millis = duration.as_millis();
    let rounded = if millis < 1000 {
        (duration + Duration::from_micros(500)).as_millis()
    } else {
        (millis + 50) / 100 * 100
    };
    let rounded = u64::try_from(rounded).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(rounded)).to_string()
}

/// [`read`], for a caller that says what is accepted itself.
pub fn parse(text: &str) -> Option<Duration> {
    read(text).ok()
}

/// [`parse`] as clap's value parser: a refusal says which it is and
/// what is accepted ([`Refusal::of`]).
pub fn parse_arg(text: &str) -> Result<Duration, String> {
    read(text).map_err(|why| why.of(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_computed_duration_is_said_rounded() {
        let said = |nanos: u64| super::said(Duration::from_nanos(nanos));
        // A grace computed from what is left of `down`'s timeout.
        assert_eq!(said(1_125_188_982), "1s 100ms");
        assert_eq!(said(3_984_102_190), "4s");
        assert_eq!(said(1_500_000_000), "1s 500ms");
        assert_eq!(said(30_000_000_000), "30s");
        assert_eq!(said(499_600_000), "500ms");
        assert_eq!(said(12_345_678), "12ms");
        assert_eq!(said(999_700_000), "1s");
        assert_eq!(said(0), "0s");
        for nanos in [1, 1_001, 999_999_999, 1_000_000_001, 61_234_567_891] {
            let text = said(nanos);
            assert!(!text.contains("us") && !text.contains("ns"), "{text}");
        }
    }

    #[test]
    fn seconds_and_durations_are_read_and_nothing_else() {
        assert_eq!(parse("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse(" 1m "), Some(Duration::from_secs(60)));
        assert_eq!(parse("1y"), Some(MAX));
        assert_eq!(parse("365days"), Some(Duration::from_secs(365 * 24 * 3600)));
        for bad in [
            "",
            "banana",
            "-1",
            "-1s",
            "inf",
            "NaN",
            "10 parsecs",
            "1e19",
            "366days",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(read("-1"), Err(Refusal::NotADuration));
        assert_eq!(read("nan"), Err(Refusal::NotADuration));
        assert_eq!(read("inf"), Err(Refusal::TooLong));
        assert_eq!(read("366days"), Err(Refusal::TooLong));
        assert_eq!(from_secs(0.5), Ok(Duration::from_millis(500)));
        assert_eq!(from_secs(-0.5), Err(Refusal::NotADuration));
        assert_eq!(from_secs(f64::NAN), Err(Refusal::NotADuration));
        assert_eq!(from_secs(1e300), Err(Refusal::TooLong));
        assert_eq!(
            parse_arg("banana"),
            Err("banana is not a duration: expected seconds (30) or a duration (30s, 500ms, 1m), at most a year".into())
        );
        assert_eq!(
            parse_arg("1y 1s"),
            Err("1y 1s is longer than a year (1y), the most accepted".into())
        );
    }
}

//! Durations a user types: `WTENV_LOCK_TIMEOUT`, and the flags `--grace`
//! and `--timeout`. One reading, and one way to say what it accepts, for
//! all of them. (Config durations such as `ready_timeout` are the
//! config's own: `humantime` text, refused with the key named, of at most
//! [`MAX`] too.)

use std::time::Duration;

/// What [`parse`] accepts, for the message that refuses anything else.
pub const FORMS: &str = "seconds (30) or a duration (30s, 500ms, 1m), at most a year";

/// The longest duration accepted, here and in a config (`ready_timeout`,
/// a health check's times): each is added to the clock (a deadline),
/// which a duration of `1e19` seconds would overflow.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// A bare number of seconds (`30`, `1.5`), or a duration (`30s`,
/// `500ms`, `1m`, `1h 30m`), of at most [`MAX`].
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let duration = match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).ok(),
        Err(_) => humantime::parse_duration(text).ok(),
    };
    duration.filter(|d| *d <= MAX)
}

/// [`parse`] as clap's value parser: a refusal says what is accepted.
pub fn parse_arg(text: &str) -> Result<Duration, String> {
    parse(text).ok_or_else(|| format!("expected {FORMS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_durations_are_read_and_nothing_else() {
        assert_eq!(parse("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse(" 1m "), Some(Duration::from_secs(60)));
        assert_eq!(parse("365days"), Some(MAX));
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
        assert_eq!(
            parse_arg("banana"),
            Err("expected seconds (30) or a duration (30s, 500ms, 1m), at most a year".into())
        );
    }
}

//! Microseconds since the Unix epoch, the journal's time (`recorded_at_us`,
//! `started_at_us`), to and from `SystemTime`, before 1970 included.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `time` in microseconds since the Unix epoch (negative before it).
pub fn to_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_micros() as i64,
        Err(before) => -(before.duration().as_micros() as i64),
    }
}

/// The time `us` microseconds after the Unix epoch (before it if negative).
pub fn to_system_time(us: i64) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_on_both_sides_of_the_epoch() {
        for us in [
            0,
            1,
            -1,
            1_764_288_000_123_456,
            -5_000_000_000_000,
            i64::MAX / 2,
        ] {
            assert_eq!(to_micros(to_system_time(us)), us, "{us}");
        }
    }
}

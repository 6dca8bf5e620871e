//! Cron schedules in a time zone: the ticks of a `periodic` block as Unix milliseconds.
//!
//! Expressions are parsed by `croner` (5 fields, an optional leading seconds field, `@daily`-style
//! shortcuts; a 7th year field as Nomad's cronexpr allows is accepted and ignored) and evaluated
//! on `jiff` time zones, so a tick is always a real instant: in a spring-forward gap a fixed-time
//! job runs at the first instant after the gap, and in a fall-back fold it runs once, at the first
//! pass. Interval jobs (`*/15 * * * *`) follow the wall clock.

use std::cmp::Ordering;

use croner::errors::CronError;
use croner::parser::{CronParser, Seconds};
use croner::{CivilDate, CivilDateTime, CivilTime, Cron, CronDateTime, Resolution, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// A parsed `periodic` schedule: one or more cron expressions in one time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    crons: Vec<Cron>,
    tz: TimeZone,
}

/// Why a schedule could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("periodic block has no cron expression (expected `cron` or `crons`)")]
    NoCron,
    #[error("invalid cron expression \"{expr}\": {message}")]
    Cron { expr: String, message: String },
    #[error("unknown time zone \"{0}\" (expected an IANA name such as `Europe/Berlin` or `UTC`)")]
    TimeZone(String),
}

impl Schedule {
    /// Parses `crons` in `time_zone` (empty means UTC, `Local` the server's own zone).
    pub fn new(crons: &[String], time_zone: &str) -> Result<Self, ScheduleError> {
        if crons.is_empty() {
            return Err(ScheduleError::NoCron);
        }
        let tz = match time_zone.trim() {
            "" | "UTC" | "utc" | "Etc/UTC" => TimeZone::UTC,
            "Local" => TimeZone::system(),
            name => TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.to_string()))?,
        };
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let mut parsed = Vec::with_capacity(crons.len());
        for expr in crons {
            let fields: Vec<&str> = expr.split_whitespace().collect();
            // Nomad's cronexpr accepts a trailing year field; croner does not, so it is dropped.
            let base = if fields.len() == 7 {
                fields[..6].join(" ")
            } else {
                expr.trim().to_string()
            };
            let cron = std::panic::catch_unwind(|| parser.parse(&base))
                .map_err(|_| ScheduleError::Cron {
                    expr: expr.clone(),
                    message: "cannot be parsed".into(),
                })?
                .map_err(|e| ScheduleError::Cron {
                    expr: expr.clone(),
                    message: e.to_string(),
                })?;
            parsed.push(cron);
        }
        Ok(Schedule { crons: parsed, tz })
    }

    /// Builds the schedule of a job's `periodic` block.
    pub fn of(periodic: &nomos_api::Periodic) -> Result<Self, ScheduleError> {
        Self::new(&periodic.crons, &periodic.time_zone)
    }

    /// The first tick strictly after `after_ms` (any of the expressions), if one exists.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = Instant::from_ms(after_ms, &self.tz)?;
        self.crons
            .iter()
            .filter_map(|c| c.find_next_occurrence(&start, false).ok())
            .map(|i| i.ts.as_millisecond())
            .min()
    }

    /// The last tick at or before `at_ms`, if one exists.
    pub fn last_at_or_before(&self, at_ms: i64) -> Option<i64> {
        let start = Instant::from_ms(at_ms, &self.tz)?;
        self.crons
            .iter()
            .filter_map(|c| c.find_previous_occurrence(&start, true).ok())
            .map(|i| i.ts.as_millisecond())
            .max()
    }

    /// Whether `ms` is exactly a tick of this schedule.
    pub fn is_tick(&self, ms: i64) -> bool {
        self.next_after(ms - 1) == Some(ms)
    }

    /// The ticks in `(after_ms, until_ms]`, at most `limit` of them.
    pub fn ticks_between(&self, after_ms: i64, until_ms: i64, limit: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = after_ms;
        while out.len() < limit {
            match self.next_after(t) {
                Some(n) if n <= until_ms => {
                    out.push(n);
                    t = n;
                }
                _ => break,
            }
        }
        out
    }
}

/// An instant with the time zone it is read in: what croner searches over.
#[derive(Debug, Clone)]
struct Instant {
    ts: Timestamp,
    tz: TimeZone,
}

impl Instant {
    fn from_ms(ms: i64, tz: &TimeZone) -> Option<Self> {
        // Cron resolution is one second; ticks are whole seconds.
        let secs = ms.div_euclid(1000);
        Some(Instant {
            ts: Timestamp::from_second(secs).ok()?,
            tz: tz.clone(),
        })
    }
}

impl CronDateTime for Instant {
    fn to_civil(&self) -> CivilDateTime {
        let dt = self.tz.to_datetime(self.ts);
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(
                i32::from(dt.year()),
                dt.month() as u32,
                dt.day() as u32,
            ),
            CivilTime::from_parts_unchecked(
                dt.hour() as u32,
                dt.minute() as u32,
                dt.second() as u32,
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        let dt = self.tz.to_datetime(self.ts);
        Weekday::from_days_from_sunday(dt.weekday().to_sunday_zero_offset() as u32)
    }

    fn resolve_civil(&self, civil: CivilDateTime) -> Result<Resolution<Self>, CronError> {
        let year = i16::try_from(civil.year()).map_err(|_| CronError::InvalidDate)?;
        let dt = jiff::civil::DateTime::new(
            year,
            civil.month() as i8,
            civil.day() as i8,
            civil.hour() as i8,
            civil.minute() as i8,
            civil.second() as i8,
            0,
        )
        .map_err(|_| CronError::InvalidDate)?;
        let amb = self.tz.to_ambiguous_timestamp(dt);
        let wrap = |ts: Timestamp| Instant {
            ts,
            tz: self.tz.clone(),
        };
        Ok(match amb.offset() {
            AmbiguousOffset::Unambiguous { .. } => {
                Resolution::Single(wrap(amb.unambiguous().map_err(|_| CronError::InvalidTime)?))
            }
            AmbiguousOffset::Fold { .. } => {
                let earlier = amb.earlier().map_err(|_| CronError::InvalidTime)?;
                let later = amb.later().map_err(|_| CronError::InvalidTime)?;
                Resolution::Ambiguous(wrap(earlier), wrap(later))
            }
            AmbiguousOffset::Gap { .. } => Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        let ts = self
            .ts
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()?;
        Some(Instant {
            ts,
            tz: self.tz.clone(),
        })
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.ts.cmp(&other.ts)
    }
}

//! Cron schedules in a time zone: the ticks of a `periodic` block as Unix milliseconds.
//!
//! Expressions are read as Nomad reads them ([`nomos_api::cron`]: 5 fields, 6 with a year, 7
//! with a second and a year, `@daily`-style shortcuts) and parsed by `croner`. A tick is every
//! instant whose wall-clock time in the `time_zone` matches, as Nomad's periodic scheduler
//! has it: a time that a spring-forward change skips does not run that day, and a time that a
//! fall-back change repeats runs twice. Each stretch of time with one UTC offset is searched
//! with that fixed offset, so the search never meets a gap or a fold.

use std::cmp::Ordering;

use croner::errors::CronError;
use croner::{CivilDate, CivilDateTime, CivilTime, Cron, CronDateTime, Resolution, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// How many stretches of one UTC offset a search crosses before it gives up (two a year in
/// zones with daylight saving: centuries).
const MAX_OFFSET_STRETCHES: usize = 1000;

/// After its last match in one stretch, a search still looks at the next stretch when it
/// begins within this many seconds (a match could exist under the other offset only there).
const NEAR_TRANSITION_SECS: i64 = 2 * 86_400;

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
        let mut parsed = Vec::with_capacity(crons.len());
        for expr in crons {
            let cron = nomos_api::cron::parse(expr).map_err(|message| ScheduleError::Cron {
                expr: expr.clone(),
                message,
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
        let from = Timestamp::from_second(after_ms.div_euclid(1000).checked_add(1)?).ok()?;
        self.crons
            .iter()
            .filter_map(|c| self.search(c, from, Direction::Forward))
            .map(|ts| ts.as_millisecond())
            .min()
    }

    /// The last tick at or before `at_ms`, if one exists.
    pub fn last_at_or_before(&self, at_ms: i64) -> Option<i64> {
        let from = Timestamp::from_second(at_ms.div_euclid(1000)).ok()?;
        self.crons
            .iter()
            .filter_map(|c| self.search(c, from, Direction::Backward))
            .map(|ts| ts.as_millisecond())
            .max()
    }

    /// The first instant at or after (forward) or at or before (backward) `from` whose wall
    /// clock matches `cron`: searched one stretch of constant UTC offset at a time.
    fn search(&self, cron: &Cron, mut from: Timestamp, dir: Direction) -> Option<Timestamp> {
        for _ in 0..MAX_OFFSET_STRETCHES {
            let offset = self.tz.to_offset(from);
            let start = Instant {
                ts: from,
                tz: TimeZone::fixed(offset),
            };
            // Where this offset stops applying: the next transition (forward), or the one that
            // began it (backward).
            let edge = match dir {
                Direction::Forward => self.tz.following(from).next().map(|t| t.timestamp()),
                Direction::Backward => self
                    .tz
                    .preceding(from.checked_add(SignedDuration::from_secs(1)).ok()?)
                    .next()
                    .map(|t| t.timestamp()),
            };
            let found = match dir {
                Direction::Forward => cron.find_next_occurrence(&start, true),
                Direction::Backward => cron.find_previous_occurrence(&start, true),
            };
            let within = |ts: Timestamp| match (dir, edge) {
                (_, None) => true,
                (Direction::Forward, Some(e)) => ts < e,
                (Direction::Backward, Some(e)) => ts >= e,
            };
            match (found, edge) {
                (Ok(i), _) if within(i.ts) => return Some(i.ts),
                (Err(_), Some(e))
                    if (e.as_second() - from.as_second()).abs() > NEAR_TRANSITION_SECS =>
                {
                    return None
                }
                (_, None) => return None,
                (_, Some(e)) => {
                    from = match dir {
                        Direction::Forward => e,
                        Direction::Backward => e.checked_sub(SignedDuration::from_secs(1)).ok()?,
                    };
                }
            }
        }
        None
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

/// Which way a search goes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

/// An instant with the time zone it is read in: what croner searches over (always a fixed
/// offset here, so its wall clock has no gaps or folds).
#[derive(Debug, Clone)]
struct Instant {
    ts: Timestamp,
    tz: TimeZone,
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

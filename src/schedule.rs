//! Calling windows: when a country's numbers may be called, from the job's
//! `[schedule]` (local windows, weekdays, holidays, a campaign's first and
//! last moment), in each country's time zone (IANA names, with jiff's
//! bundled or the system's database). Pure: the time is given.

use std::collections::HashMap;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// How far ahead the next opening is looked for.
const LOOK_AHEAD_DAYS: i32 = 400;

/// No batch is claimed this close to its window's end, unless the job says
/// otherwise: the vendor dials a batch's numbers over the minutes after it
/// accepts the task, and documents neither how fast nor how long. Ten
/// minutes covers a batch of 200 dialled on twenty lines at about a
/// minute per number; larger batches or fewer lines need more.
pub const DEFAULT_STOP_BEFORE_CLOSE: std::time::Duration = std::time::Duration::from_secs(600);

/// When calls may be made; without one, always.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The zone of countries without an override.
    pub timezone: TimeZone,
    /// Per-country zones (ISO code → zone).
    pub countries: HashMap<String, TimeZone>,
    /// Local windows, start inclusive, end exclusive, start before end.
    pub windows: Vec<(Time, Time)>,
    /// Windows of their own for some countries (ISO code) or zones (IANA
    /// name), for stricter local rules: a country's own win over its
    /// zone's, which win over `windows`.
    pub windows_of: HashMap<String, Vec<(Time, Time)>>,
    /// Allowed weekdays.
    pub days: Vec<Weekday>,
    /// Local dates with no calls.
    pub holidays: Vec<Date>,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    /// No batch is claimed when its window (or the campaign) ends sooner
    /// than this (ms): the vendor dials a batch over the minutes after.
    pub stop_before_close_ms: i64,
}

impl Schedule {
    /// The zone of a country's numbers without zones of their own (a batch
    /// planned before numbers had zones): its pin, else `timezone`.
    fn zone(&self, country: &str) -> &TimeZone {
        self.countries.get(country).unwrap_or(&self.timezone)
    }

    /// The zone a country is pinned to in `countries`, if any.
    pub fn pinned(&self, country: &str) -> Option<&TimeZone> {
        self.countries.get(country)
    }

    /// The windows of `country`'s numbers in `zone`.
    fn windows(&self, country: &str, zone: &TimeZone) -> &[(Time, Time)] {
        self.windows_of
            .get(country)
            .or_else(|| zone.iana_name().and_then(|name| self.windows_of.get(name)))
            .unwrap_or(&self.windows)
    }

    /// The country and zones a window key names; none for numbers nothing
    /// placed (never open).
    fn key_zones(&self, key: &str) -> (String, Vec<TimeZone>) {
        let (country, zones) = key_parts(key);
        if zones == UNPLACED {
            return (country.to_owned(), Vec::new());
        }
        let zones: Vec<TimeZone> = zones
            .split('&')
            .filter(|zone| !zone.is_empty())
            .filter_map(|zone| TimeZone::get(zone).ok())
            .collect();
        if zones.is_empty() {
            (country.to_owned(), vec![self.zone(country).clone()])
        } else {
            (country.to_owned(), zones)
        }
    }

    /// Until when (Unix ms) a batch of window key `key` may be claimed from
    /// `at_ms` on. A batch's window key is its country, then a space and
    /// the zones its numbers may be in, joined by `&` (`US
    /// America/Boise&America/Los_Angeles`), or its country alone for
    /// numbers without zones of their own (the country's pin in
    /// `countries`, else `timezone`). It may be claimed
    /// while every one of its zones is inside a window, and not in the last
    /// `stop_before_close` of any of them; `None` when no batch may be
    /// claimed then.
    pub fn open_until(&self, key: &str, at_ms: i64) -> Option<i64> {
        let (country, zones) = self.key_zones(key);
        zones
            .iter()
            .map(|zone| self.open_until_in(&country, zone, at_ms))
            .collect::<Option<Vec<i64>>>()?
            .into_iter()
            .min()
    }

    /// [`Schedule::open_until`] for one zone: the end of the window
    /// `at_ms` is in (windows that touch count as one), less
    /// `stop_before_close`.
    fn open_until_in(&self, country: &str, zone: &TimeZone, at_ms: i64) -> Option<i64> {
        let at = Timestamp::from_millisecond(at_ms).ok()?;
        if self.not_before.is_some_and(|start| at < start)
            || self.not_after.is_some_and(|end| at >= end)
        {
            return None;
        }
        let local = at.to_zoned(zone.clone());
        if !self.day_allowed(local.date()) {
            return None;
        }
        let now = local.time();
        let windows = self.windows(country, zone);
        let (_, mut end) = *windows
            .iter()
            .find(|(start, end)| *start <= now && now < *end)?;
        // A window that starts where this one ends continues it.
        while let Some((_, later)) = windows
            .iter()
            .find(|(start, later)| *start <= end && end < *later)
        {
            end = *later;
        }
        // The first time the local clock reads `end` from now on: on a day
        // whose clock goes back, a time of the repeated hour comes twice.
        let closes = instants(&local, end)
            .into_iter()
            .find(|closes| *closes > at_ms)?;
        let closes = match self.not_after {
            Some(last) => closes.min(last.as_millisecond()),
            None => closes,
        };
        let until = closes - self.stop_before_close_ms;
        (at_ms < until).then_some(until)
    }

    /// The first moment at or after `after_ms` when a batch of window key
    /// `key` may be claimed (every one of its zones inside a window), if
    /// any within a year or so.
    pub fn next_open(&self, key: &str, after_ms: i64) -> Option<i64> {
        let (country, zones) = self.key_zones(key);
        let mut at = after_ms;
        // Each turn moves to the latest of the zones' next openings; the
        // zones' windows line up within a few turns, or never.
        for _ in 0..1_000 {
            if self.open_until(key, at).is_some() {
                return Some(at);
            }
            let next = zones
                .iter()
                .map(|zone| self.next_open_in(&country, zone, at))
                .collect::<Option<Vec<i64>>>()?
                .into_iter()
                .max()?;
            at = if next > at {
                next
            } else {
                // Each zone opens now, but not for long enough together:
                // look past the earliest close.
                zones
                    .iter()
                    .filter_map(|zone| self.open_until_in(&country, zone, at))
                    .min()
                    .map_or(at + 1_000, |until| until.max(at + 1_000))
            };
        }
        None
    }

    /// [`Schedule::next_open`] for one zone.
    fn next_open_in(&self, country: &str, zone: &TimeZone, after_ms: i64) -> Option<i64> {
        let mut after = Timestamp::from_millisecond(after_ms).ok()?;
        if let Some(start) = self.not_before.filter(|start| after < *start) {
            after = start;
        }
        if self
            .open_until_in(country, zone, after.as_millisecond())
            .is_some()
        {
            return Some(after.as_millisecond());
        }
        let local = after.to_zoned(zone.clone());
        let mut day = local.date();
        for _ in 0..LOOK_AHEAD_DAYS {
            if self.day_allowed(day) {
                let mut starts: Vec<Time> = self
                    .windows(country, zone)
                    .iter()
                    .map(|(start, _)| *start)
                    .collect();
                starts.sort();
                let local_day = day.to_zoned(zone.clone()).ok()?;
                let mut opens: Vec<i64> = starts
                    .into_iter()
                    .flat_map(|start| instants(&local_day, start))
                    .collect();
                opens.sort_unstable();
                for at in opens {
                    if at >= after.as_millisecond()
                        && self.open_until_in(country, zone, at).is_some()
                    {
                        return Some(at);
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// When the last of `batches` (country, how many) would be sent, at
    /// `per_second` requests shared by the countries whose window is open,
    /// starting at `now_ms`: the time sending takes, folded into the
    /// calling windows. `None` when some country's window never opens
    /// again. An estimate, as a check reports it: open countries share the
    /// rate in proportion to what each has left.
    pub fn last_send(
        &self,
        batches: &[(String, u64)],
        per_second: f64,
        now_ms: i64,
    ) -> Option<i64> {
        let mut left: Vec<(&str, f64)> = batches
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(country, n)| (country.as_str(), *n as f64))
            .collect();
        let mut at = now_ms;
        // Each turn ends at a window's edge, or with a country done.
        for _ in 0..100_000 {
            left.retain(|(_, n)| *n > 1e-9);
            if left.is_empty() {
                return Some(at);
            }
            let open: Vec<(usize, i64)> = left
                .iter()
                .enumerate()
                .filter_map(|(i, (country, _))| {
                    self.open_until(country, at).map(|until| (i, until))
                })
                .collect();
            if open.is_empty() {
                at = left
                    .iter()
                    .map(|(country, _)| self.next_open(country, at))
                    .collect::<Option<Vec<_>>>()?
                    .into_iter()
                    .min()?;
                continue;
            }
            let waiting: f64 = open.iter().map(|(i, _)| left[*i].1).sum();
            let edge = open.iter().map(|(_, until)| *until).min()?;
            let room = (edge - at) as f64 / 1000.0 * per_second;
            let (sent, until) = if room >= waiting {
                (waiting, at + (waiting / per_second * 1000.0).ceil() as i64)
            } else {
                (room, edge)
            };
            for (i, _) in &open {
                left[*i].1 -= left[*i].1 / waiting * sent;
            }
            at = until.max(at + 1);
        }
        None
    }

    fn day_allowed(&self, day: Date) -> bool {
        self.days.contains(&day.weekday()) && !self.holidays.contains(&day)
    }
}

/// Where a window key's calling window stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Open: batches are claimed until then (Unix ms).
    OpenUntil(i64),
    /// Closed: it next opens then.
    OpensAt(i64),
    /// Closed, and no window opens within a year.
    Never,
}

impl Schedule {
    /// Where `key`'s window stands at `now_ms`.
    pub fn state(&self, key: &str, now_ms: i64) -> WindowState {
        match (self.open_until(key, now_ms), self.next_open(key, now_ms)) {
            (Some(until), _) => WindowState::OpenUntil(until),
            (None, Some(opens)) => WindowState::OpensAt(opens),
            (None, None) => WindowState::Never,
        }
    }
}

/// The zones of a batch whose numbers nothing placed (no zone of their
/// own, no pin, no prefix or country the built-in map knows): they are
/// never called in a guessed zone, and wait.
pub const UNPLACED: &str = "?";

/// A window key's country and zones (joined by `&`; empty for a batch
/// planned before numbers had zones).
pub fn key_parts(key: &str) -> (&str, &str) {
    key.split_once(' ').unwrap_or((key, ""))
}

/// A window key as people read it: `US (America/Boise, America/Los_Angeles)`.
pub fn describe_key(key: &str) -> String {
    match key_parts(key) {
        (country, UNPLACED) => format!(
            "{country} (no time zone known: they wait for a pin in [schedule] countries or a timezone column)"
        ),
        (country, "") => country.to_owned(),
        (country, zones) => format!("{country} ({})", zones.replace('&', ", ")),
    }
}

/// The moments (Unix ms) when the clock of `local`'s zone reads `time` on
/// `local`'s day: one, or two in an hour the clock repeats. For a time the
/// clock skips (it springs forward), the moment it jumps past it.
fn instants(local: &Zoned, time: Time) -> Vec<i64> {
    let zone = local.time_zone();
    let ambiguous = zone.to_ambiguous_zoned(local.date().to_datetime(time));
    let gap = matches!(ambiguous.offset(), jiff::tz::AmbiguousOffset::Gap { .. });
    let mut moments: Vec<i64> = [ambiguous.clone().earlier(), ambiguous.later()]
        .into_iter()
        .filter_map(|zoned| zoned.ok())
        .map(|zoned| zoned.timestamp().as_millisecond())
        .collect();
    moments.sort_unstable();
    moments.dedup();
    if gap {
        // Both readings lie on either side of the jump: it is the
        // transition before the later one.
        let jump = moments
            .last()
            .and_then(|last| Timestamp::from_millisecond(*last).ok())
            .and_then(|last| zone.preceding(last).next())
            .map(|transition| transition.timestamp().as_millisecond());
        return jump.into_iter().collect();
    }
    moments
}

/// Parses `HH:MM-HH:MM` (seconds allowed: `HH:MM:SS`), start before end.
pub fn parse_window(raw: &str) -> Result<(Time, Time), String> {
    let (start, end) = raw
        .split_once('-')
        .ok_or_else(|| format!("{raw:?} is not a window like \"09:00-20:00\""))?;
    let time = |part: &str| {
        part.trim()
            .parse::<Time>()
            .map_err(|_| format!("{raw:?}: {:?} is not a time of day like 09:00", part.trim()))
    };
    let (start, end) = (time(start)?, time(end)?);
    if start >= end {
        return Err(format!(
            "{raw:?}: a window must end after it starts on the same day (write one past midnight as two windows)"
        ));
    }
    Ok((start, end))
}

/// Parses a weekday's first three letters (`mon`, …).
pub fn parse_day(raw: &str) -> Result<Weekday, String> {
    Ok(match raw.trim().to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => {
            return Err(format!(
                "{raw:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"
            ))
        }
    })
}

/// An IANA time zone by name.
pub fn parse_zone(raw: &str) -> Result<TimeZone, String> {
    TimeZone::get(raw.trim())
        .map_err(|_| format!("{raw:?} is not a time zone (an IANA name such as Asia/Hong_Kong)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(raw: &str) -> i64 {
        raw.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn hong_kong_office_hours() -> Schedule {
        Schedule {
            timezone: parse_zone("Asia/Hong_Kong").unwrap(),
            countries: HashMap::from([("US".to_owned(), parse_zone("America/New_York").unwrap())]),
            windows: vec![
                parse_window("09:00-12:00").unwrap(),
                parse_window("14:00-20:00").unwrap(),
            ],
            windows_of: HashMap::new(),
            days: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|d| parse_day(d).unwrap())
                .collect(),
            holidays: vec!["2026-12-25".parse().unwrap()],
            not_before: None,
            not_after: Some("2027-01-31T00:00:00Z".parse().unwrap()),
            stop_before_close_ms: 0,
        }
    }

    #[test]
    fn sending_time_is_folded_into_the_windows() {
        let s = hong_kong_office_hours();
        let hk = |n: u64| vec![("HK".to_owned(), n)];
        // Monday 19:00 in Hong Kong: an hour of the window is left.
        let monday_7pm = ms("2026-11-30T11:00:00Z");
        // Half an hour of requests at one a second ends inside it.
        assert_eq!(
            s.last_send(&hk(1800), 1.0, monday_7pm),
            Some(ms("2026-11-30T11:30:00Z"))
        );
        // Two hours of them: one tonight, one from 09:00 on Tuesday.
        assert_eq!(
            s.last_send(&hk(7200), 1.0, monday_7pm),
            Some(ms("2026-12-01T02:00:00Z"))
        );
        // Five hours: an hour tonight, three on Tuesday morning, an hour
        // after lunch.
        assert_eq!(
            s.last_send(&hk(18000), 1.0, monday_7pm),
            Some(ms("2026-12-01T07:00:00Z"))
        );
        // Hong Kong and New York share the rate only while both are open:
        // at 19:00 in Hong Kong it is 06:00 in New York, closed until 09:00
        // (14:00 UTC), so the hour in Hong Kong is Hong Kong's alone.
        let both = vec![("HK".to_owned(), 3600), ("US".to_owned(), 1800)];
        assert_eq!(
            s.last_send(&both, 1.0, monday_7pm),
            Some(ms("2026-11-30T14:30:00Z"))
        );
        // After `not_after`, nothing opens again.
        assert_eq!(s.last_send(&hk(1), 1.0, ms("2027-02-01T02:00:00Z")), None);
        assert_eq!(s.last_send(&[], 1.0, monday_7pm), Some(monday_7pm));
    }

    #[test]
    fn a_window_is_open_in_its_countrys_local_time() {
        let s = hong_kong_office_hours();
        // Monday 2026-11-30 10:00 in Hong Kong is 02:00 UTC.
        assert_eq!(
            s.open_until("HK", ms("2026-11-30T02:00:00Z")),
            Some(ms("2026-11-30T04:00:00Z"))
        );
        // 13:00 local: between the windows.
        assert_eq!(s.open_until("HK", ms("2026-11-30T05:00:00Z")), None);
        // The same instant is 21:00 on Sunday in New York: closed.
        assert_eq!(s.open_until("US", ms("2026-11-30T02:00:00Z")), None);
        // A holiday and a Saturday are closed.
        assert_eq!(s.open_until("HK", ms("2026-12-25T02:00:00Z")), None);
        assert_eq!(s.open_until("HK", ms("2026-12-05T02:00:00Z")), None);
        // After not_after, nothing.
        assert_eq!(s.open_until("HK", ms("2027-02-01T02:00:00Z")), None);
    }

    #[test]
    fn the_next_opening_skips_closed_hours_days_and_holidays() {
        let s = hong_kong_office_hours();
        // 13:00 local Monday → 14:00 local.
        assert_eq!(
            s.next_open("HK", ms("2026-11-30T05:00:00Z")),
            Some(ms("2026-11-30T06:00:00Z"))
        );
        // Thursday 24 Dec 21:00 local → Monday 28 Dec 09:00 (25th a holiday, then the weekend).
        assert_eq!(
            s.next_open("HK", ms("2026-12-24T13:00:00Z")),
            Some(ms("2026-12-28T01:00:00Z"))
        );
        // New York: Monday 09:00 EST is 14:00 UTC.
        assert_eq!(
            s.next_open("US", ms("2026-11-30T02:00:00Z")),
            Some(ms("2026-11-30T14:00:00Z"))
        );
        // After the campaign's end there is no next opening.
        assert_eq!(s.next_open("HK", ms("2027-01-31T00:00:00Z")), None);
    }

    fn every_day(zone: &str, window: &str) -> Schedule {
        Schedule {
            timezone: parse_zone(zone).unwrap(),
            countries: HashMap::new(),
            windows: vec![parse_window(window).unwrap()],
            windows_of: HashMap::new(),
            days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .map(|d| parse_day(d).unwrap())
                .collect(),
            holidays: Vec::new(),
            not_before: None,
            not_after: None,
            stop_before_close_ms: 0,
        }
    }

    #[test]
    fn windows_follow_the_local_clock_through_a_repeated_hour() {
        // New York falls back on 2026-11-01: 01:00-02:00 comes twice,
        // first in EDT (05:00-06:00Z), then in EST (06:00-07:00Z).
        let s = every_day("America/New_York", "01:00-01:45");
        // In the first 01:30, the window closes at the first 01:45.
        assert_eq!(
            s.open_until("US", ms("2026-11-01T05:30:00Z")),
            Some(ms("2026-11-01T05:45:00Z"))
        );
        // Between the two: 01:50 EDT is outside; the second 01:00 opens it.
        assert_eq!(s.open_until("US", ms("2026-11-01T05:50:00Z")), None);
        assert_eq!(
            s.next_open("US", ms("2026-11-01T05:50:00Z")),
            Some(ms("2026-11-01T06:00:00Z"))
        );
        // In the second 01:30, it closes at the second 01:45, not in the
        // past.
        assert_eq!(
            s.open_until("US", ms("2026-11-01T06:30:00Z")),
            Some(ms("2026-11-01T06:45:00Z"))
        );
        // And a check's estimate from there ends in the future.
        let us = vec![("US".to_owned(), 600)];
        assert_eq!(
            s.last_send(&us, 1.0, ms("2026-11-01T06:30:00Z")),
            Some(ms("2026-11-01T06:40:00Z"))
        );
        assert_eq!(
            s.last_send(&us, 1.0, ms("2026-11-01T06:40:00Z")),
            // Five minutes tonight, five from 01:00 EST tomorrow.
            Some(ms("2026-11-02T06:05:00Z"))
        );
    }

    #[test]
    fn windows_follow_the_local_clock_when_it_springs_forward() {
        // New York springs forward on 2026-03-08: 02:00 EST is 03:00 EDT.
        let s = every_day("America/New_York", "02:30-09:00");
        // 01:00 EST (06:00Z): the window's 02:30 never comes that day; it
        // is open once the clock reads 03:00 EDT (07:00Z), until 09:00
        // EDT (13:00Z).
        let opens = s.next_open("US", ms("2026-03-08T06:00:00Z")).unwrap();
        assert_eq!(opens, ms("2026-03-08T07:00:00Z"));
        assert_eq!(s.open_until("US", opens), Some(ms("2026-03-08T13:00:00Z")));
        // Sydney falls back on 2026-04-05: 02:00-03:00 comes twice (AEDT
        // 15:00-16:00Z on the 4th, then AEST 16:00-17:00Z).
        let s = every_day("Australia/Sydney", "02:00-02:30");
        assert_eq!(
            s.open_until("AU", ms("2026-04-04T16:10:00Z")),
            Some(ms("2026-04-04T16:30:00Z"))
        );
        let au = vec![("AU".to_owned(), 60)];
        assert_eq!(
            s.last_send(&au, 1.0, ms("2026-04-04T16:10:00Z")),
            Some(ms("2026-04-04T16:11:00Z"))
        );
    }

    #[test]
    fn no_batch_is_claimed_in_the_last_minutes_before_a_window_closes() {
        let mut s = every_day("UTC", "09:00-12:00");
        s.windows.push(parse_window("12:00-20:00").unwrap());
        s.stop_before_close_ms = 10 * 60_000;
        // Touching windows are one: at 11:55 the window runs to 20:00.
        assert_eq!(
            s.open_until("GB", ms("2026-12-02T11:55:00Z")),
            Some(ms("2026-12-02T19:50:00Z"))
        );
        // Five minutes before the close, nothing may be claimed.
        assert_eq!(s.open_until("GB", ms("2026-12-02T19:55:00Z")), None);
        assert_eq!(s.open_until("GB", ms("2026-12-02T19:50:00Z")), None);
        assert_eq!(
            s.next_open("GB", ms("2026-12-02T19:55:00Z")),
            Some(ms("2026-12-03T09:00:00Z"))
        );
        // A window shorter than the margin never opens for a claim.
        let mut short = every_day("UTC", "09:00-09:05");
        short.stop_before_close_ms = 10 * 60_000;
        assert_eq!(short.next_open("GB", ms("2026-12-02T08:00:00Z")), None);
        // The estimate stops ten minutes early too: 30 minutes of requests
        // from 19:30 take twenty tonight and ten from 09:00.
        assert_eq!(
            s.last_send(&[("GB".to_owned(), 1800)], 1.0, ms("2026-12-02T19:30:00Z")),
            Some(ms("2026-12-03T09:10:00Z"))
        );
    }

    #[test]
    fn a_country_or_a_zone_may_have_windows_of_its_own() {
        let mut s = hong_kong_office_hours();
        s.countries
            .insert("SG".to_owned(), parse_zone("Asia/Singapore").unwrap());
        s.windows_of.insert(
            "America/New_York".to_owned(),
            vec![parse_window("10:00-18:00").unwrap()],
        );
        s.windows_of
            .insert("SG".to_owned(), vec![parse_window("13:00-15:00").unwrap()]);
        // Monday 09:30 in New York (14:30Z): the job's window is open, New
        // York's own is not, until 10:00.
        assert_eq!(s.open_until("US", ms("2026-11-30T14:30:00Z")), None);
        assert_eq!(
            s.next_open("US", ms("2026-11-30T14:30:00Z")),
            Some(ms("2026-11-30T15:00:00Z"))
        );
        // Singapore's own window, by its country code: 13:00-15:00 local.
        assert_eq!(s.open_until("SG", ms("2026-11-30T02:00:00Z")), None);
        assert_eq!(
            s.open_until("SG", ms("2026-11-30T05:30:00Z")),
            Some(ms("2026-11-30T07:00:00Z"))
        );
        // Hong Kong keeps the job's.
        assert_eq!(
            s.open_until("HK", ms("2026-11-30T02:00:00Z")),
            Some(ms("2026-11-30T04:00:00Z"))
        );
    }

    #[test]
    fn numbers_of_several_zones_wait_for_all_and_unplaced_numbers_never_go() {
        let s = every_day("UTC", "09:00-20:00");
        let idaho = "US America/Boise&America/Los_Angeles";
        // 09:30 in Boise (16:30Z in winter) is 08:30 in Los Angeles.
        assert_eq!(s.open_until(idaho, ms("2026-12-02T16:30:00Z")), None);
        assert_eq!(
            s.next_open(idaho, ms("2026-12-02T16:30:00Z")),
            Some(ms("2026-12-02T17:00:00Z"))
        );
        // Open until Boise's 20:00 (03:00Z), the earlier close.
        assert_eq!(
            s.open_until(idaho, ms("2026-12-02T17:30:00Z")),
            Some(ms("2026-12-03T03:00:00Z"))
        );
        // Numbers nothing placed never go in the job's zone.
        assert_eq!(s.open_until("XX ?", ms("2026-12-02T12:00:00Z")), None);
        assert_eq!(s.next_open("XX ?", ms("2026-12-02T12:00:00Z")), None);
        assert!(describe_key("XX ?").contains("no time zone known"));
        assert_eq!(
            describe_key(idaho),
            "US (America/Boise, America/Los_Angeles)"
        );
    }

    #[test]
    fn windows_days_and_zones_are_read_or_refused_with_the_reason() {
        assert!(parse_window("20:00-09:00")
            .unwrap_err()
            .contains("two windows"));
        assert!(parse_window("9am-5pm").is_err());
        assert_eq!(
            parse_window("09:00:30-09:01").unwrap().0,
            Time::constant(9, 0, 30, 0)
        );
        assert!(parse_day("Mo").is_err());
        assert!(parse_zone("Mars/Olympus").unwrap_err().contains("IANA"));
    }
}

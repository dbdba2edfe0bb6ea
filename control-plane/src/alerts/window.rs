//! The alert window: recent events in arrival order, bounded by age (the
//! longest lookback of any alert) and by a hard cap on their number, so the
//! control plane's memory stays bounded whatever enforcers report.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::fields::WafEvent;

/// Events held at most (at ~1 KB each, ~50 MB at worst).
pub const DEFAULT_CAPACITY: usize = 50_000;

/// Recent events, oldest first.
#[derive(Debug)]
pub struct EventWindow {
    events: VecDeque<(Instant, WafEvent)>,
    capacity: usize,
    retention: Duration,
    dropped: u64,
}

impl Default for EventWindow {
    fn default() -> EventWindow {
        EventWindow::new(DEFAULT_CAPACITY, super::rule::DEFAULT_LOOKBACK)
    }
}

impl EventWindow {
    /// A window holding at most `capacity` events, none older than `retention`.
    pub fn new(capacity: usize, retention: Duration) -> EventWindow {
        EventWindow {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            retention,
            dropped: 0,
        }
    }

    /// Changes how long events are kept (the longest lookback).
    pub fn set_retention(&mut self, retention: Duration) {
        self.retention = retention;
    }

    /// How long events are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Adds an event that arrived at `now` (not before the last one's arrival;
    /// an earlier `now` is taken as the last arrival). At capacity the oldest
    /// event is dropped, and counted.
    pub fn push(&mut self, now: Instant, event: WafEvent) {
        let now = match self.events.back() {
            Some((last, _)) if *last > now => *last,
            _ => now,
        };
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back((now, event));
    }

    /// Forgets events older than the retention at `now`.
    pub fn expire(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.retention) else {
            return;
        };
        while self.events.front().is_some_and(|(t, _)| *t < cutoff) {
            self.events.pop_front();
        }
    }

    /// Events that arrived within `lookback` before `now` (inclusive), oldest first.
    pub fn since(&self, now: Instant, lookback: Duration) -> impl Iterator<Item = &WafEvent> {
        let start = match now.checked_sub(lookback) {
            Some(cutoff) => self.events.partition_point(|(t, _)| *t < cutoff),
            None => 0,
        };
        self.events.range(start..).map(|(_, e)| e)
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events dropped because the window was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> WafEvent {
        WafEvent::from_json("n", &format!(r#"{{"request_id":"{id}"}}"#)).unwrap()
    }

    fn ids<'a>(it: impl Iterator<Item = &'a WafEvent>) -> Vec<String> {
        it.map(|e| e.request_id.to_string()).collect()
    }

    #[test]
    fn lookback_selects_by_arrival() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = EventWindow::new(100, s(60));
        for (i, at) in [0, 10, 20, 30].into_iter().enumerate() {
            w.push(t0 + s(at), ev(&i.to_string()));
        }
        let cases: &[(u64, u64, &[&str])] = &[
            (30, 60, &["0", "1", "2", "3"]),
            (30, 10, &["2", "3"]),
            (30, 0, &["3"]),
            (35, 10, &["3"]),
            (45, 10, &[]),
            (40, 30, &["1", "2", "3"]),
        ];
        for (now, lookback, want) in cases {
            assert_eq!(
                ids(w.since(t0 + s(*now), s(*lookback))),
                *want,
                "now {now} lookback {lookback}"
            );
        }
        w.expire(t0 + s(75));
        assert_eq!(ids(w.since(t0 + s(75), s(3600))), ["2", "3"]);
        w.expire(t0 + s(1000));
        assert!(w.is_empty());
        assert_eq!(w.dropped(), 0);
    }

    #[test]
    fn capacity_drops_oldest_and_counts() {
        let t0 = Instant::now();
        let mut w = EventWindow::new(3, Duration::from_secs(60));
        for i in 0..5 {
            w.push(t0, ev(&i.to_string()));
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.dropped(), 2);
        assert_eq!(ids(w.since(t0, Duration::from_secs(1))), ["2", "3", "4"]);
    }

    #[test]
    fn arrival_never_goes_back() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = EventWindow::new(10, s(60));
        w.push(t0 + s(10), ev("a"));
        w.push(t0, ev("b"));
        // "b" is stamped with "a"'s arrival, keeping the order sorted.
        assert_eq!(ids(w.since(t0 + s(10), s(0))), ["a", "b"]);
    }
}

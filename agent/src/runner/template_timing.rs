//! When a running task's templates render again and when their `change_mode` acts, decided
//! purely over instants: consul-template's quiescence (`wait { min max }`, per template) and
//! Nomad's `splay`. The waiting itself is [`super::rerender`]'s.
//!
//! Quiescence: after what a template reads changes, it renders once nothing more changed for
//! `min`, and at the latest `max` after the first change of the burst. A template without
//! `wait` renders at once. The agent's `wait_bounds` clamp each template's `min` and `max`.

use std::ops::Add;
use std::time::Duration;

use nomos_api::{Template, DEFAULT_TEMPLATE_SPLAY_NS, MAX_TEMPLATE_DELAY_NS};

use crate::config::WaitBounds;

/// A template's quiescence bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiescence {
    pub min: Duration,
    pub max: Duration,
}

/// Caps a spec's nanoseconds at the limit validation enforces (a spec written straight into
/// the store may not have been validated).
fn capped(ns: u64) -> Duration {
    Duration::from_nanos(ns.min(MAX_TEMPLATE_DELAY_NS))
}

/// The template's quiescence, if it has one, its bounds clamped into `bounds` (`max` never
/// below `min`).
pub fn quiescence(t: &Template, bounds: WaitBounds) -> Option<Quiescence> {
    let w = t.wait?;
    let min = bounds.clamp(capped(w.min_ns));
    let max = bounds.clamp(capped(w.max_or_default()));
    (!min.is_zero() || !max.is_zero()).then_some(Quiescence {
        min,
        max: max.max(min),
    })
}

/// When a template whose inputs changed first at `first` and last at `last` renders.
pub fn render_at<T>(first: T, last: T, q: Option<Quiescence>) -> T
where
    T: Copy + Ord + Add<Duration, Output = T>,
{
    match q {
        None => last,
        Some(q) => (last + q.min).min(first + q.max),
    }
}

/// The templates waiting to render again: for each, the first and last change it has not
/// rendered yet.
#[derive(Debug, Clone)]
pub struct Pending<T> {
    waits: Vec<Option<Quiescence>>,
    bursts: Vec<Option<(T, T)>>,
}

impl<T> Pending<T>
where
    T: Copy + Ord + Add<Duration, Output = T>,
{
    /// Nothing pending, for templates with these quiescences (in the task's order).
    pub fn new(waits: Vec<Option<Quiescence>>) -> Self {
        let bursts = vec![None; waits.len()];
        Pending { waits, bursts }
    }

    /// What the templates read changed at `now`: each starts or extends its burst.
    pub fn changed(&mut self, now: T) {
        for b in &mut self.bursts {
            *b = Some(b.map_or((now, now), |(first, _)| (first, now)));
        }
    }

    /// The earliest time a waiting template renders, if one waits.
    pub fn next_render(&self) -> Option<T> {
        self.deadlines().map(|(_, at)| at).min()
    }

    /// The templates due at `now` (their bursts end), in order.
    pub fn take_due(&mut self, now: T) -> Vec<usize> {
        let due: Vec<usize> = self
            .deadlines()
            .filter(|(_, at)| *at <= now)
            .map(|(i, _)| i)
            .collect();
        for i in &due {
            self.bursts[*i] = None;
        }
        due
    }

    fn deadlines(&self) -> impl Iterator<Item = (usize, T)> + '_ {
        self.bursts
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.map(|(first, last)| (i, render_at(first, last, self.waits[i]))))
    }
}

/// The longest `splay` among the changed templates (Nomad's 5 s where one sets none).
pub fn splay_of(templates: &[Template], changed: &[usize]) -> Duration {
    changed
        .iter()
        .filter_map(|i| templates.get(*i))
        .map(|t| capped(t.splay_ns.unwrap_or(DEFAULT_TEMPLATE_SPLAY_NS)))
        .max()
        .unwrap_or_default()
}

/// A delay in `[0, splay)` picked by `random` (uniform over all `u64`).
pub fn splay_delay(splay: Duration, random: u64) -> Duration {
    let ns = (splay.as_nanos() * u128::from(random)) >> 64;
    Duration::from_nanos(ns as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::TemplateWait;
    use proptest::prelude::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn q(min: f64, max: f64) -> Option<Quiescence> {
        Some(Quiescence {
            min: s(min),
            max: s(max),
        })
    }

    /// The render times of one template that sees changes at `changes` (milliseconds,
    /// ascending).
    fn renders(changes: &[u64], wait: Option<Quiescence>) -> Vec<u64> {
        let ms = Duration::from_millis;
        let mut p: Pending<Duration> = Pending::new(vec![wait]);
        let mut out = Vec::new();
        for &c in changes {
            while let Some(at) = p.next_render().filter(|at| *at <= ms(c)) {
                p.take_due(at);
                out.push(at.as_millis() as u64);
            }
            p.changed(ms(c));
        }
        while let Some(at) = p.next_render() {
            p.take_due(at);
            out.push(at.as_millis() as u64);
        }
        out
    }

    #[test]
    fn quiescence_renders_once_things_settle_or_at_max() {
        let cases: &[(&[u64], Option<Quiescence>, &[u64])] = &[
            (&[1000, 1100, 1200], None, &[1000, 1100, 1200]),
            (&[1000], q(2.0, 10.0), &[3000]),
            (&[1000, 1500, 2000, 2500], q(2.0, 10.0), &[4500]),
            (
                &[0, 1000, 2000, 3000, 4000, 5000],
                q(2.0, 4.5),
                &[4500, 7000],
            ),
            (&[1000, 5000], q(2.0, 10.0), &[3000, 7000]),
            (&[1000, 3000], q(2.0, 10.0), &[3000, 5000]),
            (&[0, 500, 1000], q(0.0, 0.0), &[0, 500, 1000]),
        ];
        for (changes, wait, want) in cases {
            assert_eq!(
                renders(changes, *wait),
                want.to_vec(),
                "{changes:?} {wait:?}"
            );
        }
    }

    #[test]
    fn each_template_keeps_its_own_quiescence() {
        let mut p: Pending<Duration> = Pending::new(vec![None, q(2.0, 10.0)]);
        assert_eq!(p.next_render(), None);
        p.changed(s(1.0));
        assert_eq!(p.next_render(), Some(s(1.0)));
        assert_eq!(p.take_due(s(1.0)), vec![0]);
        assert_eq!(p.next_render(), Some(s(3.0)));
        assert_eq!(p.take_due(s(2.9)), Vec::<usize>::new());
        assert_eq!(p.take_due(s(3.0)), vec![1]);
        assert_eq!(p.next_render(), None);
    }

    #[test]
    fn a_templates_wait_and_splay_are_read_with_defaults_and_limits() {
        let t = |splay: Option<u64>, wait: Option<TemplateWait>| Template {
            splay_ns: splay,
            wait,
            ..Default::default()
        };
        let w = |min_ns: u64, max_ns: Option<u64>| Some(TemplateWait { min_ns, max_ns });
        let sec = 1_000_000_000;
        let none = WaitBounds::default();
        assert_eq!(quiescence(&t(None, None), none), None);
        assert_eq!(quiescence(&t(None, w(0, Some(0))), none), None);
        assert_eq!(
            quiescence(&t(None, w(2 * sec, None)), none),
            q(2.0, 8.0),
            "max: 4 × min"
        );
        assert_eq!(
            quiescence(&t(None, w(5 * sec, Some(sec))), none),
            q(5.0, 5.0)
        );
        let huge = quiescence(&t(None, w(u64::MAX, Some(u64::MAX))), none).unwrap();
        assert_eq!(huge.max, Duration::from_nanos(MAX_TEMPLATE_DELAY_NS));
        let ts = [
            t(None, None),
            t(Some(0), None),
            t(Some(sec), None),
            t(Some(u64::MAX), None),
        ];
        assert_eq!(splay_of(&ts, &[]), Duration::ZERO);
        assert_eq!(splay_of(&ts, &[1]), Duration::ZERO);
        assert_eq!(splay_of(&ts, &[0, 1, 2]), s(5.0), "Nomad's default");
        assert_eq!(splay_of(&ts, &[2]), s(1.0));
        assert_eq!(
            splay_of(&ts, &[3]),
            Duration::from_nanos(MAX_TEMPLATE_DELAY_NS)
        );
        assert_eq!(splay_of(&ts, &[9]), Duration::ZERO);
    }

    fn bounds(min: Option<f64>, max: Option<f64>) -> WaitBounds {
        WaitBounds {
            min: min.map(s),
            max: max.map(s),
        }
    }

    #[test]
    fn the_agents_wait_bounds_clamp_each_templates_wait() {
        let sec = 1_000_000_000;
        let t = |min_ns: u64, max_ns: Option<u64>| Template {
            wait: Some(TemplateWait { min_ns, max_ns }),
            ..Default::default()
        };
        let none_set = Template::default();
        // (template, bounds, quiescence)
        let cases: Vec<(Template, WaitBounds, Option<Quiescence>)> = vec![
            (t(2 * sec, Some(10 * sec)), bounds(None, None), q(2.0, 10.0)),
            (
                t(2 * sec, Some(10 * sec)),
                bounds(Some(1.0), Some(20.0)),
                q(2.0, 10.0),
            ),
            (
                t(2 * sec, Some(10 * sec)),
                bounds(Some(5.0), None),
                q(5.0, 10.0),
            ),
            (
                t(2 * sec, Some(10 * sec)),
                bounds(None, Some(4.0)),
                q(2.0, 4.0),
            ),
            (
                t(2 * sec, Some(10 * sec)),
                bounds(Some(3.0), Some(4.0)),
                q(3.0, 4.0),
            ),
            (
                t(sec, Some(2 * sec)),
                bounds(Some(5.0), Some(9.0)),
                q(5.0, 5.0),
            ),
            (
                t(20 * sec, Some(30 * sec)),
                bounds(Some(1.0), Some(9.0)),
                q(9.0, 9.0),
            ),
            // max defaults to 4 × min before it is clamped.
            (t(2 * sec, None), bounds(None, Some(5.0)), q(2.0, 5.0)),
            // A zero wait is raised to the lower bound.
            (t(0, Some(0)), bounds(Some(1.0), None), q(1.0, 1.0)),
            (t(0, Some(0)), bounds(None, Some(5.0)), None),
            // Bounds that cross: the upper one wins.
            (
                t(2 * sec, Some(3 * sec)),
                bounds(Some(8.0), Some(4.0)),
                q(4.0, 4.0),
            ),
            // A template without `wait` renders at once whatever the bounds.
            (none_set, bounds(Some(5.0), Some(9.0)), None),
        ];
        for (tpl, b, want) in cases {
            assert_eq!(quiescence(&tpl, b), want, "{:?} {b:?}", tpl.wait);
        }
    }

    proptest! {
        #[test]
        fn clamped_waits_stay_inside_the_bounds_and_ordered(
            min_ms in 0u64..100_000,
            max_ms in proptest::option::of(0u64..100_000),
            lo in proptest::option::of(0u64..50_000),
            width in proptest::option::of(0u64..50_000),
        ) {
            let ms = Duration::from_millis;
            let b = WaitBounds {
                min: lo.map(ms),
                max: width.map(|w| ms(lo.unwrap_or(0) + w)),
            };
            let tpl = Template {
                wait: Some(TemplateWait { min_ns: min_ms * 1_000_000, max_ns: max_ms.map(|m| m * 1_000_000) }),
                ..Default::default()
            };
            let unbounded = quiescence(&tpl, WaitBounds::default());
            match quiescence(&tpl, b) {
                Some(got) => {
                    prop_assert!(got.min <= got.max);
                    for d in [got.min, got.max] {
                        prop_assert!(b.min.is_none_or(|lo| d >= lo), "{got:?} {b:?}");
                        prop_assert!(b.max.is_none_or(|hi| d <= hi), "{got:?} {b:?}");
                    }
                    // Inside the bounds, a wait is left as it is.
                    if let Some(u) = unbounded {
                        let inside = |d: Duration| b.clamp(d) == d;
                        if inside(u.min) && inside(u.max) {
                            prop_assert_eq!(got, u);
                        }
                    }
                }
                None => prop_assert!(b.min.is_none_or(|lo| lo.is_zero())),
            }
        }

        #[test]
        fn a_splay_delay_stays_below_the_splay(splay_ns in 0u64..=MAX_TEMPLATE_DELAY_NS, r: u64) {
            let splay = Duration::from_nanos(splay_ns);
            let d = splay_delay(splay, r);
            prop_assert!(d < splay || splay.is_zero() && d.is_zero());
        }

        #[test]
        fn every_change_is_rendered_within_max_of_it(
            gaps in proptest::collection::vec(0u64..3_000, 1..20),
            min in 0u64..2_000,
            extra in 0u64..5_000,
        ) {
            let wait = Some(Quiescence { min: Duration::from_millis(min), max: Duration::from_millis(min + extra) });
            let mut t = 0;
            let changes: Vec<u64> = gaps.iter().map(|g| { t += g; t }).collect();
            let out = renders(&changes, wait);
            // Every change is followed by a render no later than max after it.
            for c in &changes {
                prop_assert!(out.iter().any(|r| *r >= *c && *r <= c + min + extra), "{c} {out:?}");
            }
        }
    }
}

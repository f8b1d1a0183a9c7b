//! The alert state machine, Prometheus' semantics at data time: an instance
//! (a rule and a label set) is pending from the first hour its condition holds,
//! fires once it has held for `for`, stays firing through gaps shorter than
//! `keep_firing_for`, and resolves after; a pending instance whose condition
//! stops holding leaves no trace. Each evaluation judges one rollup hour, so an
//! hour that holds counts as an hour held.

use std::collections::BTreeMap;

use tollgate_store::EpisodeState;

use super::series::{Labels, STEP_US};

/// One label set's result at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub labels: Labels,
    pub value: f64,
    pub holds: bool,
}

/// An episode of one instance, in data-time microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub labels: Labels,
    /// The start of the first hour the condition held.
    pub active_at: i64,
    /// When it had held for `for`.
    pub fired_at: Option<i64>,
    /// When `keep_firing_for` after the last hour that held ran out.
    pub resolved_at: Option<i64>,
    pub value: f64,
    pub peak: f64,
}

impl Episode {
    pub fn state(&self) -> EpisodeState {
        match (self.fired_at, self.resolved_at) {
            (_, Some(_)) => EpisodeState::Resolved,
            (Some(_), None) => EpisodeState::Firing,
            (None, None) => EpisodeState::Pending,
        }
    }
}

struct Active {
    episode: Episode,
    /// The end of the last hour that held.
    held_until: i64,
}

/// Runs the state machine over evaluations (hour starts, ascending, each with
/// its observations) and returns every episode that fired, plus those still
/// pending at the end.
pub fn run(
    for_us: i64,
    keep_firing_for_us: i64,
    evaluations: impl IntoIterator<Item = (i64, Vec<Observation>)>,
) -> Vec<Episode> {
    let mut active: BTreeMap<Labels, Active> = BTreeMap::new();
    let mut done = Vec::new();
    for (hour, observations) in evaluations {
        let mut held = Vec::new();
        for o in observations.into_iter().filter(|o| o.holds) {
            let a = active.entry(o.labels.clone()).or_insert_with(|| Active {
                episode: Episode {
                    labels: o.labels.clone(),
                    active_at: hour,
                    fired_at: None,
                    resolved_at: None,
                    value: o.value,
                    peak: o.value,
                },
                held_until: hour,
            });
            a.held_until = hour + STEP_US;
            a.episode.value = o.value;
            a.episode.peak = a.episode.peak.max(o.value);
            if a.episode.fired_at.is_none() && a.held_until - a.episode.active_at >= for_us {
                a.episode.fired_at = Some(a.episode.active_at + for_us);
            }
            held.push(o.labels);
        }
        let lapsed: Vec<Labels> = active
            .iter()
            .filter(|(labels, a)| {
                !held.contains(labels)
                    && (a.episode.fired_at.is_none() || hour >= a.held_until + keep_firing_for_us)
            })
            .map(|(labels, _)| labels.clone())
            .collect();
        for labels in lapsed {
            if let Some(mut a) = active.remove(&labels)
                && a.episode.fired_at.is_some()
            {
                a.episode.resolved_at = Some(a.held_until + keep_firing_for_us);
                done.push(a.episode);
            }
        }
    }
    done.extend(active.into_values().map(|a| a.episode));
    done.sort_by(|a, b| (a.active_at, &a.labels).cmp(&(b.active_at, &b.labels)));
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = STEP_US;

    /// One label set; `values[i]` is hour `i`'s value, holding above 1.0.
    fn series(values: &[f64]) -> Vec<(i64, Vec<Observation>)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let o = Observation {
                    labels: Labels::new(),
                    value: v,
                    holds: v > 1.0,
                };
                (i as i64 * H, vec![o])
            })
            .collect()
    }

    #[test]
    fn a_burst_fires_and_resolves() {
        let episodes = run(0, 0, series(&[0.0, 2.0, 3.0, 0.0, 0.0]));
        assert_eq!(episodes.len(), 1);
        let e = &episodes[0];
        assert_eq!(
            (e.active_at, e.fired_at, e.resolved_at),
            (H, Some(H), Some(3 * H))
        );
        assert_eq!(
            (e.value, e.peak, e.state()),
            (3.0, 3.0, EpisodeState::Resolved)
        );
    }

    #[test]
    fn a_burst_shorter_than_for_never_fires() {
        let episodes = run(3 * H, 0, series(&[0.0, 2.0, 2.0, 0.0, 2.0, 0.0]));
        assert!(episodes.is_empty(), "{episodes:?}");
        // Held long enough: fires `for` after it became active.
        let episodes = run(2 * H, 0, series(&[0.0, 2.0, 2.0, 2.0, 0.0]));
        assert_eq!(episodes[0].fired_at, Some(3 * H));
    }

    #[test]
    fn keep_firing_for_bridges_gaps_and_delays_resolution() {
        let episodes = run(0, 2 * H, series(&[2.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0]));
        assert_eq!(episodes.len(), 1, "{episodes:?}");
        assert_eq!(episodes[0].resolved_at, Some(5 * H));
        // Without it the gap splits the episode in two.
        assert_eq!(run(0, 0, series(&[2.0, 0.0, 2.0, 0.0])).len(), 2);
    }

    #[test]
    fn an_instance_still_active_at_the_end_is_open() {
        let episodes = run(H, 0, series(&[0.0, 2.0]));
        assert_eq!(episodes[0].state(), EpisodeState::Firing);
        let episodes = run(5 * H, 0, series(&[0.0, 2.0]));
        assert_eq!(episodes[0].state(), EpisodeState::Pending);
    }

    #[test]
    fn missing_hours_do_not_hold() {
        // Hour 1 has no observation at all (no traffic): the instance lapses.
        let mut evaluations = series(&[2.0, 0.0, 2.0]);
        evaluations[1].1.clear();
        assert_eq!(run(0, 0, evaluations).len(), 2);
    }
}

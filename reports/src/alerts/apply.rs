//! What an evaluation changes in the stored alert state, decided here and
//! only persisted by the store ([`tollgate_store::StateDb::apply_alert_changes`]):
//! the period's episodes replaced (an episode open when the period began is
//! continued, or closed if nothing continues it), the notifications each
//! transition queues, and the budget cuts to start and end.
//!
//! Pure functions over what the store read under the evaluation's lock, so
//! every rule of the state machine is tested without a database.

use tollgate_store::EpisodeState;
use tollgate_store::state::{
    AlertChanges, AlertEpisode, AlertEvaluation, AlertShed, AlertsStored, EpisodeKey,
    NewAlertNotification,
};

/// The changes `evaluation` makes to what is `stored`. `payload` makes a
/// notification's body for an episode, its status and its receiver.
pub fn plan(
    evaluation: &AlertEvaluation,
    stored: &AlertsStored,
    payload: impl Fn(&AlertEpisode, EpisodeState, &str) -> String,
) -> AlertChanges {
    let (upsert, delete, resolve, judged) = episodes(evaluation, stored);
    let notify = notifications(evaluation, &judged, payload);
    let (start_sheds, end_sheds) = match &evaluation.sheds {
        Some(wanted) => sheds(wanted, &stored.active_sheds),
        None => (Vec::new(), Vec::new()),
    };
    AlertChanges {
        rules: evaluation.rules.clone(),
        from_us: evaluation.from_us,
        to_us: evaluation.to_us,
        upsert,
        delete,
        resolve,
        episodes: judged.len(),
        notify,
        start_sheds,
        end_sheds,
        cursor: evaluation.cursor,
    }
}

type EpisodePlan = (
    Vec<AlertEpisode>,
    Vec<EpisodeKey>,
    Vec<(EpisodeKey, i64)>,
    Vec<AlertEpisode>,
);

/// The episodes to store; those open before the period to delete (never
/// fired) or resolve at its start (fired), when nothing continues them; and
/// every episode as judged now (stored and resolved), for notifications.
fn episodes(evaluation: &AlertEvaluation, stored: &AlertsStored) -> EpisodePlan {
    let from = evaluation.from_us;
    let mut continued: Vec<(&str, &str)> = Vec::new();
    let mut upsert = Vec::with_capacity(evaluation.episodes.len());
    for found in &evaluation.episodes {
        let mut episode = found.clone();
        // Judged open where the stored episode of the same start had ended: the
        // judgement stopped before it could see the end.
        if episode.resolved_at.is_none()
            && let Some(ended) = stored
                .resolved_in_period
                .iter()
                .find(|r| same_start(r, &episode))
        {
            episode.state = ended.state;
            episode.resolved_at = ended.resolved_at;
            episode.fired_at = ended.fired_at.or(episode.fired_at);
        }
        if episode.active_at < from
            && let Some(open) = stored
                .open_before
                .iter()
                .find(|o| same_instance(o, &episode))
        {
            continued.push((&open.rule, &open.fingerprint));
            episode.active_at = open.active_at;
            episode.fired_at = open.fired_at.or(episode.fired_at);
            episode.peak = episode.peak.max(open.peak);
            if episode.fired_at.is_some() && episode.state == EpisodeState::Pending {
                episode.state = EpisodeState::Firing;
            }
        }
        upsert.push(episode);
    }
    let mut judged = upsert.clone();
    let (mut delete, mut resolve) = (Vec::new(), Vec::new());
    // An evaluated rule's episode open at `from` that nothing continued: its
    // condition no longer held when the period began.
    for open in &stored.open_before {
        if !evaluation.rules.contains(&open.rule)
            || continued.contains(&(open.rule.as_str(), open.fingerprint.as_str()))
        {
            continue;
        }
        if open.fired_at.is_none() {
            delete.push(EpisodeKey::of(open));
        } else if open.resolved_at.is_none() {
            resolve.push((EpisodeKey::of(open), from));
            let mut closed = open.clone();
            closed.state = EpisodeState::Resolved;
            closed.resolved_at = Some(from);
            judged.push(closed);
        }
    }
    (upsert, delete, resolve, judged)
}

fn same_instance(a: &AlertEpisode, b: &AlertEpisode) -> bool {
    a.rule == b.rule && a.fingerprint == b.fingerprint
}

fn same_start(a: &AlertEpisode, b: &AlertEpisode) -> bool {
    same_instance(a, b) && a.active_at == b.active_at
}

/// A notification per receiver for each episode that fired (while firing, or
/// when it fired within the horizon) and each resolution within the horizon;
/// the outbox keeps one per episode, status and receiver.
fn notifications(
    evaluation: &AlertEvaluation,
    judged: &[AlertEpisode],
    payload: impl Fn(&AlertEpisode, EpisodeState, &str) -> String,
) -> Vec<NewAlertNotification> {
    let since = evaluation.notify_since;
    let mut out = Vec::new();
    for episode in judged.iter().filter(|e| e.fired_at.is_some()) {
        let mut statuses = Vec::new();
        if episode.fired_at.is_some_and(|t| t >= since) || episode.state == EpisodeState::Firing {
            statuses.push(EpisodeState::Firing);
        }
        if episode.state == EpisodeState::Resolved
            && episode.resolved_at.is_some_and(|t| t >= since)
        {
            statuses.push(EpisodeState::Resolved);
        }
        for status in statuses {
            for receiver in &evaluation.receivers {
                out.push(NewAlertNotification {
                    episode: EpisodeKey::of(episode),
                    status,
                    receiver: receiver.clone(),
                    payload: payload(episode, status, receiver),
                });
            }
        }
    }
    out
}

/// The cuts to start (wanted, not in force) and to end (in force, no longer
/// wanted).
fn sheds(wanted: &[AlertShed], active: &[AlertShed]) -> (Vec<AlertShed>, Vec<AlertShed>) {
    let same = |a: &AlertShed, b: &AlertShed| {
        a.rule == b.rule
            && a.fingerprint == b.fingerprint
            && a.active_at == b.active_at
            && a.budget_id == b.budget_id
    };
    let start = wanted
        .iter()
        .filter(|w| !active.iter().any(|a| same(a, w)))
        .cloned()
        .collect();
    let end = active
        .iter()
        .filter(|a| !wanted.iter().any(|w| same(a, w)))
        .cloned()
        .collect();
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    fn episode(
        fingerprint: &str,
        state: &str,
        active: i64,
        fired: Option<i64>,
        resolved: Option<i64>,
    ) -> AlertEpisode {
        AlertEpisode {
            rule: "r".into(),
            fingerprint: fingerprint.into(),
            labels: "{}".into(),
            annotations: "{}".into(),
            state: state.parse().unwrap(),
            active_at: active * H,
            fired_at: fired.map(|h| h * H),
            resolved_at: resolved.map(|h| h * H),
            value: 1.0,
            peak: 1.0,
        }
    }

    fn evaluation(from: i64, episodes: Vec<AlertEpisode>) -> AlertEvaluation {
        AlertEvaluation {
            from_us: from * H,
            to_us: (from + 24) * H,
            rules: vec!["r".into()],
            episodes,
            receivers: vec!["webhook".into()],
            notify_since: 0,
            keep_resolved: false,
            sheds: None,
            cursor: None,
        }
    }

    fn body(e: &AlertEpisode, status: EpisodeState, receiver: &str) -> String {
        format!("{}:{status}:{receiver}", e.fingerprint)
    }

    #[test]
    fn an_episode_open_before_the_period_is_continued_not_restarted() {
        let stored = AlertsStored {
            open_before: vec![episode("a", "firing", 5, Some(6), None)],
            ..AlertsStored::default()
        };
        // Judged again from hour 10, the engine saw it start at hour 8.
        let found = episode("a", "pending", 8, None, None);
        let changes = plan(&evaluation(10, vec![found]), &stored, body);
        assert_eq!(changes.upsert.len(), 1);
        let kept = &changes.upsert[0];
        assert_eq!((kept.active_at, kept.fired_at), (5 * H, Some(6 * H)));
        assert_eq!(
            kept.state,
            EpisodeState::Firing,
            "a fired episode stays firing"
        );
        assert!(changes.delete.is_empty() && changes.resolve.is_empty());
        assert_eq!(changes.notify.len(), 1);
        assert_eq!(changes.notify[0].payload, "a:firing:webhook");
    }

    #[test]
    fn an_open_episode_nothing_continues_is_dropped_or_resolved() {
        let stored = AlertsStored {
            open_before: vec![
                episode("pending", "pending", 5, None, None),
                episode("fired", "firing", 5, Some(6), None),
            ],
            ..AlertsStored::default()
        };
        let changes = plan(&evaluation(10, Vec::new()), &stored, body);
        assert_eq!(changes.delete, [EpisodeKey::of(&stored.open_before[0])]);
        assert_eq!(
            changes.resolve,
            [(EpisodeKey::of(&stored.open_before[1]), 10 * H)]
        );
        let statuses: Vec<&str> = changes.notify.iter().map(|n| n.status.as_str()).collect();
        assert_eq!(statuses, ["firing", "resolved"]);
        assert_eq!(changes.episodes, 1);
    }

    #[test]
    fn an_end_the_judgement_could_not_see_is_kept() {
        let stored = AlertsStored {
            resolved_in_period: vec![episode("a", "resolved", 12, Some(13), Some(15))],
            ..AlertsStored::default()
        };
        let mut e = evaluation(10, vec![episode("a", "firing", 12, Some(13), None)]);
        e.keep_resolved = true;
        let changes = plan(&e, &stored, body);
        assert_eq!(changes.upsert[0].state, EpisodeState::Resolved);
        assert_eq!(changes.upsert[0].resolved_at, Some(15 * H));
    }

    #[test]
    fn transitions_before_the_horizon_are_stored_not_sent() {
        let mut e = evaluation(
            10,
            vec![
                episode("old", "resolved", 10, Some(11), Some(12)),
                episode("new", "resolved", 20, Some(21), Some(22)),
            ],
        );
        e.notify_since = 21 * H;
        let changes = plan(&e, &AlertsStored::default(), body);
        let sent: Vec<&str> = changes.notify.iter().map(|n| n.payload.as_str()).collect();
        assert_eq!(sent, ["new:firing:webhook", "new:resolved:webhook"]);
        assert_eq!(changes.upsert.len(), 2);
    }

    #[test]
    fn cuts_start_and_end_as_the_firing_episodes_ask() {
        let shed = |fingerprint: &str, budget_id: i64| AlertShed {
            rule: "r".into(),
            fingerprint: fingerprint.into(),
            active_at: 0,
            budget_id,
            factor: 0.5,
            started_at: String::new(),
            ended_at: None,
        };
        let stored = AlertsStored {
            active_sheds: vec![shed("a", 1), shed("b", 1)],
            ..AlertsStored::default()
        };
        let mut e = evaluation(10, Vec::new());
        e.sheds = Some(vec![shed("b", 1), shed("c", 2)]);
        let changes = plan(&e, &stored, body);
        assert_eq!(changes.start_sheds, [shed("c", 2)]);
        assert_eq!(changes.end_sheds, [shed("a", 1)]);
        // A replay (no cuts asked) leaves those in force alone.
        let changes = plan(&evaluation(10, Vec::new()), &stored, body);
        assert!(changes.start_sheds.is_empty() && changes.end_sheds.is_empty());
    }
}

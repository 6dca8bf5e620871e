//! A history checker for fault tests, in the spirit of Jepsen's: given what a test observed
//! (every event a watch delivered, every write the store acknowledged, and the store's final
//! contents), it lists the anomalies: an acknowledged write that never appeared, an event
//! delivered twice or out of order, a key whose final state the watch never showed (a gap in
//! the history), and an allocation placed on two nodes.

use std::collections::{BTreeMap, HashMap};

/// One event a watch delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub key: Vec<u8>,
    /// The revision of the change (the key's `mod_revision`; a delete's revision).
    pub revision: i64,
    pub deleted: bool,
}

/// A write the store acknowledged: `key` was written at `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub key: Vec<u8>,
    pub revision: i64,
}

/// What a test saw: events from a watch that started after `start_revision`, acknowledged
/// writes, and the store's final keys (with their `mod_revision`) at `final_revision`.
#[derive(Debug, Default, Clone)]
pub struct Observations {
    pub start_revision: i64,
    pub events: Vec<Observed>,
    pub acks: Vec<Ack>,
    pub final_revision: i64,
    pub final_keys: BTreeMap<Vec<u8>, i64>,
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

impl Observations {
    /// Every anomaly found; empty when the history is sound.
    pub fn anomalies(&self) -> Vec<String> {
        let mut found = self.order_anomalies();
        found.extend(self.lost_acks());
        found.extend(self.gaps());
        found.extend(self.double_placements());
        found
    }

    /// Events out of revision order, or delivered twice.
    fn order_anomalies(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut seen = HashMap::new();
        let mut last = self.start_revision;
        for event in &self.events {
            if event.revision < last {
                found.push(format!(
                    "event {} at revision {} delivered after revision {last}",
                    show(&event.key),
                    event.revision
                ));
            }
            last = last.max(event.revision);
            if seen.insert((&event.key, event.revision), ()).is_some() {
                found.push(format!(
                    "event {} at revision {} delivered twice",
                    show(&event.key),
                    event.revision
                ));
            }
        }
        found
    }

    /// Acknowledged writes after the watch started that no event shows.
    fn lost_acks(&self) -> Vec<String> {
        let delivered: std::collections::HashSet<(&[u8], i64)> = self
            .events
            .iter()
            .filter(|e| !e.deleted)
            .map(|e| (e.key.as_slice(), e.revision))
            .collect();
        self.acks
            .iter()
            .filter(|a| a.revision > self.start_revision && a.revision <= self.final_revision)
            .filter(|a| !delivered.contains(&(a.key.as_slice(), a.revision)))
            .map(|a| {
                format!(
                    "acknowledged write of {} at revision {} was never seen",
                    show(&a.key),
                    a.revision
                )
            })
            .collect()
    }

    /// Keys whose state at the final revision differs from the watch's replay.
    fn gaps(&self) -> Vec<String> {
        let mut replayed: BTreeMap<&[u8], Option<i64>> = BTreeMap::new();
        for event in self
            .events
            .iter()
            .filter(|e| e.revision <= self.final_revision)
        {
            replayed.insert(&event.key, (!event.deleted).then_some(event.revision));
        }
        let mut found = Vec::new();
        for (key, revision) in &self.final_keys {
            if *revision <= self.start_revision {
                continue;
            }
            match replayed.get(key.as_slice()) {
                Some(Some(seen)) if seen == revision => {}
                other => found.push(format!(
                    "{} is at revision {revision} but the watch showed {other:?}",
                    show(key)
                )),
            }
        }
        for (key, state) in &replayed {
            if state.is_some() && !self.final_keys.contains_key(*key) {
                found.push(format!(
                    "{} was deleted but the watch never showed the delete",
                    show(key)
                ));
            }
        }
        found
    }

    /// Allocation IDs that appeared under two nodes (`/nomos/allocs/<node>/<id>`).
    fn double_placements(&self) -> Vec<String> {
        let mut nodes: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        let allocs = self
            .events
            .iter()
            .map(|e| (e.key.as_slice(), e.deleted))
            .chain(self.final_keys.keys().map(|k| (k.as_slice(), false)));
        for (key, deleted) in allocs {
            let key = show(key);
            let Some(rest) = key.strip_prefix("/nomos/allocs/") else {
                continue;
            };
            if let (Some((node, id)), false) = (rest.split_once('/'), deleted) {
                nodes
                    .entry(id.to_string())
                    .or_default()
                    .insert(node.to_string());
            }
        }
        nodes
            .into_iter()
            .filter(|(_, on)| on.len() > 1)
            .map(|(id, on)| format!("allocation {id} was placed on several nodes: {on:?}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: i64) -> Observed {
        Observed {
            key: key.as_bytes().to_vec(),
            revision,
            deleted: false,
        }
    }

    fn sound() -> Observations {
        Observations {
            start_revision: 10,
            events: vec![put("/a", 11), put("/b", 12), put("/a", 13)],
            acks: vec![Ack {
                key: b"/a".to_vec(),
                revision: 13,
            }],
            final_revision: 13,
            final_keys: [
                (b"/a".to_vec(), 13),
                (b"/b".to_vec(), 12),
                (b"/old".to_vec(), 3),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn a_sound_history_has_no_anomaly() {
        assert_eq!(sound().anomalies(), Vec::<String>::new());
    }

    #[test]
    fn each_anomaly_is_found() {
        let mut lost = sound();
        lost.acks.push(Ack {
            key: b"/c".to_vec(),
            revision: 12,
        });
        let mut twice = sound();
        twice.events.push(put("/a", 13));
        let mut gap = sound();
        gap.events.remove(1);
        let mut unseen_delete = sound();
        unseen_delete.final_keys.remove(b"/b".as_slice());
        let mut placed_twice = sound();
        placed_twice.events.push(put("/nomos/allocs/n1/x", 13));
        placed_twice.events.push(put("/nomos/allocs/n2/x", 13));
        let cases = [
            (lost, "was never seen"),
            (twice, "delivered twice"),
            (gap, "/b is at revision 12"),
            (unseen_delete, "never showed the delete"),
            (placed_twice, "placed on several nodes"),
        ];
        for (observations, expected) in cases {
            let found = observations.anomalies();
            assert!(
                found.iter().any(|a| a.contains(expected)),
                "expected {expected:?} in {found:?}"
            );
        }
    }
}

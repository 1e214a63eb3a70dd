//! Each cluster's scaling history (`scaling-history`, read by `stratos cluster
//! scaling-history`): kept in memory after a first load and written only when it
//! changed, rather than read back and rewritten whole at every evaluation of every
//! cluster (10,000 documents a cycle at 100k members).
//!
//! A run of evaluations that did nothing is one entry: the latest of them, with
//! `repeated` (how many) and `since` (when the first was). The last
//! [`HISTORY_LENGTH`] entries are kept, so a steady cluster's document stays small
//! and its changes stay in it for long (a hundred "none" entries were 25 minutes of
//! nothing at the default interval). Pure: the store is read and written by the
//! monitor through [`Histories::load`] and [`Histories::due`].

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

/// Entries kept per cluster.
pub const HISTORY_LENGTH: usize = 100;

/// A cluster whose only change is a refreshed no-op entry is written every this
/// many cycles (a tenth of the clusters each cycle), not at every one: at 100k
/// members, a quarter of them was a third of a cycle.
pub const REFRESH_CYCLES: u64 = 10;

#[derive(Debug)]
struct Entry {
    noop: bool,
    repeated: u64,
    since: u64,
    json: Box<str>,
}

/// What changed in a cluster's history since it was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    None,
    /// Only the latest no-op entry (its inputs, count and time).
    Refreshed,
    /// An entry was added: written in the same cycle.
    Appended,
}

#[derive(Debug)]
struct History {
    tenant: i64,
    entries: VecDeque<Entry>,
    change: Change,
    /// Which cycle modulo [`REFRESH_CYCLES`] writes a refresh.
    turn: u64,
}

impl History {
    /// Adds a decision (a `ScalingDecisionEvent` as JSON), merging it into the last
    /// entry when both did nothing.
    fn push(&mut self, mut entry: Value) {
        let noop = entry["action"] == "none";
        let timestamp = entry["timestamp"].as_u64().unwrap_or(0);
        let repeated = entry["repeated"].as_u64().unwrap_or(1).max(1);
        let since = entry["since"].as_u64().unwrap_or(timestamp);
        let merged = match self.entries.back() {
            Some(last) if noop && last.noop => Some((last.repeated + repeated, last.since.min(since))),
            _ => None,
        };
        let (repeated, since) = merged.unwrap_or((repeated, since));
        if let Some(fields) = entry.as_object_mut() {
            if repeated > 1 {
                fields.insert("repeated".into(), repeated.into());
                fields.insert("since".into(), since.into());
            } else {
                fields.remove("repeated");
                fields.remove("since");
            }
        }
        let json = serde_json::to_string(&entry).expect("a JSON value serialises").into_boxed_str();
        let entry = Entry { noop, repeated, since, json };
        if merged.is_some() {
            *self.entries.back_mut().expect("merged into it") = entry;
            self.change = self.change.max(Change::Refreshed);
        } else {
            self.entries.push_back(entry);
            if self.entries.len() > HISTORY_LENGTH {
                self.entries.pop_front();
            }
            self.change = Change::Appended;
        }
    }

    /// The stored document: the entries, oldest first.
    fn document(&self) -> Value {
        let mut text = String::with_capacity(2 + self.entries.iter().map(|e| e.json.len() + 1).sum::<usize>());
        text.push('[');
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&e.json);
        }
        text.push(']');
        serde_json::from_str(&text).expect("entries are JSON")
    }
}

/// The histories of the clusters being evaluated.
#[derive(Debug, Default)]
pub struct Histories {
    clusters: HashMap<String, History>,
    /// Counts cycles, for the refresh turns.
    cycle: u64,
    next_turn: u64,
}

impl Histories {
    /// Whether the cluster's history is held (else it is to be loaded first, once).
    pub fn holds(&self, cluster_id: &str) -> bool {
        self.clusters.contains_key(cluster_id)
    }

    /// Takes a cluster's stored document (`None`: there is none) as its history.
    /// A document written by an earlier build, a decision per evaluation, is merged
    /// as it is read, and written again at the cluster's turn.
    pub fn load(&mut self, tenant: i64, cluster_id: &str, stored: Option<Value>) {
        let turn = self.next_turn;
        self.next_turn += 1;
        let mut history = History { tenant, entries: VecDeque::new(), change: Change::None, turn };
        let entries = match stored {
            Some(Value::Array(entries)) => entries,
            _ => Vec::new(),
        };
        let count = entries.len();
        for entry in entries {
            history.push(entry);
        }
        history.change = if history.entries.len() < count { Change::Refreshed } else { Change::None };
        self.clusters.insert(cluster_id.to_string(), history);
    }

    /// Whether the cluster's latest decision did nothing (a new one that does nothing
    /// too only extends that run).
    pub fn idle(&self, cluster_id: &str) -> bool {
        self.clusters.get(cluster_id).and_then(|h| h.entries.back()).is_some_and(|e| e.noop)
    }

    /// Records a decision (a `ScalingDecisionEvent` as JSON) of a held cluster.
    pub fn record(&mut self, tenant: i64, cluster_id: &str, entry: Value) {
        if !self.holds(cluster_id) {
            self.load(tenant, cluster_id, None);
        }
        self.clusters.get_mut(cluster_id).expect("held").push(entry);
    }

    /// The documents to write after a look, per tenant: every history an entry was
    /// added to, and after a cycle (`cycle`), at their turn, those whose last no-op
    /// entry was refreshed. They count as written once returned.
    pub fn due(&mut self, cycle: bool) -> HashMap<i64, Vec<(String, Value)>> {
        let turn = self.cycle;
        if cycle {
            self.cycle += 1;
        }
        let mut due: HashMap<i64, Vec<(String, Value)>> = HashMap::new();
        for (cluster_id, h) in &mut self.clusters {
            let write = match h.change {
                Change::None => false,
                Change::Refreshed => cycle && h.turn % REFRESH_CYCLES == turn % REFRESH_CYCLES,
                Change::Appended => true,
            };
            if write {
                h.change = Change::None;
                due.entry(h.tenant).or_default().push((cluster_id.clone(), h.document()));
            }
        }
        due
    }

    /// Forgets the clusters no longer deployed (their documents stay in the store).
    pub fn retain(&mut self, deployed: impl Fn(&str) -> bool) {
        self.clusters.retain(|id, _| deployed(id));
    }

    /// Entries held, over all clusters.
    pub fn entries(&self) -> usize {
        self.clusters.values().map(|h| h.entries.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decision(action: &str, at: u64) -> Value {
        json!({"clusterId": "c", "action": action, "current": 2, "desired": 2, "decision": {}, "timestamp": at})
    }

    fn document(h: &mut Histories) -> Vec<Value> {
        let mut due = h.due(true);
        let mut writes = due.remove(&1).unwrap_or_default();
        assert!(writes.len() <= 1);
        writes.pop().map(|(_, d)| d.as_array().unwrap().clone()).unwrap_or_default()
    }

    #[test]
    fn a_run_of_noops_is_one_entry_with_its_count_and_start() {
        let mut h = Histories::default();
        h.load(1, "c", None);
        h.record(1, "c", decision("none", 10));
        assert_eq!(document(&mut h).len(), 1, "a new entry is written at once");
        for at in [20, 30, 40] {
            h.record(1, "c", decision("none", at));
        }
        h.record(1, "c", decision("scale-up", 50));
        h.record(1, "c", decision("none", 60));
        let doc = document(&mut h);
        let actions: Vec<&str> = doc.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["none", "scale-up", "none"]);
        assert_eq!((doc[0]["repeated"].as_u64(), doc[0]["since"].as_u64()), (Some(4), Some(10)));
        assert_eq!(doc[0]["timestamp"], 40, "the latest of the run, with its inputs");
        assert!(doc[2].get("repeated").is_none(), "a single no-op has no count");
    }

    #[test]
    fn a_cluster_is_idle_after_a_decision_that_did_nothing() {
        let mut h = Histories::default();
        assert!(!h.idle("c"), "no decision yet: the first is announced");
        h.record(1, "c", decision("none", 10));
        assert!(h.idle("c"));
        h.record(1, "c", decision("scale-up", 20));
        assert!(!h.idle("c"), "the no-op after a scale-up starts a new run");
        h.record(1, "c", decision("none", 30));
        assert!(h.idle("c"));
    }

    #[test]
    fn at_most_the_last_hundred_entries_are_kept() {
        let mut h = Histories::default();
        for i in 0..300u64 {
            h.record(1, "c", decision(if i % 2 == 0 { "scale-up" } else { "none" }, i));
        }
        let doc = document(&mut h);
        assert_eq!(doc.len(), HISTORY_LENGTH);
        assert_eq!(doc.last().unwrap()["timestamp"], 299);
        assert_eq!(doc[0]["timestamp"], 200);
    }

    #[test]
    fn a_refreshed_noop_is_written_at_its_turn_an_added_entry_at_once() {
        let mut h = Histories::default();
        let clusters: Vec<String> = (0..REFRESH_CYCLES).map(|i| format!("c{i}")).collect();
        for c in &clusters {
            h.record(1, c, decision("none", 0));
        }
        assert_eq!(h.due(true)[&1].len(), clusters.len(), "new entries");
        let mut written = Vec::new();
        for cycle in 1..=REFRESH_CYCLES {
            for c in &clusters {
                h.record(1, c, decision("none", cycle));
            }
            let due = h.due(true);
            written.push(due.get(&1).map_or(0, |w| w.len()));
        }
        assert_eq!(written, vec![1; REFRESH_CYCLES as usize], "each written once in the turns, one a cycle");
        let a = clusters[0].as_str();
        h.record(1, a, decision("scale-down", 9));
        assert!(h.due(true)[&1].iter().any(|(id, _)| id == a), "an added entry is written at once");
        // The refreshes still pending go at their turns; then nothing is due.
        for _ in 0..REFRESH_CYCLES {
            h.due(true);
        }
        assert!(h.due(true).is_empty(), "nothing changed since");
    }

    #[test]
    fn a_document_of_an_earlier_build_is_merged_as_it_is_read_and_written_again() {
        let mut h = Histories::default();
        let stored: Vec<Value> = (0..100).map(|i| decision(if i == 50 { "scale-up" } else { "none" }, i)).collect();
        h.load(1, "c", Some(Value::Array(stored)));
        assert!(h.holds("c"));
        assert_eq!(h.entries(), 3);
        // Written at its turn (within REFRESH_CYCLES cycles), merged.
        let doc = (0..REFRESH_CYCLES).map(|_| document(&mut h)).find(|d| !d.is_empty()).unwrap();
        assert_eq!(doc.len(), 3);
        assert_eq!(doc[2]["repeated"], 49);
        h.retain(|_| false);
        assert!(!h.holds("c"));
    }
}

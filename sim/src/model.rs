//! The model of what was acknowledged: the state as of the last acknowledged sync, and the
//! mutations appended since, in LSN order (the in-doubt tail).
//!
//! In a running session every read must see the whole history (acknowledged and in doubt).
//! After a crash the state must be the acknowledged state plus a prefix of the in-doubt tail
//! (docs/design.md, invariant 2): that one check covers S1 (acknowledged writes readable),
//! S2 (no bytes never written: every value is unique to the write that made it) and S3
//! (a batch is one entry of the tail, so it is all there or not at all).

use std::collections::BTreeMap;

/// (table, key) -> value.
pub type State = BTreeMap<(String, Vec<u8>), Vec<u8>>;

/// One acknowledged-or-in-doubt mutation: a put or delete, or an atomic batch of them.
#[derive(Debug, Clone)]
pub enum Mutation {
    One(String, Vec<u8>, Option<Vec<u8>>),
    Batch(Vec<(String, Vec<u8>, Option<Vec<u8>>)>),
}

fn apply_one(state: &mut State, table: &str, key: &[u8], value: &Option<Vec<u8>>) {
    let k = (table.to_string(), key.to_vec());
    match value {
        Some(v) => {
            state.insert(k, v.clone());
        }
        None => {
            state.remove(&k);
        }
    }
}

fn apply(state: &mut State, m: &Mutation) {
    match m {
        Mutation::One(t, k, v) => apply_one(state, t, k, v),
        Mutation::Batch(ops) => {
            for (t, k, v) in ops {
                apply_one(state, t, k, v);
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Model {
    /// The state as of the last acknowledged sync (or the last verified recovery).
    acked: State,
    /// Appended since, in LSN order.
    in_doubt: Vec<Mutation>,
    /// The whole history applied (what a running session must read).
    current: State,
    /// The acknowledged state before the last acknowledgment that added anything, and the
    /// mutations that acknowledgment added (the last group the log holds).
    before_last_group: State,
    last_group: Vec<Mutation>,
    /// The in-doubt mutations the last recovery did not keep, until the next append: the
    /// stripes that held them lie beyond the log's end and are overwritten only by the
    /// next log write, so an open that can read more of them may replay them.
    discarded: Vec<Mutation>,
}

impl Model {
    pub fn append(&mut self, m: Mutation) {
        self.discarded.clear();
        apply(&mut self.current, &m);
        self.in_doubt.push(m);
    }

    /// A sync returned Ok: everything appended so far is acknowledged.
    pub fn acknowledge(&mut self) {
        let group = std::mem::take(&mut self.in_doubt);
        self.remember_group(group);
        self.acked = self.current.clone();
    }

    fn remember_group(&mut self, group: Vec<Mutation>) {
        if !group.is_empty() {
            self.before_last_group = self.acked.clone();
            self.last_group = group;
        }
    }

    /// Whether a mutation the last recovery did not keep set `table`/`key` to `value`
    /// (None: deleted it), with nothing appended since.
    pub fn was_discarded(&self, table: &str, key: &[u8], value: Option<&[u8]>) -> bool {
        let hit = |t: &String, k: &Vec<u8>, v: &Option<Vec<u8>>| {
            t == table && k == key && v.as_deref() == value
        };
        self.discarded.iter().any(|m| match m {
            Mutation::One(t, k, v) => hit(t, k, v),
            Mutation::Batch(ops) => ops.iter().any(|(t, k, v)| hit(t, k, v)),
        })
    }

    /// Whether `s` is the state before the last acknowledged group plus a prefix of that
    /// group short of all of it: the log's last acknowledged writes gone, and nothing else.
    pub fn is_last_group_lost(&self, s: &State) -> bool {
        let mut candidate = self.before_last_group.clone();
        for m in &self.last_group {
            if &candidate == s {
                return true;
            }
            apply(&mut candidate, m);
        }
        false
    }

    /// The last acknowledged group, in words (for failure reports).
    pub fn last_group_summary(&self) -> String {
        let one = |(t, k, v): &(String, Vec<u8>, Option<Vec<u8>>)| {
            format!(
                "{t}/{}{}",
                String::from_utf8_lossy(k),
                v.as_ref()
                    .map_or(" deleted".into(), |v| format!(" {} B", v.len()))
            )
        };
        self.last_group
            .iter()
            .map(|m| match m {
                Mutation::One(t, k, v) => one(&(t.clone(), k.clone(), v.clone())),
                Mutation::Batch(ops) => format!(
                    "batch [{}]",
                    ops.iter().map(one).collect::<Vec<_>>().join(", ")
                ),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn current(&self) -> &State {
        &self.current
    }

    pub fn in_doubt_len(&self) -> usize {
        self.in_doubt.len()
    }

    pub fn get(&self, table: &str, key: &[u8]) -> Option<&Vec<u8>> {
        self.current.get(&(table.to_string(), key.to_vec()))
    }

    /// After a crash: finds the prefix of the in-doubt tail that, applied to the acknowledged
    /// state, gives `found`, and makes that the acknowledged state. Returns how many in-doubt
    /// mutations survived, or a description of why `found` is no such state.
    pub fn recover(&mut self, found: &State) -> Result<usize, String> {
        let mut candidate = self.acked.clone();
        let mut matched = None;
        if &candidate == found {
            matched = Some(0);
        }
        for (i, m) in self.in_doubt.iter().enumerate() {
            apply(&mut candidate, m);
            if &candidate == found {
                matched = Some(i + 1);
            }
        }
        match matched {
            Some(p) => {
                let group: Vec<Mutation> = self.in_doubt.drain(..p).collect();
                self.remember_group(group);
                self.discarded = std::mem::take(&mut self.in_doubt);
                self.acked = found.clone();
                self.current = found.clone();
                self.in_doubt.clear();
                Ok(p)
            }
            None => Err(describe_difference(&self.acked, found, self.in_doubt.len())),
        }
    }
}

/// What differs between the acknowledged state and what was found, for a failure report.
pub fn describe_difference(acked: &State, found: &State, in_doubt: usize) -> String {
    let mut lines = Vec::new();
    for ((t, k), v) in acked {
        match found.get(&(t.clone(), k.clone())) {
            None => lines.push(format!("acknowledged {t}/{k:02x?} missing")),
            Some(f) if f != v => lines.push(format!(
                "{t}/{k:02x?}: acknowledged {} bytes, found {} other bytes",
                v.len(),
                f.len()
            )),
            _ => {}
        }
    }
    for (t, k) in found.keys() {
        if !acked.contains_key(&(t.clone(), k.clone())) {
            lines.push(format!("{t}/{k:02x?} found but not acknowledged"));
        }
    }
    lines.truncate(8);
    format!(
        "the state is not the acknowledged history plus a prefix of the {in_doubt} in-doubt \
         writes; against the acknowledged state: {}",
        lines.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: u8, v: u8) -> Mutation {
        Mutation::One("t".into(), vec![k], Some(vec![v]))
    }

    #[test]
    fn recovery_accepts_exactly_the_prefixes() {
        let mut m = Model::default();
        m.append(put(1, 1));
        m.acknowledge();
        m.append(put(2, 2));
        m.append(Mutation::Batch(vec![
            ("t".into(), vec![3], Some(vec![3])),
            ("t".into(), vec![1], None),
        ]));
        let mut after_batch = State::new();
        after_batch.insert(("t".into(), vec![2]), vec![2]);
        after_batch.insert(("t".into(), vec![3]), vec![3]);
        // Half a batch is no prefix.
        let mut torn = after_batch.clone();
        torn.insert(("t".into(), vec![1]), vec![1]);
        torn.remove(&("t".into(), vec![2]));
        assert!(m.recover(&torn).is_err());
        // Losing an acknowledged write is no prefix.
        assert!(m.recover(&State::new()).is_err());
        assert_eq!(m.recover(&after_batch), Ok(2));
        assert_eq!(m.current(), &after_batch);
    }
}

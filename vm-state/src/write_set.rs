//! [`WriteSet`]: a block's writes as a vector sorted by key.
//!
//! Block-STM ends a block with its final writes already sorted (`mvcc::memory`), and every
//! consumer (state root, commit, node overlay) walks them in key order or looks a few keys
//! up, so a sorted vector serves them all without building a map: at 10,000 transactions
//! the `BTreeMap` build was 3-5 ms of a 20 ms block on 16 threads, nearly all of it serial.

use std::ops::Index;

use crate::types::{StateKey, StateValue};

/// One write: the key and its final value (`None`: deleted).
pub type Write = (StateKey, Option<StateValue>);

/// A block's writes: every key it wrote once, in key order, with its final value (`None`:
/// deleted). Equality is entry by entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet(Vec<Write>);

impl WriteSet {
    /// An empty write set.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Wraps writes that are already sorted by key with no key twice (checked in debug
    /// builds; release builds trust the caller, the executor).
    pub(crate) fn from_sorted(writes: Vec<Write>) -> Self {
        debug_assert!(writes.windows(2).all(|w| w[0].0 < w[1].0));
        Self(writes)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The write of `key`, if the block wrote it (`Some(None)`: deleted).
    pub fn get(&self, key: &StateKey) -> Option<&Option<StateValue>> {
        self.0
            .binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Whether the block wrote `key`.
    pub fn contains_key(&self, key: &StateKey) -> bool {
        self.get(key).is_some()
    }

    /// Sets the write of `key`; returns the previous one. `O(len)` for a new key: for a
    /// handful of writes (use [`Extend`] for many).
    pub fn insert(
        &mut self,
        key: StateKey,
        value: Option<StateValue>,
    ) -> Option<Option<StateValue>> {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// The writes in key order.
    pub fn iter(&self) -> Iter<'_> {
        self.0.iter().map(split)
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &StateKey> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The writes as a sorted slice.
    pub fn as_slice(&self) -> &[Write] {
        &self.0
    }

    /// Merges `later` into `self` in one linear pass, `later` winning on a common key.
    pub fn merge(&mut self, later: WriteSet) {
        if later.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = later;
            return;
        }
        let earlier = std::mem::take(&mut self.0);
        let mut out = Vec::with_capacity(earlier.len() + later.0.len());
        let mut a = earlier.into_iter().peekable();
        let mut b = later.0.into_iter().peekable();
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal => {
                        a.next();
                        false
                    }
                },
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            out.extend(if take_a { a.next() } else { b.next() });
        }
        self.0 = out;
    }
}

fn split(w: &Write) -> (&StateKey, &Option<StateValue>) {
    (&w.0, &w.1)
}

/// Iterator over a [`WriteSet`] in key order.
pub type Iter<'a> =
    std::iter::Map<std::slice::Iter<'a, Write>, fn(&Write) -> (&StateKey, &Option<StateValue>)>;

impl FromIterator<Write> for WriteSet {
    /// Sorts by key; of writes to the same key, the last one wins (as with a map).
    fn from_iter<I: IntoIterator<Item = Write>>(iter: I) -> Self {
        let mut v: Vec<Write> = iter.into_iter().collect();
        // Stable, so equal keys keep their order and the last is the latest.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<Write> = Vec::with_capacity(v.len());
        for w in v {
            match out.last_mut() {
                Some(last) if last.0 == w.0 => *last = w,
                _ => out.push(w),
            }
        }
        Self(out)
    }
}

impl Extend<Write> for WriteSet {
    /// Adds writes (the new ones win on a common key) with one sort and one merge.
    fn extend<I: IntoIterator<Item = Write>>(&mut self, iter: I) {
        let more: WriteSet = iter.into_iter().collect();
        self.merge(more);
    }
}

impl IntoIterator for WriteSet {
    type Item = Write;
    type IntoIter = std::vec::IntoIter<Write>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a WriteSet {
    type Item = (&'a StateKey, &'a Option<StateValue>);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Index<&StateKey> for WriteSet {
    type Output = Option<StateValue>;
    /// The write of `key`; panics if the block did not write it (as `BTreeMap` does).
    fn index(&self, key: &StateKey) -> &Self::Output {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no write of key {key:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn write() -> impl Strategy<Value = Write> {
        (
            (0u8..30).prop_map(|k| StateKey(vec![b'k', k % 3, k])),
            proptest::option::of((0u8..4).prop_map(|v| Arc::<[u8]>::from(vec![v]))),
        )
    }

    proptest! {
        /// Collect, insert, extend, merge, get and iterate behave as on a `BTreeMap`.
        #[test]
        fn behaves_as_a_map(
            a in proptest::collection::vec(write(), 0..40),
            b in proptest::collection::vec(write(), 0..40),
            c in proptest::collection::vec(write(), 0..5),
        ) {
            let mut ws: WriteSet = a.iter().cloned().collect();
            let mut model: BTreeMap<StateKey, Option<StateValue>> = a.iter().cloned().collect();
            for (k, v) in c.iter().cloned() {
                prop_assert_eq!(ws.insert(k.clone(), v.clone()), model.insert(k, v));
            }
            ws.extend(b.iter().cloned());
            model.extend(b.iter().cloned());
            let mut merged = WriteSet::new();
            merged.merge(ws.clone());
            prop_assert_eq!(&merged, &ws);
            prop_assert_eq!(ws.len(), model.len());
            prop_assert!(ws.iter().map(|(k, v)| (k.clone(), v.clone())).eq(model.clone()));
            for k in (0u8..30).map(|k| StateKey(vec![b'k', k % 3, k])) {
                prop_assert_eq!(ws.get(&k), model.get(&k));
            }
            let sorted = WriteSet::from_sorted(model.clone().into_iter().collect());
            prop_assert_eq!(sorted, ws);
        }
    }
}

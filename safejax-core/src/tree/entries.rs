//! The entries of one dict of a [`Tree`](super::Tree): a sorted `Vec` while the dict is small,
//! a `BTreeMap` once it is large.
//!
//! Most dicts of a model hold a few entries (a layer's `kernel` and `bias`), and a `BTreeMap`
//! allocates a whole node of eleven slots for its first entry: about a kilobyte for one tensor.
//! A sorted `Vec` holds a small dict in one allocation of its size, read in order; past
//! [`SMALL`] entries, where a `Vec`'s inserts would move more than a map's, the dict becomes a
//! map.

use std::collections::{BTreeMap, btree_map};
use std::iter::FusedIterator;
use std::{mem, slice};

use super::Node;

/// The most entries a dict keeps in a sorted `Vec`.
const SMALL: usize = 32;

/// The entries of one dict, sorted by name, each name once.
#[derive(Debug)]
pub(super) enum Entries {
    Small(Vec<(String, Node)>),
    Large(BTreeMap<String, Node>),
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Small(Vec::new())
    }
}

impl Entries {
    /// Entries from a list sorted by name with no name twice, as [`Entries::iter`] gives them.
    pub(super) fn from_sorted(sorted: Vec<(String, Node)>) -> Self {
        debug_assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0));
        if sorted.len() <= SMALL {
            // Lists grown by pushes keep room for four entries or more; most dicts of a
            // model stay as they are loaded.
            let mut sorted = sorted;
            sorted.shrink_to_fit();
            Entries::Small(sorted)
        } else {
            // Sorted input builds the map in bulk.
            Entries::Large(sorted.into_iter().collect())
        }
    }

    /// Entries from a list in any order; of the entries of one name, the last is kept.
    pub(super) fn from_unsorted(mut list: Vec<(String, Node)>) -> Self {
        // Stable: the entries of one name stay in their order, and the last one is kept.
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(String, Node)> = Vec::with_capacity(list.len());
        for entry in list {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        Entries::from_sorted(kept)
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Entries::Small(list) => list.len(),
            Entries::Large(map) => map.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn get(&self, name: &str) -> Option<&Node> {
        match self {
            Entries::Small(list) => {
                let at = list.binary_search_by(|e| e.0.as_str().cmp(name)).ok()?;
                Some(&list[at].1)
            }
            Entries::Large(map) => map.get(name),
        }
    }

    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Node> {
        match self {
            Entries::Small(list) => {
                let at = list.binary_search_by(|e| e.0.as_str().cmp(name)).ok()?;
                Some(&mut list[at].1)
            }
            Entries::Large(map) => map.get_mut(name),
        }
    }

    pub(super) fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Makes a full small dict a map if `name` would be a new entry.
    fn make_room(&mut self, name: &str) {
        if let Entries::Small(list) = self
            && list.len() >= SMALL
            && list.binary_search_by(|e| e.0.as_str().cmp(name)).is_err()
        {
            *self = Entries::Large(mem::take(list).into_iter().collect());
        }
    }

    /// Inserts `node` as `name`, returning what was there.
    pub(super) fn insert(&mut self, name: String, node: Node) -> Option<Node> {
        self.make_room(&name);
        match self {
            Entries::Small(list) => match list.binary_search_by(|e| e.0.cmp(&name)) {
                Ok(at) => Some(mem::replace(&mut list[at].1, node)),
                Err(at) => {
                    list.insert(at, (name, node));
                    None
                }
            },
            Entries::Large(map) => map.insert(name, node),
        }
    }

    pub(super) fn remove(&mut self, name: &str) -> Option<Node> {
        match self {
            Entries::Small(list) => {
                let at = list.binary_search_by(|e| e.0.as_str().cmp(name)).ok()?;
                Some(list.remove(at).1)
            }
            Entries::Large(map) => map.remove(name),
        }
    }

    /// The node named `name`, inserted by `make` if there is none.
    pub(super) fn get_or_insert_with(
        &mut self,
        name: &str,
        make: impl FnOnce() -> Node,
    ) -> &mut Node {
        self.make_room(name);
        match self {
            Entries::Small(list) => {
                let at = match list.binary_search_by(|e| e.0.as_str().cmp(name)) {
                    Ok(at) => at,
                    Err(at) => {
                        list.insert(at, (name.to_owned(), make()));
                        at
                    }
                };
                &mut list[at].1
            }
            Entries::Large(map) => map.entry(name.to_owned()).or_insert_with(make),
        }
    }

    pub(super) fn iter(&self) -> Iter<'_> {
        Iter(match self {
            Entries::Small(list) => IterInner::Small(list.iter()),
            Entries::Large(map) => IterInner::Large(map.iter()),
        })
    }

    /// The nodes, each dropped as the iterator passes it.
    pub(super) fn into_values(self) -> impl Iterator<Item = Node> {
        let (small, large) = match self {
            Entries::Small(list) => (Some(list.into_iter()), None),
            Entries::Large(map) => (None, Some(map.into_values())),
        };
        small
            .into_iter()
            .flatten()
            .map(|(_, node)| node)
            .chain(large.into_iter().flatten())
    }
}

/// The entries of a dict of a [`Tree`](super::Tree), sorted by name ([`Tree::iter`](super::Tree::iter)).
#[derive(Debug, Clone)]
pub struct Iter<'a>(IterInner<'a>);

#[derive(Debug, Clone)]
enum IterInner<'a> {
    Small(slice::Iter<'a, (String, Node)>),
    Large(btree_map::Iter<'a, String, Node>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterInner::Small(list) => list.next().map(|(name, node)| (name, node)),
            IterInner::Large(map) => map.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.len();
        (len, Some(len))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterInner::Small(list) => list.next_back().map(|(name, node)| (name, node)),
            IterInner::Large(map) => map.next_back(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {
    fn len(&self) -> usize {
        match &self.0 {
            IterInner::Small(list) => list.len(),
            IterInner::Large(map) => map.len(),
        }
    }
}

impl FusedIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::{Entries, Node, SMALL};
    use crate::tensor::Tensor;
    use crate::tree::Tree;

    fn tensor(i: u8) -> Node {
        Node::Tensor(Tensor::from_array(&ndarray::array![i]))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, u8),
        Remove(String),
        GetOrInsert(String),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few names, so that names repeat; enough of them to pass the small size.
        let name = (0..SMALL as u32 * 3).prop_map(|i| format!("n{i}"));
        prop_oneof![
            (name.clone(), any::<u8>()).prop_map(|(n, v)| Op::Insert(n, v)),
            name.clone().prop_map(Op::Remove),
            name.prop_map(Op::GetOrInsert),
        ]
    }

    fn same(entries: &Entries, map: &BTreeMap<String, Node>) -> bool {
        entries.len() == map.len()
            && entries.iter().eq(map.iter())
            && entries.iter().rev().eq(map.iter().rev())
            && map.keys().all(|k| entries.get(k) == map.get(k))
    }

    proptest! {
        /// Every operation does what it does on a `BTreeMap`, small or large.
        #[test]
        fn entries_behave_as_a_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut entries = Entries::default();
            let mut map = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(name, v) => {
                        prop_assert_eq!(entries.insert(name.clone(), tensor(v)), map.insert(name, tensor(v)));
                    }
                    Op::Remove(name) => prop_assert_eq!(entries.remove(&name), map.remove(&name)),
                    Op::GetOrInsert(name) => {
                        let got = entries.get_or_insert_with(&name, || Node::Tree(Tree::new())).clone();
                        let want = map.entry(name).or_insert_with(|| Node::Tree(Tree::new())).clone();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert!(same(&entries, &map));
            }
            let unsorted: Vec<(String, Node)> = map.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert!(same(&Entries::from_unsorted(unsorted), &map));
        }
    }

    #[test]
    fn a_small_dict_is_a_list_and_a_large_one_a_map() {
        let mut entries = Entries::default();
        for i in 0..SMALL {
            entries.insert(format!("{i:03}"), tensor(0));
        }
        assert!(matches!(entries, Entries::Small(_)));
        // Replacing an entry of a full list keeps it a list.
        assert!(entries.insert("000".to_owned(), tensor(1)).is_some());
        assert!(matches!(entries, Entries::Small(_)));
        entries.insert("new".to_owned(), tensor(2));
        assert!(matches!(entries, Entries::Large(_)));
        assert_eq!(entries.len(), SMALL + 1);
        assert_eq!(entries.iter().next().map(|e| e.0.as_str()), Some("000"));
        assert_eq!(entries.get("000"), Some(&tensor(1)));
    }

    #[test]
    fn of_the_entries_of_one_name_the_last_is_kept() {
        let list = vec![
            ("b".to_owned(), tensor(1)),
            ("a".to_owned(), tensor(2)),
            ("b".to_owned(), tensor(3)),
        ];
        let entries = Entries::from_unsorted(list);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(entries.get("b"), Some(&tensor(3)));
    }
}

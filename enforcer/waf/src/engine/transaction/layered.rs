//! A collection as a transaction sees it: what a static run of phase 1 left
//! (see [`super::prefix`]), shared with every other transaction, under what
//! this transaction wrote itself.
//!
//! The CRS sets about 55 TX variables in its static runs. Copying them into
//! every transaction cost a hash table, about 110 reference counts taken and
//! as many given back when the transaction ended: atomic operations, each a
//! few nanoseconds. A transaction now points at the run's collection and
//! keeps only its own writes: reads look at its own entries first, then at
//! the shared ones; an unset of a shared variable is remembered as such.
//! Iteration yields every variable once (own entries first), so a selector
//! sees exactly the collection the copy would have held.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::variables::{KeyRegex, KeySelector};

type Bytes = Arc<[u8]>;

/// A plain collection: name (lowercased for TX) to value.
pub(crate) type Map = FxHashMap<Bytes, Bytes>;

/// What a static run leaves in a collection, shared by the transactions
/// that apply the run.
#[derive(Debug, Default)]
pub(crate) struct Base {
    map: Map,
    /// For each selector regex a rule applies to the collection (by the
    /// address of its `Arc<KeyRegex>`, which the ruleset holds): the
    /// entries it selects, found once instead of by a walk of every entry
    /// in every transaction (CRS 920450 and 922110 walk TX per request).
    selected: Vec<(usize, Vec<(Bytes, Bytes)>)>,
}

impl Base {
    /// `map` with the entries each of `regexes` selects.
    pub(crate) fn new(map: Map, regexes: &[Arc<KeyRegex>]) -> Base {
        let selected = regexes
            .iter()
            .map(|r| {
                let entries = map
                    .iter()
                    .filter(|(k, _)| r.is_match(k))
                    .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
                    .collect();
                (regex_id(r), entries)
            })
            .collect();
        Base { map, selected }
    }

    pub(crate) fn map(&self) -> &Map {
        &self.map
    }

    fn selected_by(&self, sel: &KeySelector) -> Option<&[(Bytes, Bytes)]> {
        let KeySelector::Regex(r) = sel else {
            return None;
        };
        let id = regex_id(r);
        self.selected
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, entries)| entries.as_slice())
    }
}

/// The identity of a selector regex (see `Base::selected`).
fn regex_id(r: &Arc<KeyRegex>) -> usize {
    Arc::as_ptr(r) as *const u8 as usize
}

/// A collection: shared entries of a static run under the transaction's own.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layered {
    base: Option<Arc<Base>>,
    own: Map,
    /// The entries of `base` this transaction unset, by the address of
    /// their key (the base does not change while it is shared). An entry of
    /// `own` hides the base entry of its key too.
    hidden: Vec<usize>,
}

/// The identity of a shared key (see `Layered::hidden`).
#[inline]
fn addr(key: &Bytes) -> usize {
    key.as_ptr() as usize
}

impl Layered {
    /// An empty collection with room for `n` entries of its own.
    pub(crate) fn with_capacity(n: usize) -> Layered {
        Layered {
            base: None,
            own: Map::with_capacity_and_hasher(n, Default::default()),
            hidden: Vec::new(),
        }
    }

    /// An empty collection whose own entries go in `own` (an emptied map
    /// kept for its room).
    pub(crate) fn with_own(own: Map) -> Layered {
        debug_assert!(own.is_empty());
        Layered {
            base: None,
            own,
            hidden: Vec::new(),
        }
    }

    /// The map of the transaction's own entries, leaving an empty one.
    pub(crate) fn take_own(&mut self) -> Map {
        std::mem::take(&mut self.own)
    }

    /// Replaces the whole collection by `base` (what a static run left).
    pub(crate) fn set_base(&mut self, base: Arc<Base>) {
        self.own.clear();
        self.hidden.clear();
        self.base = Some(base);
    }

    /// The shared entry of `key`, unless this transaction unset it.
    #[inline]
    fn base_entry(&self, key: &[u8]) -> Option<(&Bytes, &Bytes)> {
        let (k, v) = self.base.as_ref()?.map.get_key_value(key)?;
        (!self.is_hidden(k)).then_some((k, v))
    }

    #[inline]
    fn is_hidden(&self, base_key: &Bytes) -> bool {
        !self.hidden.is_empty() && self.hidden.contains(&addr(base_key))
    }

    /// Hides the shared entry of `key`, if there is one.
    fn hide(&mut self, key: &[u8]) {
        if let Some((k, _)) = self.base_entry(key) {
            let a = addr(k);
            self.hidden.push(a);
        }
    }

    /// Calls `f` with every entry `sel` selects, once: the transaction's
    /// own entries, then the shared ones it neither set nor unset (those a
    /// selector regex of the ruleset selects were found with the base).
    #[inline]
    pub(crate) fn for_each_selected(&self, sel: &KeySelector, mut f: impl FnMut(&Bytes, &Bytes)) {
        for (k, v) in &self.own {
            if sel.matches(k) {
                f(k, v);
            }
        }
        let Some(base) = &self.base else {
            return;
        };
        let shown = |k: &Bytes| !self.is_hidden(k) && !self.own.contains_key(&k[..]);
        match base.selected_by(sel) {
            Some(entries) => {
                for (k, v) in entries {
                    if shown(k) {
                        f(k, v);
                    }
                }
            }
            None => {
                for (k, v) in &base.map {
                    if sel.matches(k) && shown(k) {
                        f(k, v);
                    }
                }
            }
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.get_key_value(key).map(|(_, v)| v)
    }

    #[inline]
    pub(crate) fn get_key_value(&self, key: &[u8]) -> Option<(&Bytes, &Bytes)> {
        match self.own.get_key_value(key) {
            Some(kv) => Some(kv),
            None => self.base_entry(key),
        }
    }

    #[inline]
    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.get_key_value(key).is_some()
    }

    /// The value of `key` when this transaction set it itself (a shared
    /// value is not copied: setting `key` with [`Layered::insert`] hides it).
    #[inline]
    pub(crate) fn get_own_mut(&mut self, key: &[u8]) -> Option<&mut Bytes> {
        self.own.get_mut(key)
    }

    #[inline]
    pub(crate) fn insert(&mut self, key: Bytes, value: Bytes) {
        self.own.insert(key, value);
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.own.remove(key);
        self.hide(key);
    }

    /// Every entry once: the transaction's own, then the shared ones it
    /// neither set nor unset.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        let base = self.base.as_deref().into_iter().flat_map(|b| &b.map);
        self.own
            .iter()
            .chain(base.filter(|(k, _)| !self.is_hidden(k) && !self.own.contains_key(&k[..])))
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.iter().map(|(k, _)| k)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The collection as one plain map.
    pub(crate) fn to_map(&self) -> Map {
        self.iter()
            .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Arc::from(s.as_bytes())
    }

    fn sorted(l: &Layered) -> Vec<(String, String)> {
        let mut v: Vec<_> = l
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn base() -> Arc<Base> {
        let map = [("a", "1"), ("b", "2"), ("c", "3")]
            .iter()
            .map(|(k, v)| (b(k), b(v)))
            .collect();
        Arc::new(Base::new(map, &[]))
    }

    #[test]
    fn reads_see_own_entries_over_shared_ones() {
        let mut l = Layered::with_capacity(4);
        l.set_base(base());
        assert_eq!(l.get(b"a").map(|v| &v[..]), Some(&b"1"[..]));
        l.insert(b("a"), b("9"));
        assert_eq!(l.get(b"a").map(|v| &v[..]), Some(&b"9"[..]));
        assert_eq!(l.get(b"z"), None);
        assert_eq!(
            sorted(&l),
            [("a", "9"), ("b", "2"), ("c", "3")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn unset_hides_a_shared_entry_until_it_is_set_again() {
        let mut l = Layered::default();
        l.set_base(base());
        l.remove(b"b");
        assert!(!l.contains_key(b"b"));
        assert_eq!(sorted(&l).len(), 2);
        l.insert(b("b"), b("7"));
        assert_eq!(l.get(b"b").map(|v| &v[..]), Some(&b"7"[..]));
        assert_eq!(sorted(&l).len(), 3);
        l.remove(b"b");
        assert!(!l.contains_key(b"b"));
        assert_eq!(l.get_own_mut(b"b"), None);
    }

    #[test]
    fn own_values_change_in_place_and_shared_ones_are_left_alone() {
        let shared = base();
        let mut l = Layered::default();
        l.set_base(Arc::clone(&shared));
        assert!(l.get_own_mut(b"c").is_none());
        l.insert(b("c"), b("30"));
        *l.get_own_mut(b"c").expect("own") = b("31");
        assert_eq!(l.get(b"c").map(|v| &v[..]), Some(&b"31"[..]));
        assert_eq!(shared.map().get(&b"c"[..]).map(|v| &v[..]), Some(&b"3"[..]));
        assert_eq!(sorted(&l).len(), 3);
    }

    #[test]
    fn set_base_replaces_everything() {
        let mut l = Layered::default();
        assert!(l.is_empty());
        l.insert(b("x"), b("1"));
        l.set_base(base());
        l.remove(b"a");
        l.set_base(base());
        assert_eq!(sorted(&l).len(), 3);
        assert!(!l.contains_key(b"x"));
        assert_eq!(l.to_map().len(), 3);
    }

    #[test]
    fn selector_regexes_see_the_same_entries_with_or_without_their_lists() {
        let r = Arc::new(KeyRegex::new("^x_").expect("regex"));
        let map: Map = [("x_a", "1"), ("x_b", "2"), ("y", "3")]
            .iter()
            .map(|(k, v)| (b(k), b(v)))
            .collect();
        let sel = KeySelector::Regex(Arc::clone(&r));
        // With the regex's list (`with`) and with a walk (`without`).
        let mut with = Layered::default();
        with.set_base(Arc::new(Base::new(map.clone(), &[Arc::clone(&r)])));
        let mut without = Layered::default();
        without.set_base(Arc::new(Base::new(map, &[])));
        for l in [&mut with, &mut without] {
            l.insert(b("x_c"), b("4"));
            l.insert(b("x_a"), b("5"));
            l.remove(b"x_b");
        }
        let seen = |l: &Layered| {
            let mut v = Vec::new();
            l.for_each_selected(&sel, |k, val| v.push((k.to_vec(), val.to_vec())));
            v.sort();
            v
        };
        let want = vec![
            (b"x_a".to_vec(), b"5".to_vec()),
            (b"x_c".to_vec(), b"4".to_vec()),
        ];
        assert_eq!(seen(&with), want);
        assert_eq!(seen(&without), want);
    }
}

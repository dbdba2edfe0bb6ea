//! Compiled artefacts shared between the rulesets alive in a process.
//!
//! A ruleset update usually keeps most of its rules: the enforcer swaps in
//! the same CRS with one rule file changed, the control plane re-validates
//! every ruleset when one ConfigMap changes. The expensive parts of a
//! compilation (regexes, phrase automata, literal prefilters) are pure
//! functions of their source text, so a [`LiveCache`] hands a new ruleset
//! the artefact an older one still holds instead of building it again. It
//! keeps weak references only: an artefact is freed with the last ruleset
//! that uses it, and a process holding one ruleset holds each artefact once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, BuildError, MatchKind};

/// Phrase automata (`@pm`, `@pmFromFile`, literal prefilters) alive in this
/// process, by (ASCII case-insensitive, phrases).
static LIVE_AUTOMATA: LazyLock<LiveCache<PhraseKey, AhoCorasick>> = LazyLock::new(LiveCache::new);

/// (ASCII case-insensitive, phrases).
type PhraseKey = (bool, Vec<Vec<u8>>);

/// An Aho-Corasick automaton over `phrases` with standard match semantics
/// (the match that ends first), shared with any live ruleset that built the
/// same one: `@pmFromFile` lists are rebuilt on every ruleset update
/// otherwise, and a `@pm` operator and its literal prefilter are the same
/// automaton.
pub(crate) fn phrase_automaton(
    case_insensitive: bool,
    phrases: &[Vec<u8>],
) -> Result<Arc<AhoCorasick>, BuildError> {
    LIVE_AUTOMATA.get_or_build((case_insensitive, phrases.to_vec()), |(ci, phrases)| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(*ci)
            .match_kind(MatchKind::Standard)
            .build(phrases)
    })
}

/// Entries below this count are never pruned.
const MIN_PRUNE: usize = 256;

/// A map from source text to the artefact built from it, for as long as some
/// ruleset holds that artefact.
pub(crate) struct LiveCache<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    map: HashMap<K, Weak<V>>,
    /// Size at which entries whose artefact is gone are dropped.
    prune_at: usize,
}

impl<K: Eq + Hash, V> LiveCache<K, V> {
    /// An empty cache (usable in a `static`).
    pub(crate) fn new() -> LiveCache<K, V> {
        LiveCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                prune_at: MIN_PRUNE,
            }),
        }
    }

    /// The artefact built from `key` that a live ruleset holds, else a new
    /// one from `build` (run without the lock held; errors are not kept).
    pub(crate) fn get_or_build<E>(
        &self,
        key: K,
        build: impl FnOnce(&K) -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        if let Some(live) = self.get(&key) {
            return Ok(live);
        }
        let built = Arc::new(build(&key)?);
        let mut inner = self.lock();
        // Another thread may have built the same artefact meanwhile: keep one.
        if let Some(live) = inner.map.get(&key).and_then(Weak::upgrade) {
            return Ok(live);
        }
        inner.map.insert(key, Arc::downgrade(&built));
        if inner.map.len() >= inner.prune_at {
            inner.map.retain(|_, w| w.strong_count() > 0);
            inner.prune_at = (inner.map.len() * 2).max(MIN_PRUNE);
        }
        Ok(built)
    }

    /// The artefact built from `key`, if a live ruleset holds it.
    pub(crate) fn get(&self, key: &K) -> Option<Arc<V>> {
        self.lock().map.get(key).and_then(Weak::upgrade)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // Every entry is whole at any time, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_while_alive_and_rebuilds_after() {
        let cache: LiveCache<String, Vec<u8>> = LiveCache::new();
        let mut builds = 0;
        let mut build = |k: &String| -> Result<Vec<u8>, ()> {
            builds += 1;
            Ok(k.as_bytes().to_vec())
        };
        let a = cache
            .get_or_build("x".to_owned(), &mut build)
            .expect("built");
        let b = cache
            .get_or_build("x".to_owned(), &mut build)
            .expect("shared");
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        assert!(cache.get(&"x".to_owned()).is_none());
        let c = cache
            .get_or_build("x".to_owned(), &mut build)
            .expect("rebuilt");
        assert_eq!(&c[..], b"x");
        assert_eq!(builds, 2);
        // Errors are returned, not remembered.
        let err: Result<Arc<Vec<u8>>, &str> = cache.get_or_build("y".to_owned(), |_| Err("bad"));
        assert_eq!(err.err(), Some("bad"));
        assert!(cache.get(&"y".to_owned()).is_none());
    }

    #[test]
    fn prunes_dead_entries() {
        let cache: LiveCache<usize, usize> = LiveCache::new();
        let keep: Vec<Arc<usize>> = (0..10)
            .map(|i| cache.get_or_build(i, |&k| Ok::<_, ()>(k)).expect("built"))
            .collect();
        for i in 10..(MIN_PRUNE * 3) {
            drop(cache.get_or_build(i, |&k| Ok::<_, ()>(k)));
        }
        let inner = cache.lock();
        assert!(
            inner.map.len() < MIN_PRUNE * 2,
            "{} entries",
            inner.map.len()
        );
        drop(inner);
        for (i, k) in keep.iter().enumerate() {
            assert!(Arc::ptr_eq(k, &cache.get(&i).expect("alive")));
        }
    }
}

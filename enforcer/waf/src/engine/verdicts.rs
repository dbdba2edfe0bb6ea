//! Misses remembered across transactions: which rules did not match a value.
//!
//! A rule link whose operator is pure ([`Operator::is_pure`]: no macro in
//! its argument, nothing read from the transaction) gives the same answer
//! on the same value in every transaction, whatever variable the value came
//! from: its transformations are functions of the value, and so is the
//! operator. The ruleset keeps, per distinct value content, one bit per
//! such link ([`Rule::verdict_bit`]), set once the link evaluated the value
//! and did not match it. A later transaction holding the same value (the
//! `User-Agent`, `Accept` and `Host` of every request from one client, the
//! cookie and parameter names of an application) skips those evaluations:
//! no transformation, literal scan or operator runs for them.
//!
//! The entry also keeps the value's literal bit sets (which prefiltered
//! rules' literals occur in it) per transformation chain, so the skip
//! checks of a later transaction find them without transforming or
//! scanning the value again. Both are functions of the value alone. A
//! later transaction gets those bit sets without the bits of the rules
//! known not to match the value (a rule's skip check asks whether its
//! literals occur in a value it could match), so a rule whose literals
//! occur only in values it is known to miss is skipped before it looks at
//! its targets.
//!
//! Only misses are remembered, never matches: a match has effects (TX
//! captures, MATCHED_VAR, setvars) that every transaction must produce
//! itself. Values are compared byte for byte (the hash only picks the slot).
//!
//! The cache is bounded. A value gets an entry the second time it is seen
//! (a direct-mapped table of hashes remembers the first sighting), so values
//! that never recur (session ids, nonces, an attacker's random strings) take
//! no entry. Values longer than [`MAX_VALUE`] bytes are not kept, and a
//! shard that reaches [`SHARD_BUDGET`] bytes is emptied before it takes the
//! next value, so the cache never grows past 16 shards × 1 MiB = 16 MiB.
//! It belongs to one compiled ruleset: a hot-swapped ruleset starts with an
//! empty one.
//!
//! Each thread keeps a small front of the entries it found last (256,
//! direct-mapped), looked up before the shard and without its lock: a read
//! lock is two atomic operations on a word every thread shares. A front
//! holds entries of one cache at a time and forgets them when the cache is
//! cleared; an entry it holds may outlive its shard's copy, which is still
//! true of its content.
//!
//! [`Operator::is_pure`]: crate::operators::Operator::is_pure
//! [`Rule::verdict_bit`]: super::rule::Rule::verdict_bit

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::byteset::{self, ByteSet};

type Bytes = Arc<[u8]>;

/// Longest value kept (request bodies and long cookies are seldom repeated).
pub(crate) const MAX_VALUE: usize = 4096;

/// Shards (a power of two): transactions on different threads seldom wait
/// for the same lock.
const SHARDS: usize = 16;

/// Bytes one shard may hold (values and their bit sets, with overhead)
/// before it is emptied.
pub(crate) const SHARD_BUDGET: usize = 1 << 20;

/// Slots of the first-sighting table (a power of two; 512 KiB of hashes).
const SIGHTINGS: usize = 1 << 16;

/// Per-entry bytes counted besides the value and the bits (the map slot,
/// the two allocations' headers).
const ENTRY_OVERHEAD: usize = 64;

/// The remembered misses of one value.
#[derive(Debug)]
pub(crate) struct Verdicts {
    content: Bytes,
    /// The bytes the value holds (the skip checks ask which transformation
    /// chains can change it).
    bytes: ByteSet,
    misses: Box<[AtomicU64]>,
    /// The same misses by the links' literal prefilter bits.
    literal_misses: Box<[AtomicU64]>,
    /// Per transformation chain: the literal bit set of the value after it.
    bits: Box<[OnceLock<Box<[u64]>>]>,
}

impl Verdicts {
    /// The set of bytes the value holds.
    #[inline]
    pub(crate) fn bytes(&self) -> ByteSet {
        self.bytes
    }

    /// Whether the link with `bit` is known not to match this value.
    #[inline]
    pub(crate) fn known_miss(&self, bit: u32) -> bool {
        self.misses
            .get((bit / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1u64 << (bit % 64)) != 0)
    }

    /// Appends to `out` the literal bit set of this value after `chain`
    /// without the bits of the links known not to match the value; false
    /// (nothing appended) when the bit set is not known yet.
    #[inline]
    pub(crate) fn extend_bits(&self, chain: u32, out: &mut Vec<u64>) -> bool {
        let Some(known) = self.bits.get(chain as usize).and_then(|b| b.get()) else {
            return false;
        };
        // `literal_misses` has a word for every word of a literal bit set.
        let misses = self
            .literal_misses
            .iter()
            .map(|m| m.load(Ordering::Relaxed));
        out.extend(known.iter().zip(misses).map(|(&w, m)| w & !m));
        true
    }

    /// Keeps the literal bit set of this value after `chain`.
    pub(crate) fn set_bits(&self, chain: u32, words: &[u64]) {
        if let Some(cell) = self.bits.get(chain as usize) {
            let _ = cell.set(words.into());
        }
    }

    /// Remembers that the link with `bit` (and literal prefilter bit
    /// `literal`, when it has one) does not match this value.
    #[inline]
    pub(crate) fn set_miss(&self, bit: u32, literal: Option<u32>) {
        if let Some(w) = self.misses.get((bit / 64) as usize) {
            w.fetch_or(1u64 << (bit % 64), Ordering::Relaxed);
        }
        if let Some(l) = literal {
            if let Some(w) = self.literal_misses.get((l / 64) as usize) {
                w.fetch_or(1u64 << (l % 64), Ordering::Relaxed);
            }
        }
    }
}

/// Keys are already hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
struct Shard {
    /// Hash of the content -> its verdicts (a second content with the same
    /// hash is not kept).
    map: HashMap<u64, Arc<Verdicts>, BuildHasherDefault<PassThrough>>,
    bytes: usize,
}

/// Slots of a thread's front (a power of two): the entries a thread found
/// last, looked up without the shard's lock.
const FRONT_SLOTS: usize = 256;

/// Distinct ids of caches, so that a thread's front never answers for
/// another cache (a later one may sit at the same address).
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// A thread's front of one cache: direct-mapped by hash, each slot the
/// entry last found with that slot's hash. Every read lock on a shard is two
/// atomic operations on a word all threads share; most look-ups are of a
/// few hundred values a thread sees again and again. Its entries stay
/// valid as long as the cache is not cleared (what an entry says is true of
/// its content for good, even after its shard dropped it), so a front is
/// emptied when the thread next asks another cache, or this one after it
/// was cleared. It holds at most `FRONT_SLOTS` entries.
struct Front {
    /// `VerdictCache::id` and `generation` the slots belong to.
    cache: u64,
    generation: u64,
    slots: Vec<Option<(u64, Arc<Verdicts>)>>,
}

thread_local! {
    static FRONT: std::cell::RefCell<Front> = const {
        std::cell::RefCell::new(Front {
            cache: 0,
            generation: 0,
            slots: Vec::new(),
        })
    };
}

/// The ruleset's cache of misses (see the module docs).
pub(crate) struct VerdictCache {
    /// Distinct for every cache (see `Front`).
    id: u64,
    /// Bumped whenever the cache is cleared (see `Front`).
    generation: AtomicU64,
    shards: Box<[RwLock<Shard>]>,
    /// Bit-set words per value: one bit per pure link.
    words: usize,
    /// Transformation chains (literal bit sets per value).
    chains: usize,
    /// Words of a literal bit set.
    literal_words: usize,
    /// Hashes of values seen once (direct-mapped).
    sightings: Box<[AtomicU64]>,
    enabled: AtomicBool,
}

impl std::fmt::Debug for VerdictCache {
    // Not derived: that would print all 65,536 first-sighting slots.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (values, bytes) = self.usage();
        f.debug_struct("VerdictCache")
            .field("enabled", &self.enabled())
            .field("values", &values)
            .field("bytes", &bytes)
            .finish_non_exhaustive()
    }
}

impl VerdictCache {
    /// An empty cache for `links` pure rule links (none: always off),
    /// `chains` transformation chains and literal bit sets of
    /// `literal_words` words.
    pub(crate) fn new(links: usize, chains: usize, literal_words: usize) -> VerdictCache {
        VerdictCache {
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            words: links.div_ceil(64),
            chains,
            literal_words,
            sightings: (0..SIGHTINGS).map(|_| AtomicU64::new(0)).collect(),
            enabled: AtomicBool::new(links > 0),
        }
    }

    /// Turns remembering on or off (on by default when a rule can use it);
    /// turning it off also forgets what was remembered.
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on && self.words > 0, Ordering::Relaxed);
        if !on {
            self.generation.fetch_add(1, Ordering::Relaxed);
            for shard in self.shards.iter() {
                if let Ok(mut s) = shard.write() {
                    *s = Shard::default();
                }
            }
            for h in self.sightings.iter() {
                h.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Whether the cache is in use.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// The verdicts of `value`, creating an empty entry for a value seen
    /// before; `None` when the value is not kept (seen for the first time,
    /// too long, or another content has its hash).
    pub(crate) fn entry(&self, value: &Bytes) -> Option<Arc<Verdicts>> {
        if value.len() > MAX_VALUE || !self.enabled() {
            return None;
        }
        let mut h = rustc_hash::FxHasher::default();
        h.write(value);
        h.write_usize(value.len());
        let hash = h.finish();
        if let Some(e) = self.front_get(hash, value) {
            return Some(e);
        }
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        if let Ok(s) = shard.read() {
            if let Some(e) = s.map.get(&hash) {
                let found = (e.content[..] == value[..]).then(|| Arc::clone(e));
                drop(s);
                if let Some(e) = &found {
                    self.front_put(hash, e);
                }
                return found;
            }
        }
        // Admitted the second time its hash is seen (0 marks an empty slot).
        let mark = hash | 1;
        let seen = &self.sightings[hash as usize % SIGHTINGS];
        if seen.swap(mark, Ordering::Relaxed) != mark {
            return None;
        }
        let mut s = shard.write().ok()?;
        if let Some(e) = s.map.get(&hash) {
            return (e.content[..] == value[..]).then(|| Arc::clone(e));
        }
        // The most the entry can grow to: a bit set (and its allocation's
        // header) for every chain, so the budget bounds real memory.
        let bits_cost = self.chains
            * (std::mem::size_of::<OnceLock<Box<[u64]>>>() + 16 + self.literal_words * 8);
        let cost = value.len()
            + (self.words + self.literal_words) * 8
            + std::mem::size_of::<ByteSet>()
            + bits_cost
            + ENTRY_OVERHEAD;
        if s.bytes + cost > SHARD_BUDGET {
            *s = Shard::default();
        }
        let e = Arc::new(Verdicts {
            content: Arc::clone(value),
            bytes: byteset::of(value),
            misses: (0..self.words).map(|_| AtomicU64::new(0)).collect(),
            literal_misses: (0..self.literal_words).map(|_| AtomicU64::new(0)).collect(),
            bits: (0..self.chains).map(|_| OnceLock::new()).collect(),
        });
        s.map.insert(hash, Arc::clone(&e));
        s.bytes += cost;
        Some(e)
    }

    /// The entry of `value` (hash `hash`) in this thread's front.
    #[inline]
    fn front_get(&self, hash: u64, value: &[u8]) -> Option<Arc<Verdicts>> {
        let generation = self.generation.load(Ordering::Relaxed);
        FRONT
            .try_with(|f| {
                let f = f.try_borrow().ok()?;
                if f.cache != self.id || f.generation != generation {
                    return None;
                }
                match f.slots.get(hash as usize % FRONT_SLOTS)? {
                    Some((h, e)) if *h == hash && e.content[..] == *value => Some(Arc::clone(e)),
                    _ => None,
                }
            })
            .ok()
            .flatten()
    }

    /// Keeps `entry` (hash `hash`) in this thread's front, emptying a front
    /// of another cache or of an earlier generation first.
    fn front_put(&self, hash: u64, entry: &Arc<Verdicts>) {
        let generation = self.generation.load(Ordering::Relaxed);
        let _ = FRONT.try_with(|f| {
            let Ok(mut f) = f.try_borrow_mut() else {
                return;
            };
            if f.cache != self.id || f.generation != generation || f.slots.is_empty() {
                f.cache = self.id;
                f.generation = generation;
                f.slots.clear();
                f.slots.resize(FRONT_SLOTS, None);
            }
            f.slots[hash as usize % FRONT_SLOTS] = Some((hash, Arc::clone(entry)));
        });
    }

    /// Values held and the bytes counted for them (tests and stats).
    pub(crate) fn usage(&self) -> (usize, usize) {
        self.shards
            .iter()
            .filter_map(|s| s.read().ok().map(|s| (s.map.len(), s.bytes)))
            .fold((0, 0), |(n, b), (sn, sb)| (n + sn, b + sb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn remembers_misses_per_content() {
        let cache = VerdictCache::new(130, 3, 2);
        assert!(cache.entry(&b("Mozilla/5.0")).is_none(), "first sighting");
        let ua = cache.entry(&b("Mozilla/5.0")).expect("kept");
        assert_eq!(ua.bytes(), byteset::of(b"Mozilla/5.0"));
        assert!(!ua.known_miss(129));
        ua.set_miss(129, None);
        ua.set_miss(3, Some(65));
        // The same content from another transaction (another allocation).
        let again = cache.entry(&b("Mozilla/5.0")).expect("kept");
        assert!(again.known_miss(129) && again.known_miss(3));
        assert!(!again.known_miss(4) && !again.known_miss(128));
        let mut out = Vec::new();
        assert!(!again.extend_bits(1, &mut out) && out.is_empty());
        ua.set_bits(1, &[5, 7]);
        // Literal bit 65 (word 1, bit 1) belongs to a link known to miss.
        assert!(again.extend_bits(1, &mut out));
        assert_eq!(out, [5, 5]);
        assert!(!again.extend_bits(0, &mut out) && !again.extend_bits(3, &mut out));
        // Other content starts empty.
        cache.entry(&b("curl/8.0"));
        let other = cache.entry(&b("curl/8.0")).expect("kept");
        assert!(!other.known_miss(3));
        assert_eq!(cache.usage().0, 2);
    }

    #[test]
    fn long_values_and_disabled_cache_keep_nothing() {
        let cache = VerdictCache::new(10, 1, 1);
        let long: Bytes = Arc::from(vec![b'a'; MAX_VALUE + 1]);
        cache.entry(&long);
        assert!(cache.entry(&long).is_none());
        let longest: Bytes = Arc::from(vec![b'a'; MAX_VALUE]);
        cache.entry(&longest);
        assert!(cache.entry(&longest).is_some());
        cache.entry(&b("x"));
        cache.entry(&b("x")).expect("kept").set_miss(1, None);
        cache.set_enabled(false);
        assert!(cache.entry(&b("x")).is_none());
        assert_eq!(cache.usage(), (0, 0));
        cache.set_enabled(true);
        assert!(cache.entry(&b("x")).is_none(), "sightings forgotten too");
        let x = cache.entry(&b("x")).expect("kept");
        assert!(!x.known_miss(1), "turning the cache off forgets");
        // No pure link: nothing to remember.
        let none = VerdictCache::new(0, 1, 1);
        none.entry(&b("x"));
        assert!(none.entry(&b("x")).is_none());
    }

    #[test]
    fn stays_within_its_budget() {
        let cache = VerdictCache::new(300, 40, 5);
        for i in 0..200_000u32 {
            let v: Bytes =
                Arc::from(format!("value-{i:08}-{}", "p".repeat((i % 50) as usize)).as_bytes());
            cache.entry(&v);
            cache.entry(&v).expect("kept");
        }
        let (values, bytes) = cache.usage();
        assert!(bytes <= SHARDS * SHARD_BUDGET, "{bytes}");
        assert!(values > 1000, "{values}");
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;

    #[test]
    fn values_seen_once_take_no_entry() {
        let cache = VerdictCache::new(10, 1, 1);
        for i in 0..10_000u32 {
            let v: Bytes = Arc::from(format!("session={i:032x}").as_bytes());
            assert!(cache.entry(&v).is_none());
        }
        assert_eq!(cache.usage(), (0, 0));
    }

    /// A thread's front answers for its own cache only, and forgets what
    /// the cache forgot.
    #[test]
    fn the_thread_front_follows_its_cache() {
        let a = VerdictCache::new(64, 1, 1);
        let other = VerdictCache::new(64, 1, 1);
        let ua: Bytes = Arc::from(&b"Mozilla/5.0"[..]);
        for cache in [&a, &other] {
            assert!(cache.entry(&ua).is_none(), "first sighting");
        }
        let in_a = a.entry(&ua).expect("kept");
        in_a.set_miss(7, None);
        // Found again (through the front now), the same entry.
        assert!(Arc::ptr_eq(&in_a, &a.entry(&ua).expect("kept")));
        // The other cache's entry for the same content is its own, even
        // with `a`'s entry in this thread's front.
        let in_b = other.entry(&ua).expect("kept");
        assert!(!Arc::ptr_eq(&in_a, &in_b) && !in_b.known_miss(7));
        assert!(a.entry(&ua).expect("kept").known_miss(7));
        // Cleared: the front does not bring the entry back.
        a.set_enabled(false);
        a.set_enabled(true);
        assert!(a.entry(&ua).is_none(), "forgotten: a first sighting again");
        let again = a.entry(&ua).expect("kept");
        assert!(!Arc::ptr_eq(&in_a, &again) && !again.known_miss(7));
    }
}

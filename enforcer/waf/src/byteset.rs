//! Sets of byte values, one bit per value (256 bits): the trigger bytes of
//! transformations, the bytes a stored value holds, the bytes every match
//! of a regex needs.

/// A set of byte values.
pub(crate) type ByteSet = [u64; 4];

/// Adds `b`.
pub(crate) const fn insert(set: &mut ByteSet, b: u8) {
    set[(b / 64) as usize] |= 1u64 << (b % 64);
}

/// Whether `b` is in the set.
pub(crate) const fn contains(set: &ByteSet, b: u8) -> bool {
    set[(b / 64) as usize] & (1u64 << (b % 64)) != 0
}

/// The set of the bytes `bytes` holds.
pub(crate) fn of(bytes: &[u8]) -> ByteSet {
    let mut set = [0u64; 4];
    for &b in bytes {
        insert(&mut set, b);
    }
    set
}

/// Every byte of either set.
pub(crate) fn union(a: &ByteSet, b: &ByteSet) -> ByteSet {
    [a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]]
}

/// Whether the two sets have no byte in common.
pub(crate) fn disjoint(a: &ByteSet, b: &ByteSet) -> bool {
    a.iter().zip(b).all(|(x, y)| x & y == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations() {
        let a = of(b"%+a");
        assert!(contains(&a, b'%') && contains(&a, b'+') && contains(&a, b'a'));
        assert!(!contains(&a, b'A') && !contains(&a, 0) && !contains(&a, 255));
        let b = of(&[0, 255]);
        assert!(disjoint(&a, &b));
        let u = union(&a, &b);
        assert!(contains(&u, 0) && contains(&u, 255) && contains(&u, b'%'));
        assert!(!disjoint(&u, &a));
        assert_eq!(of(b""), [0; 4]);
    }
}

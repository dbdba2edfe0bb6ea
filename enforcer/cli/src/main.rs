//! `palisade`: evaluate requests against a ruleset, lint it, or run a go-ftw suite.

fn main() {
    println!("palisade: not yet wired");
}

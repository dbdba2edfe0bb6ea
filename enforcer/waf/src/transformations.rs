//! Transformations (`t:name`): pure functions from bytes to bytes.
//!
//! Each is `fn(&[u8]) -> Cow<[u8]>` and borrows its input when it changes
//! nothing, so a chain that finds nothing to do allocates nothing. Semantics
//! follow ModSecurity v3 (differences, where Coraza differs, are documented on
//! each function).

use std::borrow::Cow;

/// A transformation function.
pub type TransformFn = for<'a> fn(&'a [u8]) -> Cow<'a, [u8]>;

/// A named transformation (`t:none` is not one: the compiler handles it by
/// clearing the chain).
#[derive(Clone, Copy)]
pub struct Transformation {
    /// Canonical lowercase-first name as SecLang writes it (e.g. `urlDecodeUni`).
    pub name: &'static str,
    /// The function.
    pub apply: TransformFn,
}

impl std::fmt::Debug for Transformation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Transformation {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Transformation {
    /// Looks up a transformation by name, case-insensitively
    /// (`lowercase`, `urlDecodeUni`, ...). `none` is not found here.
    pub fn from_name(name: &str) -> Option<Transformation> {
        let _ = name;
        todo!("transformations::from_name")
    }
}

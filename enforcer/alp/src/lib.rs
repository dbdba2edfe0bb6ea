//! Palisade's application layer policy (ALP): Calico selectors, request path
//! normalisation and tiered `GlobalNetworkPolicy` evaluation with Calico's
//! semantics.
//!
//! Pure library (no async runtime, no I/O): the enforcer evaluates requests
//! with it and the control plane validates policies with it before pushing.
//!
//! ```
//! use std::collections::BTreeMap;
//! use palisade_alp::{evaluate, Identity, PolicySet, RequestFacts, TierSpec, Verdict};
//!
//! let tiers: Vec<TierSpec> = serde_json::from_str(r#"[{
//!     "name": "default",
//!     "policies": [{
//!         "name": "get-only",
//!         "selector": "app == 'web'",
//!         "ingress": [{"action": "Allow", "http": {"methods": ["GET"]}}]
//!     }]
//! }]"#).unwrap();
//! let set = PolicySet::compile(&tiers).unwrap();
//!
//! let web = Identity::new("shop", "web", "default",
//!     BTreeMap::from([("app".to_string(), "web".to_string())]),
//!     BTreeMap::new(), BTreeMap::new());
//! let mut facts = RequestFacts::new("GET", "/index.html");
//! facts.destination.identity = Some(&web);
//! assert_eq!(evaluate(&set, &facts).verdict, Verdict::Allow);
//! facts.method = "OPTIONS";
//! assert_eq!(evaluate(&set, &facts).verdict, Verdict::Deny);
//! ```

pub mod identity;
pub mod path;
pub mod policy;
pub mod selector;
pub mod spec;

pub use identity::Identity;
pub use policy::{
    evaluate, Action, Decision, EntityMatch, HttpMatch, PathMatch, Peer, Policy, PolicyError,
    PolicySet, Reason, RequestFacts, Rule, RuleRef, Tier, TierDefault, Verdict,
};
pub use selector::{Labels, Selector, SelectorError};
pub use spec::{EntityRuleSpec, HttpMatchSpec, PathMatchSpec, PolicySpec, RuleSpec, TierSpec};

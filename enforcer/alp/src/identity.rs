//! The identity of a workload (a pod, or the pods behind a service) as policy
//! selectors see it.

use std::collections::BTreeMap;

/// Label Calico puts on every workload endpoint: its namespace.
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
/// Label Calico puts on every workload endpoint: its orchestrator (`k8s`).
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
/// Label Calico puts on every workload endpoint: its service account.
pub const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";
/// Label Calico puts on namespaces and service accounts: their name.
pub const LABEL_NAME: &str = "projectcalico.org/name";
/// Label Kubernetes puts on every namespace: its name.
pub const LABEL_K8S_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// Namespace, name, service account and the three label sets policy selectors
/// match against.
///
/// [`Identity::new`] adds the labels Calico implicitly gives each object, so
/// selectors written for Calico behave the same:
/// `projectcalico.org/namespace`, `projectcalico.org/orchestrator: k8s` and
/// `projectcalico.org/serviceaccount` on the workload;
/// `projectcalico.org/name` and `kubernetes.io/metadata.name` on the
/// namespace; `projectcalico.org/name` on the service account. Labels already
/// present are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    namespace: String,
    name: String,
    service_account: String,
    labels: BTreeMap<String, String>,
    namespace_labels: BTreeMap<String, String>,
    service_account_labels: BTreeMap<String, String>,
}

fn add_default(labels: &mut BTreeMap<String, String>, key: &str, value: &str) {
    if !value.is_empty() && !labels.contains_key(key) {
        labels.insert(key.to_string(), value.to_string());
    }
}

impl Identity {
    /// Builds an identity, adding Calico's implicit labels.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        service_account: impl Into<String>,
        mut labels: BTreeMap<String, String>,
        mut namespace_labels: BTreeMap<String, String>,
        mut service_account_labels: BTreeMap<String, String>,
    ) -> Identity {
        let namespace = namespace.into();
        let service_account = service_account.into();
        add_default(&mut labels, LABEL_NAMESPACE, &namespace);
        add_default(&mut labels, LABEL_ORCHESTRATOR, "k8s");
        add_default(&mut labels, LABEL_SERVICE_ACCOUNT, &service_account);
        add_default(&mut namespace_labels, LABEL_NAME, &namespace);
        add_default(&mut namespace_labels, LABEL_K8S_NAMESPACE_NAME, &namespace);
        add_default(&mut service_account_labels, LABEL_NAME, &service_account);
        Identity {
            namespace,
            name: name.into(),
            service_account,
            labels,
            namespace_labels,
            service_account_labels,
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pod (or service) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service account name (may be empty).
    pub fn service_account(&self) -> &str {
        &self.service_account
    }

    /// The workload's labels, with Calico's implicit ones.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The namespace's labels, with Calico's implicit ones.
    pub fn namespace_labels(&self) -> &BTreeMap<String, String> {
        &self.namespace_labels
    }

    /// The service account's labels, with Calico's implicit ones.
    pub fn service_account_labels(&self) -> &BTreeMap<String, String> {
        &self.service_account_labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Selector;

    #[test]
    fn adds_calico_implicit_labels() {
        let id = Identity::new(
            "shop",
            "web-1",
            "web-sa",
            BTreeMap::from([("app".into(), "web".into())]),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        let sel = |s: &str| Selector::parse(s).expect("valid selector");
        assert!(sel("projectcalico.org/namespace == 'shop' && app == 'web'").matches(id.labels()));
        assert!(sel("projectcalico.org/serviceaccount == 'web-sa'").matches(id.labels()));
        assert!(sel("kubernetes.io/metadata.name == 'shop'").matches(id.namespace_labels()));
        assert!(sel("projectcalico.org/name == 'web-sa'").matches(id.service_account_labels()));
    }

    #[test]
    fn keeps_explicit_labels() {
        let id = Identity::new(
            "shop",
            "p",
            "",
            BTreeMap::from([(LABEL_ORCHESTRATOR.into(), "other".into())]),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        assert_eq!(
            id.labels().get(LABEL_ORCHESTRATOR).map(String::as_str),
            Some("other")
        );
        assert!(!id.labels().contains_key(LABEL_SERVICE_ACCOUNT));
    }
}

//! The OCM API objects the publisher reads and writes, in their upstream JSON shapes
//! (open-cluster-management-io/api): `AddOnPlacementScore` (cluster.open-cluster-management.io
//! /v1alpha1, namespaced, status subresource, **no spec**) and the parts of `ManagedCluster`
//! (cluster.open-cluster-management.io/v1, cluster-scoped) it needs.
//!
//! `kube::CustomResource`'s derive always generates a `spec` field, which the upstream
//! AddOnPlacementScore does not have (an apiserver with strict field validation rejects
//! it, others prune it), so both types implement [`kube::Resource`] by hand instead.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::core::{ClusterResourceScope, NamespaceResourceScope, TypeMeta};
use serde::{Deserialize, Serialize};

/// The API group of both kinds.
pub const GROUP: &str = "cluster.open-cluster-management.io";
/// Lowest score value OCM accepts.
pub const SCORE_MIN: i32 = -100;
/// Highest score value OCM accepts.
pub const SCORE_MAX: i32 = 100;

/// A Kubernetes `Time` (RFC 3339, whole seconds) from a chrono time; saturates at the
/// representable range (years ±9999).
pub fn kube_time(t: chrono::DateTime<chrono::Utc>) -> Time {
    use k8s_openapi::jiff::Timestamp;
    let secs = t
        .timestamp()
        .clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Time(Timestamp::from_second(secs).unwrap_or(Timestamp::MAX))
}

/// A chrono time from a Kubernetes `Time`.
pub fn chrono_time(t: &Time) -> Option<chrono::DateTime<chrono::Utc>> {
    let nanos = u32::try_from(t.0.subsec_nanosecond()).ok()?;
    chrono::DateTime::from_timestamp(t.0.as_second(), nanos)
}

/// A bundle of scores of one managed cluster, in that cluster's namespace on the hub.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AddOnPlacementScore {
    /// `apiVersion` and `kind` (the apiserver rejects a create without them).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub types: Option<TypeMeta>,
    /// Object metadata (namespace = the managed cluster's name).
    pub metadata: ObjectMeta,
    /// The scores, their expiry and conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AddOnPlacementScoreStatus>,
}

/// `AddOnPlacementScore.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddOnPlacementScoreStatus {
    /// Conditions (`type` is the list key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Score names and values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<AddOnPlacementScoreItem>,
    /// After this time Placements ignore the scores (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Time>,
}

/// One score: a name and a value in −100..=100 (both required upstream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOnPlacementScoreItem {
    /// Score name (a Placement's `scoreCoordinate.addOn.scoreName`).
    pub name: String,
    /// Score value, −100..=100, higher is better.
    pub value: i32,
}

impl AddOnPlacementScoreItem {
    /// An item with `value` clamped into −100..=100.
    pub fn new(name: impl Into<String>, value: i32) -> Self {
        Self {
            name: name.into(),
            value: value.clamp(SCORE_MIN, SCORE_MAX),
        }
    }
}

impl AddOnPlacementScore {
    /// An empty object named `name` in namespace `cluster` (what create-if-absent posts).
    pub fn new(cluster: &str, name: &str) -> Self {
        Self {
            types: Some(TypeMeta::resource::<Self>()),
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(cluster.to_string()),
                ..ObjectMeta::default()
            },
            status: None,
        }
    }
}

impl kube::Resource for AddOnPlacementScore {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "AddOnPlacementScore".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1alpha1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "addonplacementscores".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A cluster registered with the hub (only the fields the publisher reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedCluster {
    /// Object metadata: the name is the cluster's (and its hub namespace's), labels carry
    /// its region.
    pub metadata: ObjectMeta,
    /// Status reported by the cluster's registration agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ManagedClusterStatus>,
}

/// `ManagedCluster.status` (the fields the publisher reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterStatus {
    /// Conditions, among them `ManagedClusterConditionAvailable`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Allocatable resources of the whole cluster (`cpu`, `memory`).
    #[serde(default)]
    pub allocatable: BTreeMap<String, Quantity>,
}

/// The condition type saying a managed cluster's agent is reachable and healthy.
pub const AVAILABLE: &str = "ManagedClusterConditionAvailable";

impl ManagedCluster {
    /// Whether `ManagedClusterConditionAvailable` is `True`.
    pub fn is_available(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == AVAILABLE && c.status == "True")
        })
    }
}

impl kube::Resource for ManagedCluster {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "ManagedCluster".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "managedclusters".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono::{TimeZone, Utc};
    use kube::Resource;
    use serde_json::json;

    #[test]
    fn paths_match_the_upstream_api() {
        assert_eq!(
            AddOnPlacementScore::url_path(&(), Some("c1")),
            "/apis/cluster.open-cluster-management.io/v1alpha1/namespaces/c1/addonplacementscores"
        );
        assert_eq!(
            ManagedCluster::url_path(&(), None),
            "/apis/cluster.open-cluster-management.io/v1/managedclusters"
        );
        assert_eq!(
            AddOnPlacementScore::api_version(&()),
            "cluster.open-cluster-management.io/v1alpha1"
        );
    }

    #[test]
    fn serialises_with_upstream_field_names_and_no_spec() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 6, 0, 0).unwrap();
        let mut s = AddOnPlacementScore::new("c1", "ecoplace");
        s.status = Some(AddOnPlacementScoreStatus {
            conditions: vec![Condition {
                type_: "ScoresCurrent".into(),
                status: "True".into(),
                reason: "Published".into(),
                message: "ok".into(),
                last_transition_time: kube_time(at),
                observed_generation: None,
            }],
            scores: vec![
                AddOnPlacementScoreItem::new("carbon", 250),
                AddOnPlacementScoreItem::new("energy", -101),
                AddOnPlacementScoreItem::new("ecoplace", 0),
            ],
            valid_until: Some(kube_time(at)),
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "cluster.open-cluster-management.io/v1alpha1",
                "kind": "AddOnPlacementScore",
                "metadata": {"name": "ecoplace", "namespace": "c1"},
                "status": {
                    "conditions": [{
                        "type": "ScoresCurrent", "status": "True", "reason": "Published",
                        "message": "ok", "lastTransitionTime": "2026-11-29T06:00:00Z"
                    }],
                    "scores": [
                        {"name": "carbon", "value": 100},
                        {"name": "energy", "value": -100},
                        {"name": "ecoplace", "value": 0}
                    ],
                    "validUntil": "2026-11-29T06:00:00Z"
                }
            })
        );
        assert!(v.get("spec").is_none());
        // Required upstream: scores[].name and scores[].value; value an int32 in range.
        for item in v["status"]["scores"].as_array().unwrap() {
            assert!(item["name"].is_string());
            let value = item["value"].as_i64().unwrap();
            assert!((-100..=100).contains(&value));
        }
        // A score without a value is not an AddOnPlacementScoreItem.
        assert!(serde_json::from_value::<AddOnPlacementScoreItem>(json!({"name": "x"})).is_err());
        let back: AddOnPlacementScore = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn availability_reads_the_upstream_condition() {
        let mc: ManagedCluster = serde_json::from_value(json!({
            "apiVersion": "cluster.open-cluster-management.io/v1",
            "kind": "ManagedCluster",
            "metadata": {"name": "c1", "labels": {"region": "europe-west3"}},
            "spec": {"hubAcceptsClient": true},
            "status": {
                "allocatable": {"cpu": "12", "memory": "48Gi"},
                "conditions": [{
                    "type": "ManagedClusterConditionAvailable", "status": "True",
                    "reason": "ManagedClusterAvailable", "message": "",
                    "lastTransitionTime": "2026-11-29T06:00:00Z"
                }]
            }
        }))
        .unwrap();
        assert!(mc.is_available());
        assert_eq!(mc.status.unwrap().allocatable["cpu"].0, "12");
        let unknown: ManagedCluster =
            serde_json::from_value(json!({"metadata": {"name": "c2"}})).unwrap();
        assert!(!unknown.is_available());
    }
}

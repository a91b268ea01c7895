//! `topology`: which node label says where a node is, its carbon zone, and the latency from
//! user regions to it. Region names — the label values keying `carbonZones` and `latencyMs`,
//! and the user regions of `latencyMs` rows — match case-insensitively wherever they are
//! read; a name is reported in the spelling the configuration gives it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, field};

/// Mapping from node labels to carbon zones and user-region latency.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TopologyConfig {
    /// Label whose value keys `carbonZones` and `latencyMs`.
    pub region_label: String,
    /// Fallback label (e.g. zone) when the region label is absent.
    pub zone_label: String,
    /// Label value → carbon zone (e.g. `europe-west3: DE`); unmapped values are used as is.
    /// Label values match case-insensitively.
    pub carbon_zones: BTreeMap<String, String>,
    /// Carbon zone for nodes without either label.
    pub default_carbon_zone: Option<String>,
    /// Label value → user region → round-trip latency, ms. Label values and user regions
    /// match case-insensitively (`ecoplace.io/user-region: fr` is the user region `FR`).
    pub latency_ms: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            region_label: "topology.kubernetes.io/region".into(),
            zone_label: "topology.kubernetes.io/zone".into(),
            carbon_zones: BTreeMap::new(),
            default_carbon_zone: None,
            latency_ms: BTreeMap::new(),
        }
    }
}

/// The entry of `map` whose key equals `key` ignoring ASCII case (an exact match first).
pub fn get_ignore_case<'a, V>(map: &'a BTreeMap<String, V>, key: &str) -> Option<(&'a str, &'a V)> {
    map.get_key_value(key)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .map(|(k, v)| (k.as_str(), v))
}

impl TopologyConfig {
    /// Every user region of `latencyMs` (its rows' keys), once each in its first spelling,
    /// sorted.
    pub fn user_regions(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for row in self.latency_ms.values() {
            for region in row.keys() {
                if !out.iter().any(|r| r.eq_ignore_ascii_case(region)) {
                    out.push(region);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The configured spelling of user region `name`, matched case-insensitively; `None`
    /// when no `latencyMs` row knows it.
    pub fn user_region(&self, name: &str) -> Option<&str> {
        let name = name.trim();
        self.user_regions()
            .into_iter()
            .find(|r| r.eq_ignore_ascii_case(name))
    }

    /// The carbon zone of region label value `value`: its `carbonZones` entry (matched
    /// case-insensitively), else the value itself.
    pub fn carbon_zone_of(&self, value: &str) -> String {
        get_ignore_case(&self.carbon_zones, value)
            .map_or_else(|| value.to_string(), |(_, z)| z.clone())
    }

    /// Latency from each user region to a node whose region label is `value`, keyed by
    /// each user region's configured spelling ([`Self::user_region`]); empty when
    /// `latencyMs` has no row for it.
    pub fn latency_to(&self, value: &str) -> BTreeMap<String, f64> {
        let Some((_, row)) = get_ignore_case(&self.latency_ms, value) else {
            return BTreeMap::new();
        };
        row.iter()
            .map(|(region, &ms)| {
                let name = self.user_region(region).unwrap_or(region);
                (name.to_string(), ms)
            })
            .collect()
    }

    /// Semantic checks; the field path below `topology`.
    pub fn check(&self) -> Checked {
        if let Some((a, b)) = case_twins(self.carbon_zones.keys()) {
            return field(
                &format!("carbonZones.{b}"),
                format!(
                    "`{b}` and `{a}` differ only by case (region names match case-insensitively)"
                ),
            );
        }
        if let Some((a, b)) = case_twins(self.latency_ms.keys()) {
            return field(
                &format!("latencyMs.{b}"),
                format!(
                    "`{b}` and `{a}` differ only by case (region names match case-insensitively)"
                ),
            );
        }
        for (region, row) in &self.latency_ms {
            if let Some((a, b)) = case_twins(row.keys()) {
                return field(
                    &format!("latencyMs.{region}.{b}"),
                    format!(
                        "user regions `{b}` and `{a}` differ only by case (they match case-insensitively)"
                    ),
                );
            }
            for (user, ms) in row {
                if !(ms.is_finite() && *ms >= 0.0) {
                    return field(
                        &format!("latencyMs.{region}.{user}"),
                        format!("{ms} is not a latency in ms"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The first two keys that differ only by ASCII case, if any.
fn case_twins<'a>(keys: impl Iterator<Item = &'a String>) -> Option<(&'a str, &'a str)> {
    let mut seen: Vec<&'a str> = Vec::new();
    for k in keys {
        if let Some(other) = seen.iter().find(|s| s.eq_ignore_ascii_case(k)) {
            return Some((other, k));
        }
        seen.push(k);
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn topology() -> TopologyConfig {
        TopologyConfig {
            carbon_zones: BTreeMap::from([("europe-west3".into(), "DE".into())]),
            latency_ms: BTreeMap::from([
                (
                    "europe-west3".into(),
                    BTreeMap::from([("DE".into(), 3.0), ("FR".into(), 12.0)]),
                ),
                ("europe-west9".into(), BTreeMap::from([("fr".into(), 2.0)])),
            ]),
            ..TopologyConfig::default()
        }
    }

    #[test]
    fn regions_match_whatever_their_case() {
        let t = topology();
        assert_eq!(t.user_regions(), ["DE", "FR"]);
        assert_eq!(t.user_region("Fr"), Some("FR"));
        assert_eq!(t.user_region(" de "), Some("DE"));
        assert_eq!(t.user_region("GB"), None);
        assert_eq!(t.carbon_zone_of("Europe-West3"), "DE");
        assert_eq!(t.carbon_zone_of("us-east1"), "us-east1");
        // The second row spells its user region `fr`: it is keyed `FR` like the first's.
        assert_eq!(
            t.latency_to("EUROPE-WEST9"),
            BTreeMap::from([("FR".into(), 2.0)])
        );
        assert!(t.latency_to("nowhere").is_empty());
        assert!(t.check().is_ok());
    }

    #[test]
    fn keys_that_differ_only_by_case_are_refused() {
        let mut t = topology();
        t.latency_ms
            .get_mut("europe-west3")
            .unwrap()
            .insert("de".into(), 4.0);
        let (path, why) = t.check().unwrap_err();
        assert_eq!(path, "latencyMs.europe-west3.de");
        assert!(why.contains("`de` and `DE`"), "{why}");
        let mut t = topology();
        t.carbon_zones.insert("Europe-West3".into(), "FR".into());
        assert_eq!(t.check().unwrap_err().0, "carbonZones.europe-west3");
    }
}

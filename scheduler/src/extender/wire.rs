//! kube-scheduler's extender wire format (`k8s.io/kube-scheduler/extender/v1`).
//!
//! The Go types have no JSON tags, so the top-level keys are the Go field names
//! (`Pod`, `Nodes`, `NodeNames`, `FailedNodes`, `Host`, `Score`, …); the embedded Pod and
//! Node objects use the usual Kubernetes camelCase. Only the fields ecoplace reads are
//! decoded; full Node objects are kept as raw JSON so a filter reply can hand them back
//! unchanged.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Verb;
use crate::fleet::quantity::QuantityError;
use crate::fleet::{NodeFact, PodRequests};

/// The body of a filter or prioritize call; `N` is how `NodeNames` is read (decoded names,
/// or raw to find where the array sits), `L` how `Nodes` is (raw items, or decoded).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtenderArgs<N, L> {
    /// The pod being scheduled.
    #[serde(rename = "Pod", default)]
    pub pod: Option<Pod>,
    /// Candidate nodes as full objects (`nodeCacheCapable: false`).
    #[serde(rename = "Nodes")]
    pub nodes: Option<L>,
    /// Candidate node names (`nodeCacheCapable: true`), borrowed from the body unless
    /// escaped (absent is `None`, as for every `Option` field).
    #[serde(rename = "NodeNames")]
    pub node_names: Option<N>,
}

impl<N, L> ExtenderArgs<N, L> {
    /// Parses the body and checks it has a pod and exactly one form of candidates.
    fn parse<'a>(body: &'a [u8]) -> Result<(Pod, PodRequests, Either<L, N>), DecodeError>
    where
        N: Deserialize<'a>,
        L: Deserialize<'a>,
    {
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(DecodeError::Json(
                "expected a JSON object with keys Pod and Nodes or NodeNames".into(),
            ));
        }
        let args: Self =
            serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
        let pod = args.pod.ok_or(DecodeError::MissingPod)?;
        let requests = pod.requests()?;
        let candidates = match (args.nodes, args.node_names) {
            (Some(_), Some(_)) => return Err(DecodeError::BothCandidates),
            (None, None) => return Err(DecodeError::NoCandidates),
            (Some(nodes), None) => Either::Nodes(nodes),
            (None, Some(names)) => Either::Names(names),
        };
        Ok((pod, requests, candidates))
    }
}

/// The one form of candidates a request carried.
enum Either<A, B> {
    Nodes(A),
    Names(B),
}

/// A candidate node name as it came in the request.
///
/// serde's own `Cow<str>` impl always copies when the `Cow` sits inside a container, which
/// cost one allocation per name; this type borrows whenever the JSON string has no escape
/// sequence, and such a string can be written back verbatim (the JSON parser has already
/// refused raw control characters, and a borrowed string holds no `"` or `\`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName<'a>(pub Cow<'a, str>);

impl NodeName<'_> {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name borrows from the request (it had no escape sequence, so it may
    /// be written back verbatim).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }
}

/// Appends a node name as a JSON string: verbatim when it came without an escape sequence
/// (`verbatim`), escaped by serde_json otherwise.
pub fn write_name(out: &mut Vec<u8>, name: &str, verbatim: bool) -> Result<(), serde_json::Error> {
    if verbatim {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, name)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for NodeName<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = NodeName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a node name (string)")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(NodeName(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(NodeName(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(NodeName(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Which of the two candidate forms a request used.
#[derive(Debug)]
pub enum Candidates<'a> {
    /// Names only; node facts come from ecoplace's own watch.
    Names(Vec<NodeName<'a>>),
    /// Full Node objects, decoded, and where each one's JSON sits in the request body
    /// (kept for a filter, whose reply hands them back; not for prioritize).
    Nodes(Vec<Node>, Option<Vec<Range<usize>>>),
}

/// Where a request's candidates sit in its body, so that a reply can hand them back as
/// they came, without copying or decoding them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Echo {
    /// The `NodeNames` array, brackets included.
    Names(Range<usize>),
    /// The `Nodes.items` elements, from the first one's start to the last one's end
    /// (separators included); `None` when there are none.
    Nodes(Option<Range<usize>>),
}

impl Echo {
    /// Reads only the request's outline (the pod and the candidates' places, not the Node
    /// objects' fields): for an answer that must not wait for a full decode.
    pub fn of(body: &[u8]) -> Result<Self, DecodeError> {
        match ExtenderArgs::<&RawValue, NodeList>::parse(body)? {
            (_, _, Either::Nodes(list)) => {
                Ok(Self::Nodes(match (list.items.first(), list.items.last()) {
                    (Some(first), Some(last)) => {
                        Some(span(body, first.get()).start..span(body, last.get()).end)
                    }
                    _ => None,
                }))
            }
            (_, _, Either::Names(raw)) => {
                serde_json::from_str::<Vec<NodeName>>(raw.get())
                    .map_err(|e| DecodeError::Json(format!("NodeNames: {e}")))?;
                Ok(Self::Names(span(body, raw.get())))
            }
        }
    }
}

/// A decoded, checked request.
#[derive(Debug)]
pub struct Request<'a> {
    /// The pod.
    pub pod: Pod,
    /// The pod's effective requests (computed once, while decoding).
    pub requests: PodRequests,
    /// The candidates.
    pub candidates: Candidates<'a>,
}

/// Why a request body was refused (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not the extender's shape; serde's message names the key and position.
    #[error("malformed ExtenderArgs: {0}")]
    Json(String),
    /// `Pod` was absent or null.
    #[error("ExtenderArgs.Pod is missing or null")]
    MissingPod,
    /// Neither `Nodes` nor `NodeNames`.
    #[error(
        "ExtenderArgs needs one of Nodes (nodeCacheCapable: false) or NodeNames (nodeCacheCapable: true); both are missing or null"
    )]
    NoCandidates,
    /// Both `Nodes` and `NodeNames`.
    #[error("ExtenderArgs has both Nodes and NodeNames; kube-scheduler sends exactly one")]
    BothCandidates,
    /// A Node object in `Nodes.items` could not be decoded.
    #[error("ExtenderArgs.Nodes.items[{index}]: {reason}")]
    Node {
        /// Position in `items`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A resource quantity in the pod could not be parsed.
    #[error("ExtenderArgs.Pod: {0}")]
    Quantity(#[from] QuantityError),
}

impl<'a> Request<'a> {
    /// Decodes and checks a request body for `verb`: a filter keeps where each Node object
    /// sits; prioritize decodes Node objects in one pass (a 55 MB body is read once, not
    /// twice). Names borrow from the body.
    pub fn decode_for(body: &'a [u8], verb: Verb) -> Result<Self, DecodeError> {
        if verb == Verb::Filter {
            return Self::decode(body);
        }
        match ExtenderArgs::<Vec<NodeName>, DecodedNodeList>::parse(body) {
            Ok((pod, requests, Either::Names(names))) => Ok(Self {
                pod,
                requests,
                candidates: Candidates::Names(names),
            }),
            Ok((pod, requests, Either::Nodes(list)))
                if list.items.iter().all(|n| !n.metadata.name.is_empty()) =>
            {
                Ok(Self {
                    pod,
                    requests,
                    candidates: Candidates::Nodes(list.items, None),
                })
            }
            // Bad input: the two-pass decode names the Node at fault.
            _ => Self::decode(body),
        }
    }

    /// Decodes and checks a request body, keeping where each Node object sits (names and
    /// Node objects borrow from it).
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (pod, requests, candidates) = ExtenderArgs::<Vec<NodeName>, NodeList>::parse(body)?;
        let candidates = match candidates {
            Either::Names(names) => Candidates::Names(names),
            Either::Nodes(list) => {
                let (nodes, places) = list
                    .items
                    .into_iter()
                    .enumerate()
                    .map(|(index, raw)| {
                        serde_json::from_str::<Node>(raw.get())
                            .map_err(|e| DecodeError::Node {
                                index,
                                reason: e.to_string(),
                            })
                            .and_then(|n| match n.metadata.name.is_empty() {
                                true => Err(DecodeError::Node {
                                    index,
                                    reason: "metadata.name is missing".into(),
                                }),
                                false => Ok((n, span(body, raw.get()))),
                            })
                    })
                    .collect::<Result<(Vec<_>, Vec<_>), _>>()?;
                Candidates::Nodes(nodes, Some(places))
            }
        };
        Ok(Self {
            pod,
            requests,
            candidates,
        })
    }

    /// Where the candidates sit in the body, as [`Echo::of`] finds it: known after decoding
    /// full Node objects; `None` for `NodeNames` (a small body, cheap to read again).
    pub fn echo(&self) -> Option<Echo> {
        match &self.candidates {
            Candidates::Names(_) => None,
            Candidates::Nodes(_, places) => places.as_ref().map(|p| {
                Echo::Nodes(match (p.first(), p.last()) {
                    (Some(first), Some(last)) => Some(first.start..last.end),
                    _ => None,
                })
            }),
        }
    }
}

/// Where `part`, a slice of `body`, sits in it.
fn span(body: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    start..start + part.len()
}

/// A NodeList as kube-scheduler sends it (`metadata` and `items`, no apiVersion/kind).
#[derive(Debug, Deserialize)]
pub struct NodeList<'a> {
    /// The nodes, raw.
    #[serde(default, borrow)]
    pub items: Vec<&'a RawValue>,
}

/// A NodeList decoded in one pass.
#[derive(Debug, Deserialize)]
pub struct DecodedNodeList {
    /// The nodes.
    #[serde(default)]
    pub items: Vec<Node>,
}

/// Object metadata ecoplace reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace (pods).
    #[serde(default)]
    pub namespace: String,
    /// UID.
    #[serde(default)]
    pub uid: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The parts of a Pod ecoplace reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pod {
    /// Metadata.
    #[serde(default)]
    pub metadata: Meta,
    /// Spec.
    #[serde(default)]
    pub spec: PodSpec,
}

/// The parts of a PodSpec ecoplace reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Containers.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Init containers (their largest request counts, as in kube-scheduler).
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// Pod overhead (RuntimeClass).
    #[serde(default)]
    pub overhead: BTreeMap<String, String>,
}

/// A container's resources.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Container {
    /// Resource requirements.
    #[serde(default)]
    pub resources: ResourceRequirements,
}

/// Requests (limits are not read).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourceRequirements {
    /// Requested quantities by resource name.
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
}

impl Pod {
    /// Effective requests as kube-scheduler computes them: max(sum of containers, largest
    /// init container) + overhead.
    pub fn requests(&self) -> Result<PodRequests, QuantityError> {
        let mut sum = PodRequests::default();
        for (i, c) in self.spec.containers.iter().enumerate() {
            let what = format!("spec.containers[{i}].resources.requests");
            sum = sum + PodRequests::from_map(&c.resources.requests, &what)?;
        }
        let mut init = PodRequests::default();
        for (i, c) in self.spec.init_containers.iter().enumerate() {
            let what = format!("spec.initContainers[{i}].resources.requests");
            init = init.max(PodRequests::from_map(&c.resources.requests, &what)?);
        }
        let overhead = PodRequests::from_map(&self.spec.overhead, "spec.overhead")?;
        Ok(sum.max(init) + overhead)
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }
}

/// The parts of a Node ecoplace reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Node {
    /// Metadata (name, labels).
    #[serde(default)]
    pub metadata: Meta,
    /// Status (allocatable).
    #[serde(default)]
    pub status: NodeStatus,
}

/// Node status: allocatable resources.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeStatus {
    /// Allocatable quantities by resource name.
    #[serde(default)]
    pub allocatable: BTreeMap<String, String>,
}

impl Node {
    /// What ecoplace knows about this node; `allocated` from the watch when known.
    pub fn fact(&self, allocated: PodRequests) -> NodeFact {
        NodeFact {
            name: self.metadata.name.clone(),
            labels: self.metadata.labels.clone(),
            allocatable: self.allocatable().unwrap_or_default(),
            allocated,
        }
    }

    /// Allocatable CPU cores, memory bytes and GPUs.
    pub fn allocatable(&self) -> Result<PodRequests, QuantityError> {
        PodRequests::from_map(&self.status.allocatable, "status.allocatable")
    }
}

/// One prioritize entry; the reply is a bare JSON array of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPriority<'a> {
    /// Node name.
    #[serde(rename = "Host")]
    pub host: &'a str,
    /// 0..=10 (kube-scheduler multiplies by the extender weight and does not clamp).
    #[serde(rename = "Score")]
    pub score: i64,
}

/// Writes the prioritize reply, a bare JSON array of [`HostPriority`], straight into
/// `out`: the bytes serde writes for `[HostPriority]`, without a per-entry serializer.
/// Entries are (host, whether the host may be written verbatim, score).
pub fn write_priorities<'h>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (&'h str, bool, i64)>,
) -> Result<(), serde_json::Error> {
    out.push(b'[');
    for (i, (host, verbatim, score)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"Host\":");
        write_name(out, host, verbatim)?;
        out.extend_from_slice(b",\"Score\":");
        match u8::try_from(score) {
            Ok(d @ 0..=9) => out.push(b'0' + d),
            Ok(10) => out.extend_from_slice(b"10"),
            _ => serde_json::to_writer(&mut *out, &score)?,
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    fn fail(e: impl std::fmt::Display) -> TestCaseError {
        TestCaseError::fail(e.to_string())
    }

    proptest! {
        /// The direct writer and serde agree byte for byte, escapes and odd scores included;
        /// names decoded from a request borrow exactly when they had no escape sequence.
        #[test]
        fn priorities_writer_matches_serde(
            names in proptest::collection::vec(any::<String>(), 0..8),
            scores in proptest::collection::vec(-3i64..120, 8),
        ) {
            let body = serde_json::to_vec(&serde_json::json!({"Pod": {}, "NodeNames": names}))
                .map_err(fail)?;
            let req = Request::decode(&body).map_err(fail)?;
            let Candidates::Names(decoded) = &req.candidates else {
                return Err(fail("a NodeNames request decoded as Nodes"));
            };
            let entries: Vec<(&str, bool, i64)> = decoded
                .iter()
                .zip(&scores)
                .map(|(n, &s)| (n.as_str(), matches!(n.0, Cow::Borrowed(_)), s))
                .collect();
            for (n, e) in names.iter().zip(&entries) {
                prop_assert_eq!(n.as_str(), e.0);
                let escaped = serde_json::to_string(n).map_err(fail)?.len() != n.len() + 2;
                prop_assert_eq!(e.1, !escaped);
            }
            let mut direct = Vec::new();
            write_priorities(&mut direct, entries.iter().copied()).map_err(fail)?;
            let hp: Vec<HostPriority> = entries
                .iter()
                .map(|&(host, _, score)| HostPriority { host, score })
                .collect();
            prop_assert_eq!(
                String::from_utf8(direct).map_err(fail)?,
                serde_json::to_string(&hp).map_err(fail)?
            );
        }
    }

    #[test]
    fn wrong_casing_and_missing_parts_are_named() {
        let e = Request::decode(br#"{"pod":{},"NodeNames":["a"]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `pod`"), "{e}");
        let e = Request::decode(br#"{"Pod":null,"NodeNames":["a"]}"#).unwrap_err();
        assert!(matches!(e, DecodeError::MissingPod));
        let e = Request::decode(br#"{"Pod":{},"Nodes":null,"NodeNames":null}"#).unwrap_err();
        assert!(matches!(e, DecodeError::NoCandidates));
        let e = Request::decode(br#"{"Pod":{},"Nodes":{"items":[]},"NodeNames":[]}"#).unwrap_err();
        assert!(matches!(e, DecodeError::BothCandidates));
        let e = Request::decode(b"{").unwrap_err();
        assert!(e.to_string().starts_with("malformed ExtenderArgs"), "{e}");
    }

    #[test]
    fn a_bad_node_is_named_whichever_the_verb() {
        let body = br#"{"Pod":{},"Nodes":{"items":[{"metadata":{"name":"a"}},{"metadata":{}}]}}"#;
        for verb in [Verb::Filter, Verb::Prioritize] {
            let e = Request::decode_for(body, verb).unwrap_err();
            assert_eq!(
                e.to_string(),
                "ExtenderArgs.Nodes.items[1]: metadata.name is missing"
            );
        }
        let body = br#"{"Pod":{},"Nodes":{"items":[{"metadata":{"name":"a"},"status":{"allocatable":7}}]}}"#;
        let e = Request::decode_for(body, Verb::Prioritize).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ExtenderArgs.Nodes.items[0]: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn pod_requests_follow_kube_scheduler_rules() {
        let body = br#"{"Pod":{"metadata":{"name":"p","namespace":"ns"},"spec":{
            "containers":[{"resources":{"requests":{"cpu":"250m","memory":"64Mi"}}},
                          {"resources":{"requests":{"cpu":"1","nvidia.com/gpu":"1"}}}],
            "initContainers":[{"resources":{"requests":{"cpu":"2","memory":"1Mi"}}}],
            "overhead":{"cpu":"100m"}}},"NodeNames":["n1"]}"#;
        let r = Request::decode(body).expect("decodes");
        let q = r.pod.requests().expect("requests");
        assert!((q.cpu - 2.1).abs() < 1e-9, "{q:?}");
        assert_eq!(q.memory, 64.0 * 1024.0 * 1024.0);
        assert_eq!(q.gpu, 1.0);
        assert_eq!(r.pod.key(), "ns/p");
    }

    #[test]
    fn bad_quantity_names_its_path() {
        let body = br#"{"Pod":{"spec":{"containers":[{"resources":{"requests":{"cpu":"lots"}}}]}},"NodeNames":[]}"#;
        let e = Request::decode(body).unwrap_err();
        assert!(
            e.to_string()
                .contains("spec.containers[0].resources.requests[cpu]"),
            "{e}"
        );
    }
}

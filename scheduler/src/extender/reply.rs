//! Extender reply bodies, assembled from written bytes and ranges of the request body: a
//! filter on full Node objects hands the passing nodes back without copying them, and a
//! call that misses the deadline is answered without decoding its body again.

use std::collections::BTreeMap;
use std::ops::Range;

use axum::body::Bytes;
use serde::ser::Error as _;

use super::Verb;
use super::wire::{Echo, NodeName, write_name, write_priorities};

/// Ranges of the request shorter than this are copied; longer ones are sent as slices of it.
const SLICE_FROM: usize = 16 * 1024;

/// A reply body in parts: written buffers and slices of the request body.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    parts: Vec<Bytes>,
    len: usize,
}

impl Reply {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parts, in order (none empty).
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push(part);
        }
    }

    /// The body in one buffer (tests and tools; the server sends the parts).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out
    }
}

impl From<Vec<u8>> for Reply {
    fn from(v: Vec<u8>) -> Self {
        let mut r = Self::default();
        r.push(Bytes::from(v));
        r
    }
}

/// Writes a [`Reply`]: bytes go to a buffer, long ranges of the request become parts.
struct Builder<'b> {
    request: &'b Bytes,
    reply: Reply,
    buf: Vec<u8>,
}

impl<'b> Builder<'b> {
    fn new(request: &'b Bytes) -> Self {
        Self {
            request,
            reply: Reply::default(),
            buf: Vec::with_capacity(4096),
        }
    }

    /// Appends `range` of the request body as it came.
    fn echo(&mut self, range: Range<usize>) -> Result<(), serde_json::Error> {
        let Some(part) = self.request.get(range.clone()) else {
            return Err(serde_json::Error::custom(format!(
                "reply: range {range:?} is outside the {}-byte request",
                self.request.len()
            )));
        };
        if part.len() < SLICE_FROM {
            self.buf.extend_from_slice(part);
        } else {
            let written = std::mem::take(&mut self.buf);
            self.reply.push(Bytes::from(written));
            self.reply.push(self.request.slice(range));
        }
        Ok(())
    }

    fn finish(mut self) -> Reply {
        self.reply.push(Bytes::from(self.buf));
        self.reply
    }
}

/// The passing candidates of a filter reply.
#[derive(Debug, Clone)]
pub enum Passing<'a> {
    /// `NodeNames` to write, each with whether it may be written verbatim.
    Names(Vec<(&'a str, bool)>),
    /// All of the request's candidates, as they came (failing open).
    All(Echo),
    /// Some of the request's `Nodes.items`, as ranges of the request body (each range
    /// one or more whole consecutive items).
    Nodes(Vec<Range<usize>>),
}

/// Failed nodes and why (`FailedNodes`: preemption may help; `FailedAndUnresolvableNodes`:
/// it cannot).
#[derive(Debug, Clone, Default)]
pub struct Failed<'a> {
    /// Nodes where preemption may help.
    pub resolvable: BTreeMap<&'a str, String>,
    /// Nodes where it cannot.
    pub unresolvable: BTreeMap<&'a str, String>,
}

/// Writes a filter reply, kube-scheduler's `ExtenderFilterResult` (`Error` empty): the
/// passing candidates in the request's form, then the failed ones.
pub fn filter(
    request: &Bytes,
    passing: Passing<'_>,
    failed: &Failed<'_>,
) -> Result<Reply, serde_json::Error> {
    let mut b = Builder::new(request);
    let nodes_head = b"{\"Nodes\":{\"metadata\":{},\"items\":[";
    let nodes_tail = b"]},\"NodeNames\":null";
    match passing {
        Passing::Names(names) => {
            b.buf.extend_from_slice(b"{\"Nodes\":null,\"NodeNames\":[");
            for (i, (name, verbatim)) in names.into_iter().enumerate() {
                if i > 0 {
                    b.buf.push(b',');
                }
                write_name(&mut b.buf, name, verbatim)?;
            }
            b.buf.push(b']');
        }
        Passing::All(Echo::Names(array)) => {
            b.buf.extend_from_slice(b"{\"Nodes\":null,\"NodeNames\":");
            b.echo(array)?;
        }
        Passing::All(Echo::Nodes(items)) => {
            b.buf.extend_from_slice(nodes_head);
            if let Some(items) = items {
                b.echo(items)?;
            }
            b.buf.extend_from_slice(nodes_tail);
        }
        Passing::Nodes(runs) => {
            b.buf.extend_from_slice(nodes_head);
            for (i, run) in runs.into_iter().enumerate() {
                if i > 0 {
                    b.buf.push(b',');
                }
                b.echo(run)?;
            }
            b.buf.extend_from_slice(nodes_tail);
        }
    }
    b.buf.extend_from_slice(b",\"FailedNodes\":");
    serde_json::to_writer(&mut b.buf, &failed.resolvable)?;
    b.buf.extend_from_slice(b",\"FailedAndUnresolvableNodes\":");
    serde_json::to_writer(&mut b.buf, &failed.unresolvable)?;
    b.buf.extend_from_slice(b",\"Error\":\"\"}");
    Ok(b.finish())
}

/// The fail-open reply from the candidates' places alone, for a call whose decision
/// missed the deadline: a filter passes every candidate as it came; a prioritize call
/// gives `NodeNames` the neutral score and, on full Node objects (whose names would need
/// a decode), answers an empty list — kube-scheduler then adds nothing to any node,
/// which ranks them exactly as equal scores do.
pub fn fail_open(
    verb: Verb,
    request: &Bytes,
    echo: Echo,
    neutral: i64,
) -> Result<Reply, serde_json::Error> {
    match (verb, echo) {
        (Verb::Filter, echo) => filter(request, Passing::All(echo), &Failed::default()),
        (Verb::Prioritize, Echo::Names(array)) => {
            let Some(raw) = request.get(array) else {
                return Err(serde_json::Error::custom("NodeNames outside the request"));
            };
            let names: Vec<NodeName> = serde_json::from_slice(raw)?;
            let mut out = Vec::with_capacity(raw.len() + 12 * names.len());
            write_priorities(
                &mut out,
                names.iter().map(|n| (n.as_str(), n.is_borrowed(), neutral)),
            )?;
            Ok(Reply::from(out))
        }
        (Verb::Prioritize, Echo::Nodes(_)) => Ok(Reply::from(b"[]".to_vec())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::extender::decide::{Decision, NEUTRAL_SCORE, Verdict};
    use crate::extender::wire::Request;

    /// A `Nodes` or `NodeNames` request whose i-th candidate is `node-i` (names with a
    /// quote when `escaped`), Node objects padded by `pad[i]` bytes of labels.
    fn body(names_mode: bool, pad: &[usize], escaped: bool) -> Bytes {
        let name = |i: usize| match escaped && i % 2 == 1 {
            true => format!("node-\"{i}"),
            false => format!("node-{i}"),
        };
        let v = match names_mode {
            true => json!({"Pod": {}, "NodeNames": (0..pad.len()).map(name).collect::<Vec<_>>()}),
            false => {
                json!({"Pod": {}, "Nodes": {"metadata": {}, "items": pad.iter().enumerate().map(|(i, &p)| json!({
                "metadata": {"name": name(i), "labels": {"pad": "x".repeat(p)}},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}},
            })).collect::<Vec<_>>()}})
            }
        };
        // Pretty-printed: the replies must keep the request's own whitespace.
        Bytes::from(serde_json::to_vec_pretty(&v).expect("fixture"))
    }

    /// A decision failing the candidates where `pass` is false (every third unresolvable).
    fn decision<'a>(req: &'a Request<'_>, pass: &[bool]) -> Decision<'a> {
        let names: Vec<&str> = match &req.candidates {
            crate::extender::wire::Candidates::Names(n) => n.iter().map(|n| n.as_str()).collect(),
            crate::extender::wire::Candidates::Nodes(n, _) => {
                n.iter().map(|n| n.metadata.name.as_str()).collect()
            }
        };
        let verdicts = names
            .into_iter()
            .zip(pass)
            .enumerate()
            .map(|(i, (name, &ok))| Verdict {
                name,
                verbatim: !name.contains('"'),
                known: true,
                reasons: if ok {
                    vec![]
                } else {
                    vec![format!("reason {i}")]
                },
                unresolvable: i % 3 == 0,
                score: NEUTRAL_SCORE,
                units: None,
            })
            .collect();
        Decision {
            verdicts,
            fail_open: None,
            skipped: false,
            warnings: Vec::new(),
            policy: None,
        }
    }

    /// The reply as serde would build it from the request's values.
    fn expected(request: &Value, names_mode: bool, pass: &[bool]) -> Value {
        let key = if names_mode { "NodeNames" } else { "Nodes" };
        let all = match names_mode {
            true => request["NodeNames"].as_array().expect("fixture").clone(),
            false => request["Nodes"]["items"]
                .as_array()
                .expect("fixture")
                .clone(),
        };
        let name = |c: &Value| match names_mode {
            true => c.as_str().expect("fixture").to_string(),
            false => c["metadata"]["name"].as_str().expect("fixture").to_string(),
        };
        let (mut failed, mut unresolvable) = (json!({}), json!({}));
        let mut passing = Vec::new();
        for (i, (c, &ok)) in all.iter().zip(pass).enumerate() {
            match (ok, i % 3 == 0) {
                (true, _) => passing.push(c.clone()),
                (false, true) => unresolvable[name(c)] = json!(format!("ecoplace: reason {i}")),
                (false, false) => failed[name(c)] = json!(format!("ecoplace: reason {i}")),
            }
        }
        let mut v = json!({"Nodes": null, "NodeNames": null, "FailedNodes": failed,
            "FailedAndUnresolvableNodes": unresolvable, "Error": ""});
        v[key] = match names_mode {
            true => json!(passing),
            false => json!({"metadata": {}, "items": passing}),
        };
        v
    }

    proptest! {
        /// Filter replies equal serde's, in both modes, whatever passes; large Node objects
        /// go back as slices of the request, byte for byte.
        #[test]
        fn filter_replies_equal_serde(
            names_mode: bool,
            escaped: bool,
            cands in proptest::collection::vec((0usize..40_000, any::<bool>()), 0..9),
        ) {
            let (pad, pass): (Vec<usize>, Vec<bool>) = cands.into_iter().unzip();
            let request = body(names_mode, &pad, escaped);
            let req = Request::decode(&request).expect("fixture");
            // Prioritize's one-pass decode reads the same candidates, without places.
            let one_pass = Request::decode_for(&request, Verb::Prioritize).expect("fixture");
            let names = |r: &Request| format!("{:?}", decision(r, &pass).verdicts);
            prop_assert_eq!(names(&one_pass), names(&req));
            prop_assert_eq!(one_pass.echo(), None);
            prop_assert!(names_mode || decision(&one_pass, &pass).filter_reply(&one_pass, &request).is_err());
            let reply = decision(&req, &pass).filter_reply(&req, &request).expect("fixture");
            let bytes = reply.to_vec();
            prop_assert_eq!(bytes.len(), reply.len());
            let got: Value = serde_json::from_slice(&bytes).expect("fixture");
            let sent: Value = serde_json::from_slice(&request).expect("fixture");
            prop_assert_eq!(got, expected(&sent, names_mode, &pass));
            if let crate::extender::wire::Candidates::Nodes(_, Some(places)) = &req.candidates {
                for (span, _) in places.iter().zip(&pass).filter(|(_, ok)| **ok) {
                    let raw = &request[span.clone()];
                    prop_assert!(bytes.windows(raw.len()).any(|w| w == raw));
                }
                // Runs of consecutive passing nodes of at least SLICE_FROM bytes are sent
                // as slices of the request; nothing else is.
                let within = |p: &Bytes| {
                    let (r, q) = (request.as_ptr_range(), p.as_ptr_range());
                    q.start >= r.start && q.end <= r.end
                };
                let sliced = reply.clone().into_parts().iter().filter(|p| within(p)).count();
                let mut long_runs = 0;
                let mut run: Option<std::ops::Range<usize>> = None;
                for (span, &ok) in places.iter().zip(&pass).chain([(&(0..0), &false)]) {
                    run = match (ok, run) {
                        (true, Some(r)) => Some(r.start..span.end),
                        (true, None) => Some(span.clone()),
                        (false, r) => {
                            long_runs += usize::from(r.is_some_and(|r| r.len() >= SLICE_FROM));
                            None
                        }
                    };
                }
                prop_assert_eq!(sliced, long_runs);
            }

            // Failing open on the body alone: filter passes everything, as a decided
            // all-pass reply does (byte for byte for Nodes; NodeNames keep the request's
            // whitespace); prioritize is neutral for names, empty for Nodes.
            let echo = Echo::of(&request).expect("fixture");
            prop_assert!(req.echo().is_none_or(|e| e == echo), "{:?} vs {echo:?}", req.echo());
            let all = vec![true; pad.len()];
            let open = fail_open(Verb::Filter, &request, echo.clone(), NEUTRAL_SCORE).expect("fixture");
            let decided = decision(&req, &all).filter_reply(&req, &request).expect("fixture");
            let as_json = |r: &Reply| serde_json::from_slice::<Value>(&r.to_vec()).expect("fixture");
            prop_assert_eq!(as_json(&open), as_json(&decided));
            if !names_mode {
                prop_assert_eq!(open.to_vec(), decided.to_vec());
            }
            let scores: Value = serde_json::from_slice(
                &fail_open(Verb::Prioritize, &request, echo, NEUTRAL_SCORE).expect("fixture").to_vec(),
            ).expect("fixture");
            let want: Vec<Value> = match names_mode {
                true => sent["NodeNames"].as_array().expect("fixture").iter()
                    .map(|n| json!({"Host": n, "Score": NEUTRAL_SCORE})).collect(),
                false => vec![],
            };
            prop_assert_eq!(scores, json!(want));
        }
    }
}

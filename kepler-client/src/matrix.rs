//! Matrix responses of the Prometheus HTTP API, parsed without copying labels.
//!
//! A snapshot of a large fleet reads ~100 000 series per query. Parsing them into owned
//! label maps costs more than everything else together, so the response body is kept as
//! received and parsed into [`Series`] that borrow their labels from it.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::TelemetryError;

/// The body of a range-selector query as received, with the query that produced it.
#[derive(Debug, Clone)]
pub struct MatrixBody {
    url: String,
    query: String,
    body: Vec<u8>,
}

/// One series of a matrix: its labels (borrowed from the body) and `(time s, value)` samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Series<'a> {
    labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    samples: Vec<(f64, f64)>,
}

impl<'a> Series<'a> {
    /// Builds a series (tests, recordings).
    pub fn new(labels: Vec<(Cow<'a, str>, Cow<'a, str>)>, samples: Vec<(f64, f64)>) -> Self {
        Self { labels, samples }
    }

    /// The value of a label, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Heap bytes this series holds itself (labels copied because of escapes, the label
    /// and sample vectors); borrowed labels live in the body.
    pub fn heap_bytes(&self) -> usize {
        let owned = |c: &Cow<'_, str>| match c {
            Cow::Borrowed(_) => 0,
            Cow::Owned(s) => s.capacity(),
        };
        self.labels.capacity() * std::mem::size_of::<(Cow<'_, str>, Cow<'_, str>)>()
            + self
                .labels
                .iter()
                .map(|(k, v)| owned(k) + owned(v))
                .sum::<usize>()
            + self.samples.capacity() * std::mem::size_of::<(f64, f64)>()
    }

    /// Samples in time order: (Unix time in seconds, value).
    pub fn samples(&self) -> &[(f64, f64)] {
        &self.samples
    }
}

impl MatrixBody {
    /// Wraps a body received from `url` for `query`.
    pub fn new(url: impl Into<String>, query: impl Into<String>, body: Vec<u8>) -> Self {
        Self {
            url: url.into(),
            query: query.into(),
            body,
        }
    }

    /// The query that produced this body.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The body as received.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// Size of the body in bytes.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Parses the series. An empty result typed as a vector is an empty matrix; any other
    /// result type, an error status or malformed JSON is a [`TelemetryError::Query`] or
    /// [`TelemetryError::UnexpectedResult`] naming the query.
    pub fn series(&self) -> Result<Vec<Series<'_>>, TelemetryError> {
        let env: Envelope<'_> = serde_json::from_slice(&self.body)
            .map_err(|e| self.query_error(format!("malformed response: {e}")))?;
        if env.status != "success" {
            return Err(self.query_error(format!(
                "{}: {}",
                env.error_type.as_deref().unwrap_or("error"),
                env.error.as_deref().unwrap_or("no message")
            )));
        }
        let Some(data) = env.data else {
            return Err(self.query_error("success without data".to_string()));
        };
        match data.result_type.as_ref() {
            "matrix" => Ok(data.result),
            "vector" if data.result.is_empty() => Ok(Vec::new()),
            _ => Err(TelemetryError::UnexpectedResult {
                query: self.query.clone(),
                expected: "a range vector (matrix)",
            }),
        }
    }

    fn query_error(&self, message: String) -> TelemetryError {
        TelemetryError::Query {
            url: self.url.clone(),
            query: self.query.clone(),
            message,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<Data<'a>>,
    #[serde(borrow, default)]
    error_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    #[serde(borrow)]
    result_type: Cow<'a, str>,
    #[serde(borrow, default)]
    result: Vec<Series<'a>>,
}

/// A string borrowed from the body when it has no escapes, owned otherwise.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A sample value: Prometheus sends numbers as strings (`"1.5"`, `"NaN"`, `"+Inf"`).
struct Value(f64);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sample value as a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse()
                    .map(Value)
                    .map_err(|_| E::custom(format!("sample value `{v}` is not a number")))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Series<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Series<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a series {metric, values}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut labels = None;
                let mut samples = Vec::new();
                while let Some(key) = map.next_key::<CowStr<'a>>()? {
                    match key.0.as_ref() {
                        "metric" => labels = Some(map.next_value::<Labels<'a>>()?.0),
                        "values" => samples = map.next_value::<Samples>()?.0,
                        // An instant-vector sample: `value` instead of `values`.
                        "value" => {
                            let (t, v) = map.next_value::<(f64, Value)>()?;
                            samples = vec![(t, v.0)];
                        }
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(Series {
                    labels: labels.unwrap_or_default(),
                    samples,
                })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

struct Labels<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Labels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<CowStr<'a>, CowStr<'a>>()? {
                    out.push((k.0, v.0));
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

struct Samples(Vec<(f64, f64)>);

impl<'de> Deserialize<'de> for Samples {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Samples;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of [time, \"value\"] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some((t, v)) = seq.next_element::<(f64, Value)>()? {
                    out.push((t, v.0));
                }
                Ok(Samples(out))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> MatrixBody {
        MatrixBody::new("http://p", "q", json.as_bytes().to_vec())
    }

    #[test]
    fn parses_labels_and_samples_including_special_values() {
        let b = body(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
              {"metric":{"__name__":"m","node_name":"n\"1"},
               "values":[[1.5,"2"],[2.5,"NaN"],[3.5,"+Inf"],[4,"-1e3"]]}]}}"#,
        );
        let s = b.series().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].label("node_name"), Some("n\"1"));
        assert_eq!(s[0].label("__name__"), Some("m"));
        assert_eq!(s[0].label("zone"), None);
        let v = s[0].samples();
        assert_eq!(v[0], (1.5, 2.0));
        assert!(v[1].1.is_nan());
        assert_eq!(v[2].1, f64::INFINITY);
        assert_eq!(v[3], (4.0, -1000.0));
    }

    #[test]
    fn empty_vector_is_an_empty_matrix_and_other_types_are_errors() {
        let empty = body(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert!(empty.series().unwrap().is_empty());
        let scalar = body(r#"{"status":"success","data":{"resultType":"scalar","result":[]}}"#);
        assert!(matches!(
            scalar.series(),
            Err(TelemetryError::UnexpectedResult { .. })
        ));
    }

    #[test]
    fn error_status_and_malformed_bodies_name_the_query() {
        let err = body(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
            .series()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad_data") && err.contains("parse error"),
            "{err}"
        );
        let err = body(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"x"]]}]}}"#,
        )
        .series()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`x` is not a number") && err.contains('q'),
            "{err}"
        );
        assert!(body("<html>").series().is_err());
    }
}

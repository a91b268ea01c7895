//! Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `129e6`, `128974848`) as numbers.

/// A quantity that is not one Kubernetes accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: `{value}` is not a Kubernetes quantity ({reason})")]
pub struct QuantityError {
    /// Where the quantity was.
    pub path: String,
    /// The text.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Binary and decimal suffixes and their multipliers.
const SUFFIXES: [(&str, f64); 13] = [
    ("Ki", 1024.0),
    ("Mi", 1048576.0),
    ("Gi", 1073741824.0),
    ("Ti", 1099511627776.0),
    ("Pi", 1125899906842624.0),
    ("Ei", 1152921504606846976.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
];

/// Parses a quantity at `path` (used in the error).
pub fn parse(value: &str, path: &str) -> Result<f64, QuantityError> {
    let err = |reason| QuantityError {
        path: path.to_string(),
        value: value.to_string(),
        reason,
    };
    let s = value.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let (number, multiplier) = SUFFIXES
        .iter()
        .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
        .or_else(|| s.strip_suffix('P').map(|n| (n, 1e15)))
        .or_else(|| {
            s.strip_suffix('E')
                .filter(|n| !n.is_empty())
                .map(|n| (n, 1e18))
        })
        .unwrap_or((s, 1.0));
    if number.is_empty()
        || !number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | 'e' | 'E'))
    {
        return Err(err(
            "expected a number with an optional suffix such as m, Ki, Mi, G",
        ));
    }
    let n: f64 = number.parse().map_err(|_| err("not a number"))?;
    let v = n * multiplier;
    if !v.is_finite() || v < 0.0 {
        return Err(err("must be finite and not negative"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_what_kubernetes_writes() {
        let cases = [
            ("500m", 0.5),
            ("2", 2.0),
            ("1.5", 1.5),
            ("64Mi", 67108864.0),
            ("1Gi", 1073741824.0),
            ("129e6", 129e6),
            ("128974848", 128974848.0),
            ("1k", 1000.0),
            ("2G", 2e9),
            ("100n", 1e-7),
        ];
        for (s, want) in cases {
            let got = parse(s, "x").expect("parses");
            assert!((got - want).abs() <= 1e-9 * want.max(1.0), "{s}: {got}");
        }
    }

    #[test]
    fn rejects_garbage_with_its_path() {
        for s in ["", "lots", "1Xi", "-1", "Mi", "1e400"] {
            let e = parse(s, "spec.containers[0].resources.requests[cpu]").unwrap_err();
            assert!(e.to_string().contains("requests[cpu]"), "{e}");
        }
    }
}

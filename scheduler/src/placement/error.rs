//! Why a placement request got no plan, in a form HTTP and the CLI both print.

use serde::Serialize;

use optimizer::cost::Infeasibility;

/// One bad field: its path in the request (`workloads[2].replicas`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Path of the field in the request (empty for the body as a whole).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// One workload that cannot be placed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unplaceable {
    /// Workload name (absent when the cause is shared by several workloads).
    pub workload: Option<String>,
    /// Why, in one sentence.
    pub reason: String,
    /// Clusters ruled out for it, with every rule each breaks.
    pub eliminated: Vec<EliminatedCluster>,
}

/// A cluster ruled out for a workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EliminatedCluster {
    /// Cluster name.
    pub cluster: String,
    /// The rules it breaks, as sentences.
    pub reasons: Vec<String>,
    /// The same rules, machine-readable.
    pub details: Vec<Infeasibility>,
}

/// Why a request got no plan.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The body is not a request (syntax, unknown or missing field, wrong type).
    #[error("malformed request: {}: {}", .0.field, .0.message)]
    Malformed(FieldError),
    /// The request decodes but breaks semantic rules; every bad field is listed.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// No placement satisfies the constraints; the workloads that cannot be placed.
    #[error("no feasible placement: {}", .0.iter().map(|u| u.reason.as_str()).collect::<Vec<_>>().join("; "))]
    Infeasible(Vec<Unplaceable>),
    /// The solver failed (not the request's fault).
    #[error("placement failed: {0}")]
    Internal(String),
}

fn describe(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The JSON error body: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for clients.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// `malformed`, `invalid`, `infeasible` or `internal`.
    pub kind: &'static str,
    /// The whole error in one line.
    pub message: String,
    /// The bad fields (malformed and invalid requests).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
    /// The workloads that cannot be placed (infeasible requests).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unplaceable: Vec<Unplaceable>,
}

impl PlacementError {
    /// The HTTP status: 400 for a bad request, 422 for an infeasible one, 500 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            PlacementError::Malformed(_) | PlacementError::Invalid(_) => 400,
            PlacementError::Infeasible(_) => 422,
            PlacementError::Internal(_) => 500,
        }
    }

    /// The JSON error body.
    pub fn body(&self) -> ErrorBody {
        let (kind, fields, unplaceable) = match self {
            PlacementError::Malformed(f) => ("malformed", vec![f.clone()], Vec::new()),
            PlacementError::Invalid(f) => ("invalid", f.clone(), Vec::new()),
            PlacementError::Infeasible(u) => ("infeasible", Vec::new(), u.clone()),
            PlacementError::Internal(_) => ("internal", Vec::new(), Vec::new()),
        };
        ErrorBody {
            error: ErrorDetail {
                kind,
                message: self.to_string(),
                fields,
                unplaceable,
            },
        }
    }
}

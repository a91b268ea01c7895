//! Carrying node-level moves out through the Eviction API (`policy/v1`), so that
//! PodDisruptionBudgets hold: capped per run, paced, each eviction conditional on the UID
//! the plan saw. Also the paginated lists the plan reads.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::Eviction as EvictionBody;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Preconditions};
use kube::api::{ListParams, ObjectList};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::pods::PodRef;
use crate::shutdown::Shutdown;

/// Page size of the lists (the apiserver's continue tokens fetch the rest).
const PAGE: u32 = 500;

/// One eviction of the plan and what became of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Eviction {
    /// The pod.
    pub pod: PodRef,
    /// Its controller (`namespace/Kind/name`).
    pub workload: String,
    /// The node the plan moves it to (kube-scheduler places the replacement).
    pub towards: String,
    /// What happened.
    pub outcome: Outcome,
    /// The apiserver's message, or why it was not attempted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What became of one eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Dry run: it would be requested.
    Planned,
    /// The apiserver accepted it (the pod is terminating).
    Evicted,
    /// A PodDisruptionBudget refused it now (HTTP 429); the workload's other evictions wait.
    Blocked,
    /// The pod is gone or was replaced (404, or 409 on the UID precondition).
    Gone,
    /// The run stopped before it: the cap, a refusal of the workload, or a forbidden call.
    NotAttempted,
    /// The apiserver answered with another error.
    Failed,
}

/// How many evictions one run makes, and how far apart.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Most evictions made (accepted ones count).
    pub max_evictions: u32,
    /// Wait between two eviction requests.
    pub interval: Duration,
}

/// A client for evictions: `config`'s, without kube's retry of 429 answers (it would retry a
/// disruption budget's refusal 15 times over minutes; a refused eviction waits for the next
/// run instead).
pub fn client(mut config: kube::Config) -> Result<Client, kube::Error> {
    config.default_retry = false;
    Client::try_from(config)
}

/// Requests the evictions in order, at most `pace.max_evictions` accepted, `pace.interval`
/// apart. A 429 stops the rest of that workload's evictions; a 403 stops the run (the
/// rebalance RBAC, manifests/components/rebalance, is missing); so does `shutdown`
/// (SIGTERM, SIGINT) between two evictions: the one in flight finishes, the rest are
/// `not-attempted`. `client` should come from [`client`].
pub async fn execute(client: &Client, evictions: &mut [Eviction], pace: Pace, shutdown: &Shutdown) {
    let mut accepted = 0;
    let mut refused: BTreeSet<String> = BTreeSet::new();
    let mut stop: Option<String> = None;
    let mut first = true;
    let stopped = |why: &str| format!("the run was stopped ({why}) before this eviction");
    for e in evictions.iter_mut() {
        if stop.is_none()
            && let Some(why) = shutdown.reason()
        {
            stop = Some(stopped(why));
        }
        let skip = if let Some(why) = &stop {
            Some(why.clone())
        } else if accepted >= pace.max_evictions {
            Some(format!(
                "the run's cap of {} evictions is reached (rebalance.maxEvictions / --max-evictions)",
                pace.max_evictions
            ))
        } else if refused.contains(&e.workload) {
            Some("an earlier eviction of this workload was refused".into())
        } else {
            None
        };
        if let Some(why) = skip {
            e.outcome = Outcome::NotAttempted;
            e.message = Some(why);
            continue;
        }
        if !first {
            tokio::select! {
                () = tokio::time::sleep(pace.interval) => {}
                why = shutdown.requested() => {
                    let why = stopped(why);
                    e.outcome = Outcome::NotAttempted;
                    e.message = Some(why.clone());
                    stop = Some(why);
                    continue;
                }
            }
        }
        first = false;
        match evict(client, &e.pod).await {
            Ok(()) => {
                accepted += 1;
                e.outcome = Outcome::Evicted;
                tracing::info!(pod = %e.pod.name, namespace = %e.pod.namespace, node = %e.pod.node, "evicted");
            }
            Err(kube::Error::Api(status)) => {
                let message = status.message.clone();
                e.outcome = match status.code {
                    429 => {
                        refused.insert(e.workload.clone());
                        Outcome::Blocked
                    }
                    404 | 409 => Outcome::Gone,
                    403 => {
                        stop = Some(format!(
                            "evictions are forbidden: {message} (grant pods/eviction create, see manifests/components/rebalance)"
                        ));
                        Outcome::Failed
                    }
                    _ => Outcome::Failed,
                };
                let causes: Vec<&str> = status
                    .details
                    .iter()
                    .flat_map(|d| d.causes.iter())
                    .map(|c| c.message.as_str())
                    .filter(|m| !m.is_empty())
                    .collect();
                e.message = Some(if causes.is_empty() {
                    format!("HTTP {}: {message}", status.code)
                } else {
                    format!("HTTP {}: {message} ({})", status.code, causes.join("; "))
                });
            }
            Err(other) => {
                e.outcome = Outcome::Failed;
                e.message = Some(other.to_string());
            }
        }
    }
}

/// POSTs one `policy/v1` Eviction, conditional on the pod's UID (a pod recreated under the
/// same name, as StatefulSets do, is not evicted by mistake).
async fn evict(client: &Client, pod: &PodRef) -> Result<(), kube::Error> {
    // kube's `Api::evict` writes the options under `delete_options`, which the apiserver
    // ignores (the field is `deleteOptions`), so the UID precondition would be lost: the
    // typed upstream body is posted instead.
    let body = EvictionBody {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            ..ObjectMeta::default()
        },
        delete_options: Some(DeleteOptions {
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..DeleteOptions::default()
        }),
    };
    let url = format!(
        "{}/{}/eviction",
        Pod::url_path(&(), Some(&pod.namespace)),
        pod.name
    );
    let request = axum::http::Request::post(url)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).map_err(kube::Error::SerdeError)?)
        .map_err(kube::Error::HttpError)?;
    client
        .request::<kube::core::Status>(request)
        .await
        .map(|_| ())
}

/// Every object of kind `K` in the cluster, page by page (`field_selector` optional).
pub async fn list_all<K>(
    client: &Client,
    field_selector: Option<&str>,
) -> Result<Vec<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE);
    if let Some(f) = field_selector {
        params = params.fields(f);
    }
    let mut out = Vec::new();
    loop {
        let page: ObjectList<K> = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

//! Learned power model: an ONNX graph (e.g. the MLP trained by `optimizer/models/train.py`)
//! run with tract, batched.
//!
//! # Feature vector
//!
//! The graph has one input, float32 `[N, 3]`, one row per prediction:
//!
//! | column | feature       | unit              |
//! |--------|---------------|-------------------|
//! | 0      | `utilisation` | CPU fraction 0..1 |
//! | 1      | `idle_watts`  | W                 |
//! | 2      | `max_watts`   | W                 |
//!
//! and one output, float32 `[N, 1]`: the predicted **total** power of the node at that
//! utilisation, watts. skl2onnx leaves the batch dimension unknown; tract runs a graph with
//! concrete shapes 5× faster than one with a symbolic batch, so the model is planned once per
//! batch size in [`BATCHES`] (set explicitly) and a call runs its rows in chunks of those sizes
//! (see [`chunk_size`]), padding the last chunk. The incremental power of a query is `f(u + Δu) − f(u)` (with `u + Δu` clamped to 1), computed
//! in one inference over `2·n` rows: the `n` "before" rows, then the `n` "after" rows.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::curve::{check_lengths, check_query};
use super::{PowerError, PowerModel, PowerQuery};

/// Width of the feature vector: `[utilisation, idle_watts, max_watts]`.
pub const FEATURES: usize = 3;

/// Batch sizes the graph is planned for, largest first (see [`chunk_size`]).
pub const BATCHES: [usize; 4] = [4096, 1024, 256, 64];

/// The plan size the next chunk of `left` rows runs with: the smallest planned size that
/// holds them all if that pads at most a quarter more rows, else the largest size they fill,
/// else (fewer rows than the smallest plan) the smallest size. 5 000 rows run as
/// 4 096 + 1 024 (2.4 % padding), 10 000 as 2 × 4 096 + 1 024 + 3 × 256 + 64.
pub fn chunk_size(left: usize) -> usize {
    let holds = BATCHES.iter().rev().find(|&&n| n >= left);
    match holds {
        Some(&n) if (n - left) * 4 <= left => n,
        _ => BATCHES
            .iter()
            .find(|&&n| n <= left)
            .or(holds)
            .copied()
            .unwrap_or(BATCHES[0]),
    }
}

/// An ONNX power model loaded once and kept as optimised tract plans, one per batch size.
#[derive(Debug, Clone)]
pub struct OnnxPowerModel {
    plans: Arc<[(usize, Arc<TypedRunnableModel>)]>,
    name: String,
}

impl OnnxPowerModel {
    /// Loads and optimises the model at `path`; failures are [`PowerError::Load`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PowerError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| PowerError::Load {
            path: label.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::from_bytes(&bytes, &label)
    }

    /// Loads and optimises a model from its ONNX bytes; `label` names it in errors and
    /// [`PowerModel::name`] (e.g. the path it came from).
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<Self, PowerError> {
        let load_err = |stage: &str, e: TractError| PowerError::Load {
            path: label.to_string(),
            reason: format!("{stage}: {e:#}"),
        };
        let model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .map_err(|e| load_err("not a readable ONNX model", e))?;
        let plans = BATCHES
            .iter()
            .map(|&n| {
                let plan = model
                    .clone()
                    .with_input_fact(0, f32::fact([n, FEATURES]).into())
                    .map_err(|e| load_err("input 0 does not accept [N, 3] f32 features", e))?
                    .into_optimized()
                    .map_err(|e| load_err("cannot optimise the graph", e))?
                    .into_runnable()
                    .map_err(|e| load_err("cannot build an execution plan", e))?;
                Ok((n, plan))
            })
            .collect::<Result<Vec<_>, PowerError>>()?;
        let model = Self {
            plans: plans.into(),
            name: format!("onnx:{label}"),
        };
        // Probe once so a graph with the wrong output shape fails here, not on the first request.
        let probe = model
            .predict_watts(&[[0.5, 100.0, 200.0]])
            .map_err(|e| PowerError::Load {
                path: label.to_string(),
                reason: format!("probe inference: {e}"),
            })?;
        if !probe[0].is_finite() {
            return Err(PowerError::Load {
                path: label.to_string(),
                reason: format!("probe inference returned {}", probe[0]),
            });
        }
        Ok(model)
    }

    /// Total node watts predicted for each feature row `[utilisation, idle_watts, max_watts]`.
    pub fn predict_watts(&self, rows: &[[f32; FEATURES]]) -> Result<Vec<f32>, PowerError> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let mut out = Vec::with_capacity(rows.len());
        self.run(&flat, rows.len(), |w| out.extend_from_slice(w))?;
        Ok(out)
    }

    /// Runs `rows` feature rows (row-major in `flat`) and hands the `rows` outputs to `sink`.
    fn run(&self, flat: &[f32], rows: usize, sink: impl FnOnce(&[f32])) -> Result<(), PowerError> {
        let mut out = Vec::with_capacity(rows);
        let mut done = 0;
        while done < rows {
            let left = rows - done;
            let want = chunk_size(left);
            let (size, plan) = self.plans.iter().find(|(n, _)| *n == want).ok_or_else(|| {
                PowerError::Inference(format!("no execution plan for {want} rows"))
            })?;
            let take = left.min(*size);
            let chunk = &flat[done * FEATURES..(done + take) * FEATURES];
            self.run_chunk(plan, *size, chunk, take, &mut out)?;
            done += take;
        }
        sink(&out);
        Ok(())
    }

    /// Runs one chunk of `take` rows through `plan` (planned for `size` rows, the rest
    /// padded with a neutral row) and appends its `take` outputs to `out`.
    fn run_chunk(
        &self,
        plan: &Arc<TypedRunnableModel>,
        size: usize,
        chunk: &[f32],
        take: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), PowerError> {
        let infer = |e: TractError| PowerError::Inference(format!("{e:#}"));
        let input = tract_ndarray::Array2::from_shape_fn((size, FEATURES), |(r, c)| {
            chunk
                .get(r * FEATURES + c)
                .copied()
                .unwrap_or(PADDING_ROW[c])
        });
        let outputs = plan.run(tvec!(Tensor::from(input).into_tvalue()));
        clear_upper_vector_state();
        let outputs = outputs.map_err(infer)?;
        let first = outputs
            .first()
            .ok_or_else(|| PowerError::Inference("the model produced no output".to_string()))?;
        let view = first.to_plain_array_view::<f32>().map_err(infer)?;
        if view.len() != size {
            return Err(PowerError::Inference(format!(
                "expected {size} outputs, the model produced shape {:?}",
                view.shape()
            )));
        }
        out.extend(view.iter().take(take).copied());
        Ok(())
    }
}

/// The row padding fills a chunk with (a mid-range node; its outputs are dropped).
const PADDING_ROW: [f32; FEATURES] = [0.5, 100.0, 200.0];

/// Clears the upper halves of the vector registers after a tract run.
///
/// tract's x86 kernels return without `vzeroupper`, leaving the AVX state dirty on the
/// calling thread; every later call into glibc's `exp`/`pow` (an SSE wrapper around an AVX
/// body) then pays a state transition, which made `f64::exp` 25× slower (7 → 175 ns) on this
/// project's machines and the fitted-curve model with it. `vzeroupper` ends that.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn clear_upper_vector_state() {
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above), so the instruction exists; it only
        // zeroes bits 128 and up of ymm0–15, and no value lives in vector registers across
        // this call (the compiler treats the intrinsic as clobbering them).
        unsafe { std::arch::x86_64::_mm256_zeroupper() }
    }
}

/// Nothing to clear off x86_64.
#[cfg(not(target_arch = "x86_64"))]
fn clear_upper_vector_state() {}

impl PowerModel for OnnxPowerModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn incremental_watts(
        &self,
        queries: &[PowerQuery<'_>],
        out: &mut [f64],
    ) -> Result<(), PowerError> {
        check_lengths(queries, out)?;
        let n = queries.len();
        let mut flat = vec![0f32; 2 * n * FEATURES];
        let (before, after) = flat.split_at_mut(n * FEATURES);
        for (i, q) in queries.iter().enumerate() {
            check_query(i, q)?;
            if q.max_watts <= 0.0 || q.idle_watts < 0.0 {
                return Err(PowerError::Inference(format!(
                    "query {i} (node type `{}`): idle {} W / max {} W are outside the model's domain",
                    q.node_type, q.idle_watts, q.max_watts
                )));
            }
            let u = q.utilisation.clamp(0.0, 1.0);
            let u_after = (u + q.added_utilisation().max(0.0)).min(1.0);
            let row = i * FEATURES;
            before[row..row + FEATURES].copy_from_slice(&[
                u as f32,
                q.idle_watts as f32,
                q.max_watts as f32,
            ]);
            after[row..row + FEATURES].copy_from_slice(&[
                u_after as f32,
                q.idle_watts as f32,
                q.max_watts as f32,
            ]);
        }
        let mut result = Ok(());
        self.run(&flat, 2 * n, |watts| {
            let (w_before, w_after) = watts.split_at(n);
            for (i, slot) in out.iter_mut().enumerate() {
                let delta = f64::from(w_after[i]) - f64::from(w_before[i]);
                if !delta.is_finite() {
                    result = Err(PowerError::Inference(format!(
                        "query {i}: the model predicted {delta} W"
                    )));
                    return;
                }
                *slot = delta.max(0.0);
            }
        })?;
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn missing_file_is_a_load_error_naming_the_path() {
        match OnnxPowerModel::load("/nonexistent/power.onnx") {
            Err(PowerError::Load { path, reason }) => {
                assert_eq!(path, "/nonexistent/power.onnx");
                assert!(reason.contains("cannot read"), "{reason}");
            }
            other => panic!("expected a load error, got {other:?}"),
        }
    }

    #[test]
    fn garbage_bytes_are_a_load_error() {
        match OnnxPowerModel::from_bytes(b"definitely not protobuf", "mem") {
            Err(PowerError::Load { path, .. }) => assert_eq!(path, "mem"),
            other => panic!("expected a load error, got {other:?}"),
        }
    }

    #[test]
    fn chunks_cover_the_rows_with_little_padding() {
        for rows in [1, 63, 64, 65, 200, 904, 1808, 5_000, 10_000, 12_345] {
            let (mut left, mut planned, mut runs) = (rows, 0, 0);
            while left > 0 {
                let size = chunk_size(left);
                assert!(BATCHES.contains(&size), "{size} is not a planned size");
                planned += size;
                left -= left.min(size);
                runs += 1;
            }
            assert!(runs <= 8, "{rows} rows took {runs} runs");
            assert!(
                planned < rows + 64 || planned * 4 <= rows * 5,
                "{rows} → {planned}"
            );
        }
        assert_eq!(chunk_size(5_000), 4096);
        assert_eq!(chunk_size(904), 1024);
    }
}

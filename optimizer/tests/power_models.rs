#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Power models against the shipped artefacts in `optimizer/models/`: the ONNX MLP must
//! reproduce onnxruntime's reference predictions, curves must fit the SPECpower training data,
//! and the fallback model must degrade to curves with a recorded reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use optimizer::power::{CurvePowerModel, DEFAULT_NAMEPLATE_K2, FallbackPowerModel, OnnxPowerModel};
use optimizer::{PowerCurve, PowerError, PowerModel, PowerQuery};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn shipped() -> OnnxPowerModel {
    OnnxPowerModel::load(models_dir().join("power-mlp.onnx")).expect("shipped model loads")
}

/// Rows of a plain CSV file (no quoted fields) as header → value maps.
fn read_csv(name: &str) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(models_dir().join(name)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{name}: {l}");
            header
                .iter()
                .zip(fields)
                .map(|(h, f)| (h.to_string(), f.to_string()))
                .collect()
        })
        .collect()
}

fn num(row: &BTreeMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|e| panic!("{key} = {:?}: {e}", row[key]))
}

fn query(node_type: &str, idle: f64, max: f64, cores: f64, u: f64, added: f64) -> PowerQuery<'_> {
    PowerQuery {
        node_type,
        idle_watts: idle,
        max_watts: max,
        cpu_cores: cores,
        utilisation: u,
        added_cpu_cores: added,
    }
}

#[test]
fn shipped_model_matches_onnxruntime_reference() {
    let model = shipped();
    let rows = read_csv("reference.csv");
    assert!(rows.len() >= 50, "reference.csv has {} rows", rows.len());
    let features: Vec<[f32; 3]> = rows
        .iter()
        .map(|r| {
            [
                num(r, "utilisation") as f32,
                num(r, "idle_watts") as f32,
                num(r, "max_watts") as f32,
            ]
        })
        .collect();
    let got = model.predict_watts(&features).unwrap();
    let mut worst = 0.0f64;
    for (row, (g, f)) in rows.iter().zip(got.iter().zip(&features)) {
        let want = num(row, "predicted_watts");
        let diff = (f64::from(*g) - want).abs();
        worst = worst.max(diff);
        // Within 1e-4 W or 4 float32 ulps of the value, whichever is larger: tract and
        // onnxruntime sum in different orders (largest seen: 1.5e-4 W on 784 W, 2.5 ulps).
        let tolerance = 1e-4_f64.max(want.abs() * 4.0 * f64::from(f32::EPSILON));
        assert!(
            diff <= tolerance,
            "features {f:?}: tract {g} vs onnxruntime {want}"
        );
    }
    eprintln!(
        "{} reference rows, largest |tract - onnxruntime| = {worst:.3e} W",
        rows.len()
    );
}

#[test]
fn onnx_incremental_is_the_batched_difference_of_predictions() {
    let model = shipped();
    let queries = [
        query("a", 54.1, 243.0, 32.0, 0.2, 4.0),
        query("b", 20.0, 93.1, 12.0, 0.9, 6.0),
        query("c", 106.0, 915.0, 224.0, 0.0, 224.0),
        query("d", 58.0, 272.0, 128.0, 0.5, 0.0),
    ];
    let mut out = [0.0; 4];
    model.incremental_watts(&queries, &mut out).unwrap();
    let predict = |u: f64, q: &PowerQuery<'_>| {
        f64::from(
            model
                .predict_watts(&[[u as f32, q.idle_watts as f32, q.max_watts as f32]])
                .unwrap()[0],
        )
    };
    for (q, &w) in queries.iter().zip(&out) {
        let u_after = (q.utilisation + q.added_utilisation()).min(1.0);
        let want = (predict(u_after, q) - predict(q.utilisation, q)).max(0.0);
        assert!((w - want).abs() < 1e-3, "{}: {w} vs {want}", q.node_type);
    }
    assert!(out[0] > 0.0 && out[1] > 0.0);
    assert_eq!(out[3], 0.0, "no added CPU, no added watts");
    // A whole idle node filled up adds roughly its dynamic range.
    assert!(
        (out[2] - (915.0 - 106.0)).abs() < 0.1 * (915.0 - 106.0),
        "{}",
        out[2]
    );
    // Same answers one query at a time as in one batch.
    for (i, q) in queries.iter().enumerate() {
        let mut one = [0.0];
        model
            .incremental_watts(std::slice::from_ref(q), &mut one)
            .unwrap();
        assert!((one[0] - out[i]).abs() < 1e-6);
    }
    model.incremental_watts(&[], &mut []).unwrap();
}

#[test]
fn onnx_predictions_rise_with_utilisation_on_training_nameplates() {
    let model = shipped();
    for (idle, max) in [(13.3, 60.0), (54.1, 243.0), (99.5, 246.0), (364.0, 1700.0)] {
        let rows: Vec<[f32; 3]> = (0..=20).map(|i| [i as f32 / 20.0, idle, max]).collect();
        let w = model.predict_watts(&rows).unwrap();
        for pair in w.windows(2) {
            assert!(pair[1] >= pair[0] - 0.5, "idle {idle} max {max}: {w:?}");
        }
        assert!(
            (f64::from(w[0]) - f64::from(idle)).abs() < 0.1 * f64::from(max),
            "P(0) = {}",
            w[0]
        );
        assert!(
            (f64::from(w[20]) - f64::from(max)).abs() < 0.1 * f64::from(max),
            "P(1) = {}",
            w[20]
        );
    }
}

/// The SPECpower curves of `training-data.csv`, per result id.
fn specpower_curves() -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut curves: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for row in read_csv("training-data.csv") {
        curves
            .entry(row["node"].clone())
            .or_default()
            .push((num(&row, "utilisation"), num(&row, "watts")));
    }
    curves
}

#[test]
fn curves_fit_every_specpower_server_closely() {
    let curves = specpower_curves();
    assert!(curves.len() >= 30, "{} servers", curves.len());
    let mut k2s = Vec::new();
    for (node, samples) in &curves {
        let curve = PowerCurve::fit(node, samples).unwrap();
        let max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
        let rmse = (samples
            .iter()
            .map(|&(u, w)| (curve.watts(u) - w).powi(2))
            .sum::<f64>()
            / samples.len() as f64)
            .sqrt();
        assert!(
            rmse < 0.05 * max,
            "{node}: RMSE {rmse:.1} W of {max} W with {curve:?}"
        );
        k2s.push(curve.k2);
    }
    k2s.sort_by(f64::total_cmp);
    let median = k2s[k2s.len() / 2];
    assert!(
        (median - DEFAULT_NAMEPLATE_K2).abs() < 0.05,
        "median fitted k2 {median} vs the default {DEFAULT_NAMEPLATE_K2}"
    );
}

#[test]
fn curve_model_uses_fitted_types_and_nameplates_for_the_rest() {
    let mut model = CurvePowerModel::new();
    let curves = specpower_curves();
    let (node, samples) = curves.iter().next().unwrap();
    let fitted = model.fit(node, samples).unwrap();
    assert_eq!(model.curve(node), Some(&fitted));
    let queries = [
        query(node, 1.0, 2.0, 10.0, 0.1, 5.0),
        query("unseen", 50.0, 250.0, 10.0, 0.1, 5.0),
    ];
    let mut out = [0.0; 2];
    model.incremental_watts(&queries, &mut out).unwrap();
    assert!(
        (out[0] - (fitted.watts(0.6) - fitted.watts(0.1))).abs() < 1e-9,
        "fitted curve ignores nameplates"
    );
    let nameplate = PowerCurve::from_idle_max(50.0, 250.0, DEFAULT_NAMEPLATE_K2);
    assert!((out[1] - (nameplate.watts(0.6) - nameplate.watts(0.1))).abs() < 1e-9);
    assert!(matches!(
        model.fit("broken", &[(0.1, 1.0)]),
        Err(PowerError::Fit { .. })
    ));
}

#[test]
fn fallback_without_a_model_file_uses_curves_and_says_why() {
    let missing = models_dir().join("does-not-exist.onnx");
    let model = FallbackPowerModel::from_path(Some(&missing), CurvePowerModel::new());
    assert!(!model.has_onnx());
    assert!(model.name().starts_with("curve"), "{}", model.name());
    let error = model.last_error().expect("load error recorded");
    assert!(
        error.contains("does-not-exist.onnx") && error.contains("cannot read"),
        "{error}"
    );

    let queries = [query("x", 100.0, 300.0, 8.0, 0.25, 2.0)];
    let (mut got, mut want) = ([0.0], [0.0]);
    model.incremental_watts(&queries, &mut got).unwrap();
    CurvePowerModel::new()
        .incremental_watts(&queries, &mut want)
        .unwrap();
    assert_eq!(got, want);
    assert_eq!(model.fallback_count(), 1);

    let unconfigured = FallbackPowerModel::from_path(None, CurvePowerModel::new());
    assert_eq!(unconfigured.last_error(), None);
    assert!(unconfigured.name().contains("no onnx model configured"));
}

#[test]
fn fallback_prefers_onnx_and_falls_back_when_inference_fails() {
    let model = FallbackPowerModel::from_path(
        Some(&models_dir().join("power-mlp.onnx")),
        CurvePowerModel::new(),
    );
    assert!(model.has_onnx());
    assert!(
        model.name().starts_with("onnx:") && model.name().contains("power-mlp.onnx"),
        "{}",
        model.name()
    );

    let good = [query("x", 100.0, 300.0, 8.0, 0.25, 2.0)];
    let (mut got, mut onnx) = ([0.0], [0.0]);
    model.incremental_watts(&good, &mut got).unwrap();
    shipped().incremental_watts(&good, &mut onnx).unwrap();
    assert_eq!(got, onnx);
    assert_eq!(model.fallback_count(), 0);

    // A target without a power profile is outside the ONNX model's domain: the curve answers.
    let no_profile = [query("x", 0.0, 0.0, 8.0, 0.25, 2.0)];
    model.incremental_watts(&no_profile, &mut got).unwrap();
    assert_eq!(got, [0.0]);
    assert_eq!(model.fallback_count(), 1);
    assert!(
        model
            .last_error()
            .unwrap()
            .contains("outside the model's domain")
    );
}

#[test]
fn corrupt_model_bytes_are_a_load_error() {
    let bytes = std::fs::read(models_dir().join("power-mlp.onnx")).unwrap();
    let truncated = &bytes[..bytes.len() / 2];
    match OnnxPowerModel::from_bytes(truncated, "truncated.onnx") {
        Err(PowerError::Load { path, reason }) => {
            assert_eq!(path, "truncated.onnx");
            assert!(!reason.is_empty());
        }
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[test]
fn chunked_batches_give_the_same_answers_as_single_rows() {
    let model = shipped();
    // 4 096 + 512 + 64 + 37 rows: every planned batch size, and a padded tail.
    let rows: Vec<[f32; 3]> = (0..4709)
        .map(|i| {
            let u = (i % 101) as f32 / 100.0;
            [
                u,
                40.0 + (i % 13) as f32 * 10.0,
                300.0 + (i % 7) as f32 * 50.0,
            ]
        })
        .collect();
    let batched = model.predict_watts(&rows).unwrap();
    assert_eq!(batched.len(), rows.len());
    for (i, row) in rows
        .iter()
        .enumerate()
        .step_by(97)
        .chain([(4708, &rows[4708])])
    {
        let single = model.predict_watts(std::slice::from_ref(row)).unwrap();
        assert!(
            (batched[i] - single[0]).abs() <= 1e-4,
            "row {i}: batched {} vs single {}",
            batched[i],
            single[0]
        );
    }
    assert!(model.predict_watts(&[]).unwrap().is_empty());
}

#!/usr/bin/env python3
"""Train the shipped power model: a small MLP, exported to ONNX for `OnnxPowerModel`.

Input CSV columns (as written by `ecoplace telemetry export-training-data`):
    timestamp,cluster,node,node_type,cpu_cores,idle_watts,max_watts,utilisation,watts

The exported ONNX graph takes one float32 tensor `features` of shape [N, 3]:
    [utilisation (0..1), idle_watts (W), max_watts (W)]
and returns `watts` [N, 1], the predicted total node power in watts.

Inside the graph the MLP sees the dimensionless pair [clip(u, 0, 1), idle/max] and predicts
the fraction of the node's dynamic range in use, f; the graph returns idle + (max - idle) * f.
So the network learns the *shape* of the power curve, and the node's own idle and maximum
power set its scale.

Usage:
    python3 train.py [--data training-data.csv] [--out-dir .]

Writes into --out-dir: power-mlp.onnx, reference.csv (inputs + onnxruntime predictions on a
fixed set of rows) and metrics.json (held-back error). Deterministic for a given data file and
package versions (see requirements.txt).
"""

import argparse
import csv
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.model_selection import GroupKFold
from sklearn.neural_network import MLPRegressor

SEED = 20240611
HIDDEN = (16, 16)
ACTIVATION = "relu"
ALPHA = 1e-2
CV_FOLDS = 6
HELD_BACK_FRACTION = 0.2
OPSET = 13
# Curvature of the Rust nameplate curve (optimizer::power::DEFAULT_NAMEPLATE_K2).
NAMEPLATE_K2 = 0.84
COLUMNS = [
    "timestamp",
    "cluster",
    "node",
    "node_type",
    "cpu_cores",
    "idle_watts",
    "max_watts",
    "utilisation",
    "watts",
]


def new_mlp():
    """The network: small, L2-regularised, trained with L-BFGS (the data set is tiny)."""
    return MLPRegressor(
        hidden_layer_sizes=HIDDEN,
        activation=ACTIVATION,
        solver="lbfgs",
        alpha=ALPHA,
        max_iter=5000,
        random_state=SEED,
    )


def load(path):
    """Rows of the training CSV as arrays; skips rows that cannot describe a power curve."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            sys.exit(f"{path}: missing columns {missing}")
        nodes, u, idle, mx, watts = [], [], [], [], []
        skipped = 0
        for row in reader:
            try:
                vals = [float(row[c]) for c in ("utilisation", "idle_watts", "max_watts", "watts")]
            except ValueError:
                skipped += 1
                continue
            if not all(np.isfinite(vals)) or vals[2] <= vals[1] or vals[1] < 0:
                skipped += 1
                continue
            nodes.append(f"{row['cluster']}/{row['node']}")
            u.append(vals[0])
            idle.append(vals[1])
            mx.append(vals[2])
            watts.append(vals[3])
    if skipped:
        print(f"skipped {skipped} rows without a usable idle < max or numeric values")
    return (
        np.array(nodes),
        np.array(u, dtype=np.float64),
        np.array(idle, dtype=np.float64),
        np.array(mx, dtype=np.float64),
        np.array(watts, dtype=np.float64),
    )


def inner_features(u, idle, mx):
    """What the MLP sees: clipped utilisation and the idle/max ratio."""
    return np.column_stack([np.clip(u, 0.0, 1.0), idle / mx]).astype(np.float32)


def errors(pred, truth):
    """MAE and RMSE in watts, MAPE in percent."""
    err = pred - truth
    return {
        "mae_watts": float(np.mean(np.abs(err))),
        "rmse_watts": float(np.sqrt(np.mean(err**2))),
        "mape_percent": float(100.0 * np.mean(np.abs(err) / np.abs(truth))),
        "rows": int(len(truth)),
    }


def nameplate_curve(u, idle, mx, k2=NAMEPLATE_K2):
    """The Rust fallback for unknown node types: PEAKS curve with P(0) = idle, P(1) = max."""
    k1 = (mx - idle) / np.expm1(k2)
    return idle - k1 + k1 * np.exp(k2 * np.clip(u, 0.0, 1.0))


def step_errors(nodes, u, watts, pred, mask):
    """Error of predicted power *increments* between adjacent samples (sorted by utilisation)
    of each node in `mask`: what the placement objective consumes."""
    got, want = [], []
    for node in np.unique(nodes[mask]):
        idx = np.where(nodes == node)[0]
        idx = idx[np.argsort(u[idx])]
        got.extend(np.diff(pred[idx]))
        want.extend(np.diff(watts[idx]))
    got, want = np.array(got), np.array(want)
    err = got - want
    return {
        "mae_watts": float(np.mean(np.abs(err))),
        "rmse_watts": float(np.sqrt(np.mean(err**2))),
        "mean_measured_increment_watts": float(np.mean(want)),
        "steps": int(len(want)),
    }


def build_graph(mlp):
    """The exported model: features [N,3] -> watts [N,1], with the MLP in the middle."""
    inner = convert_sklearn(
        mlp,
        initial_types=[("z", FloatTensorType([None, 2]))],
        target_opset=OPSET,
    )
    inner_out = inner.graph.output[0].name

    def const(name, values, dtype=np.int64):
        return numpy_helper.from_array(np.array(values, dtype=dtype), name)

    inits = [
        const("c0", [0]),
        const("c1", [1]),
        const("c2", [2]),
        const("c3", [3]),
        const("ax1", [1]),
        const("zero", 0.0, np.float32),
        const("one", 1.0, np.float32),
    ]
    pre = [
        helper.make_node("Slice", ["features", "c0", "c1", "ax1"], ["u_raw"], name="slice_u"),
        helper.make_node("Slice", ["features", "c1", "c2", "ax1"], ["idle"], name="slice_idle"),
        helper.make_node("Slice", ["features", "c2", "c3", "ax1"], ["max"], name="slice_max"),
        helper.make_node("Clip", ["u_raw", "zero", "one"], ["u"], name="clip_u"),
        helper.make_node("Div", ["idle", "max"], ["ratio"], name="idle_ratio"),
        helper.make_node("Concat", ["u", "ratio"], ["z"], axis=1, name="concat_z"),
    ]
    post = [
        helper.make_node("Sub", ["max", "idle"], ["range"], name="dynamic_range"),
        helper.make_node("Mul", [inner_out, "range"], ["dynamic"], name="scale"),
        helper.make_node("Add", ["idle", "dynamic"], ["watts"], name="total"),
    ]
    graph = helper.make_graph(
        pre + list(inner.graph.node) + post,
        "ecoplace_power_mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("watts", TensorProto.FLOAT, ["N", 1])],
        initializer=inits + list(inner.graph.initializer),
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="ecoplace-optimizer-train.py",
    )
    model.ir_version = 8
    model.doc_string = (
        "features[N,3] = [utilisation 0..1, idle_watts, max_watts] float32 -> "
        "watts[N,1] = predicted total node power, W"
    )
    onnx.checker.check_model(model)
    return model


def reference_rows(held_u, held_idle, held_max):
    """Fixed rows for the Rust equality test: a grid over nameplates plus held-back rows."""
    rows = []
    for idle, mx in [(13.3, 60.0), (20.0, 93.1), (54.1, 243.0), (106.0, 915.0), (364.0, 1700.0)]:
        for u in [0.0, 0.05, 0.1, 0.25, 0.333, 0.5, 0.75, 0.9, 1.0, 1.2, -0.1]:
            rows.append((u, idle, mx))
    for i in range(0, len(held_u), max(1, len(held_u) // 20)):
        rows.append((held_u[i], held_idle[i], held_max[i]))
    return np.array(rows, dtype=np.float32)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(here, "training-data.csv"))
    ap.add_argument("--out-dir", default=here)
    args = ap.parse_args()

    nodes, u, idle, mx, watts = load(args.data)
    servers = np.unique(nodes)
    if len(servers) < 5:
        sys.exit(f"need at least 5 nodes with usable curves, found {len(servers)}")
    rng = np.random.default_rng(SEED)
    n_held = max(1, int(round(HELD_BACK_FRACTION * len(servers))))
    held_servers = set(rng.choice(servers, size=n_held, replace=False).tolist())
    held = np.array([n in held_servers for n in nodes])
    train = ~held
    print(f"{len(servers)} nodes, {len(nodes)} rows; held back {n_held} nodes ({held.sum()} rows)")

    target = (watts - idle) / (mx - idle)
    x_inner = inner_features(u, idle, mx)

    # Grouped cross-validation on the training nodes only (the held-back nodes stay unseen).
    cv_pred = np.full(len(u), np.nan)
    train_idx = np.where(train)[0]
    for fit_i, val_i in GroupKFold(n_splits=CV_FOLDS).split(train_idx, groups=nodes[train_idx]):
        fit_rows, val_rows = train_idx[fit_i], train_idx[val_i]
        m = new_mlp().fit(x_inner[fit_rows], target[fit_rows])
        cv_pred[val_rows] = idle[val_rows] + (mx[val_rows] - idle[val_rows]) * m.predict(
            x_inner[val_rows]
        )

    mlp = new_mlp().fit(x_inner[train], target[train])

    model = build_graph(mlp)
    os.makedirs(args.out_dir, exist_ok=True)
    onnx_path = os.path.join(args.out_dir, "power-mlp.onnx")
    onnx.save(model, onnx_path)

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])

    def predict(x):
        return sess.run(["watts"], {"features": np.asarray(x, dtype=np.float32)})[0][:, 0]

    x_all = np.column_stack([u, idle, mx]).astype(np.float32)
    pred = predict(x_all).astype(np.float64)
    linear = idle + (mx - idle) * np.clip(u, 0.0, 1.0)
    nameplate = nameplate_curve(u, idle, mx)
    interior = (u > 0.0) & (u < 1.0)
    metrics = {
        "data": os.path.basename(args.data),
        "features": ["utilisation", "idle_watts", "max_watts"],
        "hidden_layers": list(HIDDEN),
        "activation": ACTIVATION,
        "l2_alpha": ALPHA,
        "seed": SEED,
        "nodes_total": int(len(servers)),
        "nodes_held_back": sorted(held_servers),
        "train": errors(pred[train], watts[train]),
        f"train_nodes_{CV_FOLDS}fold_grouped_cv_interior": errors(
            cv_pred[train & interior], watts[train & interior]
        ),
        "train_nodes_nameplate_curve_baseline_interior": errors(
            nameplate[train & interior], watts[train & interior]
        ),
        "held_back": errors(pred[held], watts[held]),
        "held_back_interior": errors(pred[held & interior], watts[held & interior]),
        "held_back_linear_baseline_interior": errors(
            linear[held & interior], watts[held & interior]
        ),
        "held_back_nameplate_curve_baseline_interior": errors(
            nameplate[held & interior], watts[held & interior]
        ),
        "held_back_incremental_10pct": step_errors(nodes, u, watts, pred, held),
        "held_back_incremental_10pct_linear_baseline": step_errors(nodes, u, watts, linear, held),
        "held_back_incremental_10pct_nameplate_curve_baseline": step_errors(
            nodes, u, watts, nameplate, held
        ),
    }
    with open(os.path.join(args.out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")

    ref = reference_rows(u[held], idle[held], mx[held])
    ref_pred = predict(ref)
    with open(os.path.join(args.out_dir, "reference.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["utilisation", "idle_watts", "max_watts", "predicted_watts"])
        for (ru, ri, rm), p in zip(ref, ref_pred):
            w.writerow([f"{ru:.9g}", f"{ri:.9g}", f"{rm:.9g}", f"{p:.9g}"])

    for name, m in metrics.items():
        if isinstance(m, dict) and "mape_percent" in m:
            print(
                f"{name:44s} MAE {m['mae_watts']:7.2f} W  RMSE {m['rmse_watts']:7.2f} W  "
                f"MAPE {m['mape_percent']:6.2f} %  ({m['rows']} rows)"
            )
        elif isinstance(m, dict):
            print(
                f"{name:44s} MAE {m['mae_watts']:7.2f} W  RMSE {m['rmse_watts']:7.2f} W  "
                f"(mean step {m['mean_measured_increment_watts']:.1f} W, {m['steps']} steps)"
            )
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes), reference.csv, metrics.json")


if __name__ == "__main__":
    main()

//! Seeded placement instances for the optimizer benches: fleets of nodes or clusters over
//! five regions with real-ish carbon intensities, latency by region distance, power caps,
//! sleeping targets, and workloads with SLOs, spread and (anti-)affinity rules.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use optimizer::{
    CarbonOutlook, Plan, PowerModel, Resources, Target, TargetKind, Workload, validate,
};

const GIB: f64 = (1u64 << 30) as f64;
/// User regions and their grid intensity, gCO2e/kWh.
const REGIONS: [(&str, f64); 5] = [
    ("FR", 55.0),
    ("SE", 30.0),
    ("DE", 380.0),
    ("PL", 690.0),
    ("IE", 290.0),
];
/// Request sizes (cores) a workload is drawn from.
const CPU_SIZES: [f64; 6] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0];

/// Builds one benchmark instance: workloads and the targets they go to.
pub type MakeInstance = fn() -> (Vec<Workload>, Vec<Target>);

/// Deterministic 64-bit LCG.
pub struct Lcg(pub u64);

impl Lcg {
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n - 1)
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// The instant every instance is planned at.
pub fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Latency from user region `from` to a target in region `to`, ms.
pub fn latency(rng: &mut Lcg, from: usize, to: usize) -> f64 {
    match (from + REGIONS.len() - to) % REGIONS.len() {
        0 => rng.range(2.0, 8.0),
        1 | 4 => rng.range(12.0, 30.0),
        _ => rng.range(35.0, 80.0),
    }
}

/// `n` targets spread over the regions: ~80 % awake, some with power caps and a carbon
/// forecast step; `cores` is the range of sizes.
pub fn fleet(rng: &mut Lcg, n: usize, kind: TargetKind, cores: (f64, f64)) -> Vec<Target> {
    (0..n)
        .map(|i| {
            let region = i % REGIONS.len();
            let cpu = rng.range(cores.0, cores.1).round();
            let nodes = (cpu / 32.0).max(1.0);
            let on = rng.unit() < 0.8;
            let used = if on { rng.range(0.2, 0.5) } else { 0.0 };
            let idle = nodes * rng.range(80.0, 140.0);
            let max = idle + nodes * rng.range(200.0, 320.0);
            let g = REGIONS[region].1 * rng.range(0.8, 1.2);
            let now_w = if on { idle + (max - idle) * used } else { 0.0 };
            let cap = (rng.unit() < 0.2).then(|| now_w.max(idle) + (max - idle) * 0.5);
            Target {
                name: format!("{}-{i:04}", kind_name(kind)),
                kind,
                capacity: Resources::new(cpu, cpu * 4.0 * GIB, 0.0),
                allocated: Resources::new(cpu * used, cpu * used * 3.0 * GIB, 0.0),
                idle_watts: idle,
                max_watts: max,
                utilisation: used,
                powered_on: on,
                node_type: ["std-x86", "highmem-x86", "arm64"][i % 3].into(),
                carbon: CarbonOutlook {
                    now_g_per_kwh: g,
                    forecast: vec![(at() + chrono::Duration::hours(2), g * rng.range(0.6, 1.1))],
                },
                labels: BTreeMap::new(),
                power_cap_watts: cap,
                latency_ms: (0..REGIONS.len())
                    .map(|r| (REGIONS[r].0.to_string(), latency(rng, r, region)))
                    .collect(),
            }
        })
        .collect()
}

/// `node` or `cluster`.
pub fn kind_name(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Node => "node",
        TargetKind::Cluster => "cluster",
    }
}

/// One workload shape: requests, duration, SLO.
pub fn shape(rng: &mut Lcg, name: String) -> Workload {
    let cpu = CPU_SIZES[rng.below(CPU_SIZES.len())];
    let region = rng.below(REGIONS.len());
    let mut w = Workload {
        name,
        requests: Resources::new(cpu, cpu * [2.0, 3.0, 4.0][rng.below(3)] * GIB, 0.0),
        expected_duration_s: 3600.0 * [1.0, 4.0, 12.0, 24.0][rng.below(4)],
        ..Workload::default()
    };
    if rng.unit() < 0.7 {
        let slo = [30.0, 45.0, 90.0][rng.below(3)];
        w.latency_slo_ms.insert(REGIONS[region].0.to_string(), slo);
    }
    w
}

/// Total free CPU of the fleet.
pub fn free_cpu(ts: &[Target]) -> f64 {
    ts.iter().map(|t| t.free().cpu).sum()
}

/// 1 000 workloads with mixed constraints whose requests fill `fill` of the free CPU.
pub fn thousand_workloads(rng: &mut Lcg, ts: &[Target], fill: f64) -> Vec<Workload> {
    let mut ws: Vec<Workload> = (0..1000)
        .map(|i| {
            let mut w = shape(rng, format!("app-{i:04}"));
            w.replicas = 1 + rng.below(6) as u32;
            let roll = rng.unit();
            if roll < 0.08 {
                w.max_per_target = Some(2);
            } else if roll < 0.12 {
                w.number_of_targets = Some(2);
                w.replicas = w.replicas.max(2);
            } else if roll < 0.16 {
                w.anti_affinity_group = Some(format!("ha-{}", i % 10));
                w.replicas = 1;
            } else if roll < 0.20 {
                // Partners must share a target: no latency SLO that could split them.
                w.affinity_group = Some(format!("stack-{}", i % 20));
                w.latency_slo_ms.clear();
                w.replicas = 1;
            }
            if rng.unit() < 0.3 {
                let t = &ts[rng.below(ts.len())];
                w.current.insert(t.name.clone(), w.replicas);
            }
            w
        })
        .collect();
    // Scale replicas so the requests fill `fill` of the free CPU.
    let total = |ws: &[Workload]| -> f64 {
        ws.iter()
            .map(|w| w.requests.cpu * f64::from(w.replicas))
            .sum()
    };
    let want = fill * free_cpu(ts);
    let mut i = 0;
    while total(&ws) < want {
        let w = &mut ws[i % 1000];
        if w.anti_affinity_group.is_none() && w.affinity_group.is_none() {
            w.replicas += 1;
            if let Some((_, n)) = w.current.iter_mut().next() {
                *n = (*n).min(w.replicas);
            }
        }
        i += 1;
    }
    while total(&ws) > want {
        let w = &mut ws[i % 1000];
        if w.replicas > 1 && w.number_of_targets.is_none_or(|n| w.replicas > n) {
            w.replicas -= 1;
            if let Some((_, n)) = w.current.iter_mut().next() {
                *n = (*n).min(w.replicas);
            }
        }
        i += 1;
    }
    ws
}

/// 10 000 single-replica pods drawn from 50 shapes, some running now.
pub fn ten_thousand_pods(rng: &mut Lcg, ts: &[Target]) -> Vec<Workload> {
    let shapes: Vec<Workload> = (0..50).map(|s| shape(rng, format!("shape-{s}"))).collect();
    (0..10_000)
        .map(|i| {
            let mut w = shapes[rng.below(shapes.len())].clone();
            w.name = format!("pod-{i:05}");
            w.replicas = 1;
            if rng.unit() < 0.2 {
                w.current.insert(ts[rng.below(ts.len())].name.clone(), 1);
            }
            w
        })
        .collect()
}

/// CPU allocated after the plan over the fleet's capacity.
pub fn utilisation(p: &Plan, ws: &[Workload], ts: &[Target]) -> f64 {
    let placed: f64 = ws
        .iter()
        .map(|w| w.requests.cpu * f64::from(p.assignments[&w.name].values().sum::<u32>()))
        .sum();
    let allocated: f64 = ts.iter().map(|t| t.allocated.cpu).sum();
    let capacity: f64 = ts.iter().map(|t| t.capacity.cpu).sum();
    (allocated + placed) / capacity
}

/// The MILP bench instances: `1000w-50c` (1 000 workloads with mixed rules on 50 clusters,
/// capacity tight) and `10000pods-100c` (10 000 single-replica pods of 50 shapes on 100
/// clusters).
pub fn milp_cases() -> [(&'static str, MakeInstance); 2] {
    [
        ("1000w-50c", || {
            let mut rng = Lcg(0x00c0_ffee);
            let ts = fleet(&mut rng, 50, TargetKind::Cluster, (200.0, 800.0));
            // 87 % of the free CPU requested: the fleet ends ~91 % allocated.
            (thousand_workloads(&mut rng, &ts, 0.87), ts)
        }),
        ("10000pods-100c", || {
            let mut rng = Lcg(0x0bad_5eed);
            let ts = fleet(&mut rng, 100, TargetKind::Cluster, (150.0, 600.0));
            (ten_thousand_pods(&mut rng, &ts), ts)
        }),
    ]
}

/// Prints a plan's status, gap, solve time, model size, utilisation and validator verdict;
/// returns the number of constraint violations.
pub fn report(
    label: &str,
    p: &Plan,
    ws: &[Workload],
    ts: &[Target],
    power: &dyn PowerModel,
) -> usize {
    let violations = validate(p, ws, ts, power);
    let s = &p.stats;
    eprintln!(
        "{label}: status {:?}, gap {}, solve {:.3} s; {} workloads → {} classes, {} pairs, {} vars ({} integer), {} rows; CPU utilisation after placement {:.1} %; {} violations",
        p.status,
        p.gap
            .map_or("n/a".to_string(), |g| format!("{:.3} %", 100.0 * g)),
        p.solve_seconds,
        s.workloads,
        s.classes,
        s.pairs,
        s.variables,
        s.integer_variables,
        s.constraints,
        100.0 * utilisation(p, ws, ts),
        violations.len()
    );
    for line in p.explain() {
        eprintln!("  {line}");
    }
    if let Some(v) = violations.first() {
        eprintln!("  first violation: {v}");
    }
    violations.len()
}

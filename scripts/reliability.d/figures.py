#!/usr/bin/env python3
"""Figures and checks from wrk output, the extender's /metrics and process samples.

Shared by scripts/load-extender, scripts/load-soak and scripts/reliability.

  figures.py load-header
  figures.py load-row NAME BODY_BYTES CONNS WRK_OUT METRICS_BEFORE METRICS_AFTER PEAK_RSS_KIB DEADLINE_MS
      one table row of a load case; exit 1 when a check fails (a non-200 answer, a wrk
      socket error, a client or server p99 over the deadline)
  figures.py soak SAMPLES_CSV WARMUP_S RSS_LIMIT_PCT METRICS_BEFORE METRICS_AFTER DEADLINE_MS WRK_OUT...
      RSS and fd growth after the warm-up, the server's p99 and non-200 over the soak;
      exit 1 when a check fails
  figures.py phases WORK DEADLINE_MS CONNS
      the fault phases of scripts/reliability (snapshots WORK/{m,r,rc,t}.NAME; CONNS: calls
      in flight at a snapshot, by which the request counter and the histogram may differ)
"""
import re
import sys

BUCKET = re.compile(
    r'ecoplace_extender_request_duration_seconds_bucket\{(?=[^}]*verb="([^"]+)")[^}]*le="([^"]+)"[^}]*\} (\d+)'
)
COUNT = re.compile(r'ecoplace_extender_request_duration_seconds_count\{verb="([^"]+)"\} (\d+)')
CODES = re.compile(
    r'ecoplace_extender_requests_total\{(?=[^}]*verb="([^"]+)")(?=[^}]*code="(\d+)")[^}]*\} (\d+)'
)
FAIL_OPEN = re.compile(r'ecoplace_fail_open_total\{reason="([^"]+)"\} (\d+)')


def metrics(path):
    """The extender's counters and duration histogram from a /metrics scrape."""
    m = {"codes": {}, "buckets": {}, "count": {}, "fail_open": {}}
    for line in open(path):
        if g := BUCKET.match(line):
            m["buckets"].setdefault(g[1], {})[g[2]] = int(g[3])
        elif g := COUNT.match(line):
            m["count"][g[1]] = int(g[2])
        elif g := CODES.match(line):
            m["codes"][(g[1], g[2])] = int(g[3])
        elif g := FAIL_OPEN.match(line):
            m["fail_open"][g[1]] = int(g[2])
    return m


def delta(a, b):
    """What happened between two scrapes (b later than a)."""

    def sub(x, y):
        return {k: y.get(k, 0) - x.get(k, 0) for k in set(x) | set(y)}

    verbs = set(a["buckets"]) | set(b["buckets"])
    return {
        "codes": {k: v for k, v in sub(a["codes"], b["codes"]).items() if v},
        "count": sub(a["count"], b["count"]),
        "buckets": {v: sub(a["buckets"].get(v, {}), b["buckets"].get(v, {})) for v in verbs},
        "fail_open": {k: v for k, v in sub(a["fail_open"], b["fail_open"]).items() if v},
    }


def p99(d, verb):
    """Upper bound (s) of the histogram bucket holding the 99th percentile, or None."""
    n = d["count"].get(verb, 0)
    for le, c in sorted(d["buckets"].get(verb, {}).items(), key=lambda kv: float(kv[0])):
        if n and c >= 0.99 * n:
            return float(le)
    return None


def non200(d):
    return sum(v for (_, code), v in d["codes"].items() if code != "200")


UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def ms(text):
    g = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(g[1]) * UNIT[g[2]] if g else None


def wrk(path):
    """Requests, seconds, req/s, errors and latency (ms) from wrk --latency output."""
    t = open(path).read()
    w = {"requests": 0, "secs": 0.0, "rps": 0.0, "non2xx": 0, "socket": 0, "text": t}
    if g := re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", t):
        w["requests"], w["secs"], w["read"] = int(g[1]), ms(g[2]) / 1e3, g[3]
    if g := re.search(r"Requests/sec:\s+([\d.]+)", t):
        w["rps"] = float(g[1])
    if g := re.search(r"Non-2xx or 3xx responses: (\d+)", t):
        w["non2xx"] = int(g[1])
    if g := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t):
        w["socket"] = sum(int(x) for x in g.groups())
    for p in ("50", "90", "99"):
        if g := re.search(rf"^\s+{p}%\s+(\S+)", t, re.M):
            w["p" + p] = ms(g[1])
    if g := re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", t, re.M):
        w["max"] = ms(g[1])
    return w


def fmt_ms(v):
    if v is None:
        return "?"
    return f"{v * 1000:.0f}µs" if v < 1 else f"{v:.3g}ms" if v < 100 else f"{v:.0f}ms"


def fmt_bucket(s):
    return "?" if s is None else f"≤{s * 1000:g}ms"


class Checks:
    def __init__(self):
        self.failed = []

    def __call__(self, ok, what):
        if not ok:
            self.failed.append(what)

    def report(self, indent="    "):
        for f in self.failed:
            print(f"{indent}FAIL: {f}")
        return 1 if self.failed else 0


def load_header():
    print(
        f"{'case':34} {'body':>9} {'conns':>5} {'secs':>5} {'requests':>9} {'req/s':>8} "
        f"{'non-2xx':>7} {'sock-err':>8} {'p50':>7} {'p99':>7} {'max':>7} "
        f"{'server p99 (by verb)':24} {'fail-open':12} {'peak RSS':>9}"
    )


def load_row(name, body, conns, wrk_out, before, after, peak_kib, deadline_ms):
    w, d = wrk(wrk_out), delta(metrics(before), metrics(after))
    deadline = float(deadline_ms) / 1000
    verbs = sorted(d["count"], key=lambda v: (v != "filter", v))
    verbs = [v for v in verbs if d["count"][v]]
    sp99 = {v: p99(d, v) for v in verbs}
    fo = ", ".join(f"{k} {v}" for k, v in sorted(d["fail_open"].items())) or "0"
    kb = int(body)
    size = f"{kb / 1e6:.1f}MB" if kb >= 1e6 else f"{kb / 1e3:.0f}kB"
    server = " ".join(f"{v[:4]} {fmt_bucket(sp99[v])}" for v in verbs) or "-"
    print(
        f"{name:34} {size:>9} {conns:>5} {w['secs']:5.0f} {w['requests']:9d} {w['rps']:8.1f} "
        f"{max(w['non2xx'], non200(d)):7d} {w['socket']:8d} {fmt_ms(w.get('p50')):>7} "
        f"{fmt_ms(w.get('p99')):>7} {fmt_ms(w.get('max')):>7} {server:24} {fo:12} "
        f"{int(peak_kib) / 1024:7.1f}MiB"
    )
    check = Checks()
    served = sum(d["count"].values())
    check(w["requests"] > 0 and served > 0, f"{name}: no requests answered")
    check(w["non2xx"] == 0 and non200(d) == 0, f"{name}: non-200 answers {d['codes']}")
    check(w["socket"] == 0, f"{name}: wrk socket errors")
    check(w.get("p99") is not None and w["p99"] <= float(deadline_ms),
          f"{name}: client p99 {fmt_ms(w.get('p99'))} over the {deadline_ms} ms deadline")
    for v, s in sp99.items():
        check(s is not None and s <= deadline, f"{name}: server {v} p99 bucket {fmt_bucket(s)} over the deadline")
    return check.report()


def soak(csv, warmup, limit_pct, before, after, deadline_ms, wrk_outs):
    rows = [tuple(float(x) for x in line.split(",")) for line in open(csv).read().split("\n")[1:] if line]
    end = rows[-1][0]
    post = [r for r in rows if r[0] >= warmup]
    win = min(60.0, (end - warmup) / 2)
    first = [r for r in post if r[0] < warmup + win]
    last = [r for r in post if r[0] >= end - win]
    mean = lambda rs, i: sum(r[i] for r in rs) / len(rs)
    check = Checks()
    check(len(first) >= 2 and len(last) >= 2,
          f"too few samples after the {warmup:g} s warm-up ({len(post)} over {end - warmup:.0f} s)")
    if check.failed:
        return check.report()
    r0, r1 = mean(first, 1), mean(last, 1)
    growth = (r1 - r0) / r0 * 100
    # Least-squares slope of RSS over the post-warm-up samples, KiB per 10 min.
    n, tx, ty = len(post), mean(post, 0), mean(post, 1)
    sxx = sum((r[0] - tx) ** 2 for r in post)
    slope = sum((r[0] - tx) * (r[1] - ty) for r in post) / sxx * 600 if sxx else 0.0
    f0, f1 = max(r[2] for r in first), max(r[2] for r in last)
    print(f"    samples: {len(rows)} every ~{end / max(len(rows) - 1, 1):.0f} s over {end:.0f} s; "
          f"warm-up {warmup:g} s; windows of {win:.0f} s")
    print(f"    RSS: start {rows[0][1] / 1024:.1f} MiB, first window after warm-up {r0 / 1024:.2f} MiB, "
          f"last window {r1 / 1024:.2f} MiB, growth {growth:+.2f} % (limit {limit_pct:g} %), "
          f"max {max(r[1] for r in rows) / 1024:.1f} MiB, trend {slope / 1024:+.2f} MiB per 10 min")
    print(f"    open fds: start {rows[0][2]:.0f}, first window after warm-up max {f0:.0f}, "
          f"last window max {f1:.0f}, max after warm-up {max(r[2] for r in post):.0f}")
    d = delta(metrics(before), metrics(after))
    for v in sorted(d["count"]):
        s = p99(d, v)
        print(f"    server {v}: {d['count'][v]} calls, p99 {fmt_bucket(s)}")
        check(s is not None and s <= float(deadline_ms) / 1000, f"server {v} p99 bucket {fmt_bucket(s)} over the deadline")
    fo = ", ".join(f"{k} {v}" for k, v in sorted(d["fail_open"].items())) or "0"
    print(f"    non-200: {non200(d)}; fail-open: {fo}")
    for path in wrk_outs:
        w = wrk(path)
        print(f"    wrk {path.rsplit('/', 1)[-1]}: {w['requests']} requests in {w['secs']:.0f} s, {w['rps']:.1f} req/s, "
              f"p50 {fmt_ms(w.get('p50'))}, p99 {fmt_ms(w.get('p99'))}, max {fmt_ms(w.get('max'))}, "
              f"non-2xx {w['non2xx']}, socket errors {w['socket']}")
        check(w["non2xx"] == 0 and w["socket"] == 0, f"{path}: wrk errors")
    check(non200(d) == 0, f"non-200 answers {d['codes']}")
    check(growth <= limit_pct, f"RSS grew {growth:.2f} % (> {limit_pct:g} %)")
    check(f1 <= f0, f"open fds grew from {f0:.0f} to {f1:.0f}")
    return check.report()


def phases(work, deadline_ms, inflight):
    deadline, inflight = float(deadline_ms) / 1000, int(inflight)

    def load(name):
        m = metrics(f"{work}/m.{name}")
        m["ready"] = open(f"{work}/rc.{name}").read().strip()
        m["readyz"] = open(f"{work}/r.{name}").read().replace("\n", "; ").strip("; ")
        m["t"] = float(open(f"{work}/t.{name}").read())
        return m

    table = [("baseline", "start", "baseline"), ("kill (Prometheus down)", "baseline", "kill"),
             ("kill: recovery", "kill", "kill_recover"), ("slow proxy", "kill_recover", "slow"),
             ("slow: recovery", "slow", "slow_recover"), ("garbage", "slow_recover", "garbage"),
             ("garbage: recovery", "garbage", "garbage_recover")]
    check = Checks()
    print(f"    {'phase':24} {'secs':>5} {'calls':>6} {'non-200':>7} {'p99<=':>7}  fail-open           readyz")
    for name, a, b in table:
        A, B = load(a), load(b)
        d = delta(A, B)
        n, bad, s = d["count"].get("prioritize", 0), non200(d), p99(d, "prioritize")
        fos = ", ".join(f"{k} {v}" for k, v in sorted(d["fail_open"].items())) or "-"
        p = f"{s * 1000:g}ms" if s is not None else "?"
        print(f"    {name:24} {B['t'] - A['t']:5.1f} {n:6d} {bad:7d} {p:>7}  {fos:18}  {B['ready']} {B['readyz']}")
        check(bad == 0, f"{name}: {bad} non-200 responses")
        check(n > 0, f"{name}: no calls")
        # The request counter and the histogram are two updates of one call, so a scrape
        # may land between them: up to one call per connection in flight either way.
        check(abs(sum(d["codes"].values()) - n) <= inflight,
              f"{name}: calls by code ({d['codes']}) do not add up to {n}")
        check(s is not None and s <= deadline, f"{name}: p99 bucket {s} s over the {deadline} s deadline")
        if name in ("kill (Prometheus down)", "slow proxy", "garbage"):
            check(d["fail_open"], f"{name}: fail-open did not increase")
        if name.endswith("recovery"):
            tail = delta(load(b.replace("_recover", "_recover5")), B)["fail_open"]
            check(not tail, f"{name}: still failing open in the last 5 s ({tail})")
            check(B["ready"] == "200" and "telemetry: ok" in B["readyz"], f"{name}: not ready ({B['readyz']})")
    rc = check.report()
    print("    RESULT:", "all checks passed" if rc == 0 else "some checks FAILED")
    return rc


def main(a):
    if a[:1] == ["load-header"]:
        return load_header()
    if a[:1] == ["load-row"] and len(a) == 9:
        return load_row(*a[1:])
    if a[:1] == ["soak"] and len(a) >= 8:
        return soak(a[1], float(a[2]), float(a[3]), a[4], a[5], a[6], a[7:])
    if a[:1] == ["phases"] and len(a) == 4:
        return phases(a[1], a[2], a[3])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)

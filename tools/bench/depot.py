"""`python -m tools.bench depot`: the site EMS's cost against the perfect-foresight bound and the field's heuristics.

On the built-in scenario and seeded generated ones (`mcs_v2g.depot.generate`): the LP lower bound of each
(`mcs_v2g.depot.bound`: same HiGHS, every truck known at t = 0, lossless, no taper, every feasible target met, as
the EMS must; "x relax." is over the bound that may leave feasible targets short), then the depot played in the
same runner (every session a full -20 exchange) by the EMS (planner `lp`) and by each heuristic of
`evse_emulator.energy.ems.heuristics` (`uncontrolled` with the grid guard off, as `mcs-v2g depot --ems` runs it).
Two more runs are diagnostics, not planners in the race: `lp-known`, the LP over the trucks known at each plan (the
EMS without its walk-in forecast, `evse_emulator.energy.ems.forecast`), and the same LP with every truck announced
at t = 0 (walk-ins and late bookings known from the start): what the EMS loses by learning of trucks late, which no
backend can know in advance and the bound does.
The online bound (`mcs_v2g.depot.online_bound`) of each scenario: the least worst ratio to the bound that any EMS
learning of trucks as announced can reach over the scenario and its twins (the day without trucks it has not been
told of yet), one LP of some 10^6 columns per scenario solved twice, about 2 minutes and up to 0.6 GB each
(`--no-online` leaves it out). It bounds the worst of the day and its twins, not the day alone.
Then the scale run, alone on the machine: 20 chargers / 50 trucks / 24 h with the EMS, its chargers over one
process per CPU (`mcs_v2g.depot.parallel`), its simulated/wall factor and peak RSS.

Costs are the report's `cost_eur.total` (import - export revenue + demand + unserved + fcr_penalty); "x bound" is
that total over the bound, which excludes the FCR penalty (see `mcs_v2g.depot.bound`), so the table also shows
the ratio without it. The runs go to a process pool (`--jobs`, one fresh process per run, so that each run's peak
RSS is its own); a line on stderr as each finishes.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import replace
from typing import Any

from evse_emulator.energy.ems.heuristics import HEURISTICS

EMS = "lp"
ALL = (EMS, *HEURISTICS)
KNOWN = "lp-known"  # the LP without the walk-in forecast, online (a diagnostic run)
ANNOUNCED = "lp, all announced at t = 0"  # the LP with every truck known from the start (a diagnostic run)
DIAGNOSTICS = (KNOWN, ANNOUNCED)
SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
SCALE = {"seed": 0, "chargers": 20, "trucks": 50}
RATIO_TARGET = 1.03
FACTOR_TARGET = 1000.0
Spec = tuple[str, int | None, int, int]  # label, seed (None: the built-in scenario), chargers, trucks


def _scenario(spec: Spec) -> Any:
    from mcs_v2g.depot.generate import generate
    from mcs_v2g.depot.scenario import load

    _, seed, chargers, trucks = spec
    return load(None) if seed is None else generate(seed, chargers=chargers, trucks=trucks)


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident set of this process (or of its largest child; ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(who).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def _quiet() -> None:
    """A pool process prints nothing on stdout (HiGHS's banner goes there, from C): the report or JSON has it."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def bound_of(spec: Spec) -> dict[str, Any]:
    """The scenario's perfect-foresight lower bound (a pool task)."""
    from mcs_v2g.depot.bound import fcr_shortfall_kwh, lower_bound_eur, physical_bound_eur

    scenario = _scenario(spec)
    wall = time.perf_counter()
    relaxed = lower_bound_eur(scenario, targets_met=False)
    try:
        eur, why = lower_bound_eur(scenario), ""
    except RuntimeError as exc:  # the feasible targets cannot all be met together: only the relaxed bound
        eur, why = relaxed, str(exc)
    return {
        "name": scenario.name,
        "bound_eur": eur,
        "bound_relaxed_eur": relaxed,
        "bound_physical_eur": physical_bound_eur(scenario),
        "bound_note": why,
        "bound_fcr_shortfall_kwh": fcr_shortfall_kwh(scenario),
        "bound_wall_s": time.perf_counter() - wall,
        "trucks": len(scenario.trucks),
        "infeasible": sum(1 for t in scenario.trucks if not scenario.feasible(t)),
    }


def online_of(spec: Spec) -> dict[str, Any]:
    """The scenario's online bound (a pool task): its ratio, how many twins, those that bind."""
    from mcs_v2g.depot.online_bound import online_bound

    wall = time.perf_counter()
    result = online_bound(_scenario(spec))
    binding = sorted(result.twins, key=lambda t: -t.weight)
    return {
        "online_ratio": result.ratio,
        "online_minmax": result.minmax,
        "online_twins": len(result.twins) - 1,
        "online_binding": [
            {"missing": sorted(t.missing), "told_s": t.told_s, "weight": t.weight} for t in binding if t.weight > 0.01
        ],
        "online_wall_s": time.perf_counter() - wall,
    }


def play(spec: Spec, planner: str, workers: int = 1) -> dict[str, Any]:
    """One depot run with one planner (a pool task): its costs, violations, missed targets and speed; with
    `workers` > 1 its chargers over that many processes (`mcs_v2g.depot.parallel`)."""
    from mcs_v2g.cli.depot import planner as planner_of
    from mcs_v2g.depot.parallel import run_parallel
    from mcs_v2g.depot.run import run_depot

    scenario = _scenario(spec)
    if planner == ANNOUNCED:  # nothing left to forecast: the LP over the known trucks
        scenario = replace(scenario, trucks=tuple(replace(t, announced_s=0.0) for t in scenario.trucks))
        planner = KNOWN
    guard = planner != "uncontrolled"
    if workers > 1:
        run: Any = run_parallel(scenario, workers, planner=planner_of(planner, scenario), guard=guard)
    else:
        run = run_depot(scenario, planner=planner_of(planner, scenario), guard=guard)
    report = run.report()
    met = {t.id: t.target_met for t in report.trucks}
    missed = [t.id for t in scenario.trucks if scenario.feasible(t) and not met[t.id]]
    cost = report.cost_eur
    ems = run.ems
    return {
        "total_eur": cost.total,
        "import_eur": cost.import_,
        "export_revenue_eur": cost.export_revenue,
        "demand_eur": cost.demand,
        "unserved_eur": cost.unserved,
        "fcr_penalty_eur": cost.fcr_penalty,
        "fcr_availability": report.fcr.availability,
        "peak_15min_import_kw": report.peak_15min_import_w / 1000,
        "violation_s": report.grid_import_violation_s + report.grid_export_violation_s,
        "missed": len(missed),
        "missed_ids": missed,
        "sessions_not_ok": sum(1 for t in report.trucks if t.session_result != "ok"),
        "result": report.result,
        "wall_s": run.wall_s,
        "simulated_s": report.simulated_s,
        "factor": report.simulated_s / run.wall_s if run.wall_s else 0.0,
        "peak_rss_mb": _peak_rss_mb(),
        "workers": workers,
        "worker_peak_rss_mb": _peak_rss_mb(resource.RUSAGE_CHILDREN) if workers > 1 else 0.0,
        "plans": ems.plans if ems else 0,
        "solve_s": ems.solve_s if ems else 0.0,
        "fallbacks": ems.fallbacks if ems else 0,
    }


def _say(text: str) -> None:
    print(f"bench depot: {text}", file=sys.stderr, flush=True)


def run(
    seeds: tuple[int, ...] = SEEDS,
    chargers: int = 6,
    trucks: int = 16,
    scale: bool = True,
    planners: tuple[str, ...] = ALL,
    jobs: int = 2,
    scale_workers: int = 0,
    online: bool = True,
) -> dict[str, Any]:
    """Bounds (with the online bound unless `online` is False) and runs of every scenario and planner in a pool of
    `jobs` processes, then the scale run alone on the machine, its chargers over `scale_workers` processes (0: one
    per CPU)."""
    specs: list[Spec] = [("default", None, 0, 0)] + [(f"seed {s}", s, chargers, trucks) for s in seeds]
    scale_spec: Spec = ("scale", SCALE["seed"], SCALE["chargers"], SCALE["trucks"])
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "jobs": jobs},
        "scenarios": {label: {"label": label, "runs": {}} for label, *_ in specs},
        "scale": None,
    }
    wall = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, max_tasks_per_child=1, initializer=_quiet) as pool:
        tasks: dict[Future[dict[str, Any]], tuple[str, str]] = {}
        for spec in specs if online else ():
            tasks[pool.submit(online_of, spec)] = (spec[0], "online")
        for spec in specs:
            tasks[pool.submit(bound_of, spec)] = (spec[0], "bound")
        runs = (*planners, *DIAGNOSTICS) if EMS in planners else planners
        for spec in specs:
            for name in runs:
                tasks[pool.submit(play, spec, name)] = (spec[0], name)
        for done, future in enumerate(as_completed(tasks), 1):
            label, what = tasks[future]
            out = future.result()
            if what == "bound":
                results["scenarios"][label].update(out)
                _say(f"[{done}/{len(tasks)}] {label}: lower bound {out['bound_eur']:.2f} EUR")
            elif what == "online":
                results["scenarios"][label].update(out)
                _say(f"[{done}/{len(tasks)}] {label}: online bound {out['online_ratio']:.4f} x the bound")
            else:
                results["scenarios"][label]["runs"][what] = out
                _say(
                    f"[{done}/{len(tasks)}] {label} {what}: {out['total_eur']:.2f} EUR, {out['wall_s']:.0f} s wall "
                    f"({out['factor']:.0f}x)"
                )
    if scale:  # alone: its factor is the machine's, not shared with other runs
        workers = scale_workers or os.cpu_count() or 1
        _say(f"the scale run: {SCALE['chargers']} chargers / {SCALE['trucks']} trucks / 24 h, {workers} processes")
        with ProcessPoolExecutor(max_workers=1, max_tasks_per_child=1, initializer=_quiet) as pool:
            out = pool.submit(play, scale_spec, EMS, workers).result()
        results["scale"] = SCALE | out
        _say(f"scale run: {out['factor']:.0f}x real time, {out['wall_s']:.0f} s wall")
    results["wall_s"] = time.perf_counter() - wall
    for entry in results["scenarios"].values():
        for out in entry["runs"].values():
            out["x_bound"] = out["total_eur"] / entry["bound_eur"]
            out["x_relaxed_bound"] = out["total_eur"] / entry["bound_relaxed_eur"]
            out["x_physical_bound"] = out["total_eur"] / entry["bound_physical_eur"]
            out["x_bound_excl_fcr"] = (out["total_eur"] - out["fcr_penalty_eur"]) / entry["bound_eur"]
    results["verdict"] = verdict(results)
    return results


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with its figure."""
    scenarios = list(results["scenarios"].values())
    ems = [(s["label"], s["runs"][EMS]) for s in scenarios if EMS in s["runs"]]
    worst = max(ems, key=lambda e: e[1]["x_bound"], default=None)
    online = [(s["label"], s["online_ratio"]) for s in scenarios if "online_ratio" in s]
    known = [(s["label"], s["runs"][ANNOUNCED]) for s in scenarios if ANNOUNCED in s["runs"]]
    worst_known = max(known, key=lambda e: e[1]["x_bound"], default=None)
    beaten = []
    for s in scenarios:
        mine = s["runs"].get(EMS)
        for name, other in s["runs"].items():
            if mine is not None and name not in (EMS, *DIAGNOSTICS) and other["total_eur"] <= mine["total_eur"]:
                beaten.append(f"{s['label']}: {name} {other['total_eur']:.2f} <= EMS {mine['total_eur']:.2f} EUR")
    out: dict[str, Any] = {
        "zero_violations": all(r["violation_s"] == 0 for _, r in ems),
        "violations": {label: r["violation_s"] for label, r in ems if r["violation_s"]},
        "targets_met": all(r["missed"] == 0 for _, r in ems),
        "missed": {label: r["missed_ids"] for label, r in ems if r["missed"]},
        "within_ratio": bool(ems) and all(r["x_bound"] <= RATIO_TARGET for _, r in ems),
        "worst_ratio": worst[1]["x_bound"] if worst else None,
        "worst_scenario": worst[0] if worst else None,
        "online_worst": max(online, key=lambda e: e[1], default=None),
        "online_above_target": [label for label, r in online if r > RATIO_TARGET],
        "announced_worst_ratio": worst_known[1]["x_bound"] if worst_known else None,
        "announced_worst_scenario": worst_known[0] if worst_known else None,
        "below_heuristics": bool(ems) and not beaten,
        "not_below": beaten,
    }
    scale = results.get("scale")
    if scale:
        out["scale_factor_met"] = scale["factor"] >= FACTOR_TARGET
    return out


def _table(entry: dict[str, Any]) -> list[str]:
    head = (
        f"{'planner':20s} {'total EUR':>10s} {'x bound':>8s} {'x relax.':>8s} {'x phys.':>8s} {'excl. FCR':>9s} "
        f"{'FCR pen.':>9s} "
        f"{'violat. s':>9s} {'missed':>6s} {'wall s':>7s} {'factor':>7s}"
    )
    lines = [
        f"{entry['label']}: {entry.get('name', '?')}",
        f"  lower bound {entry['bound_eur']:.2f} EUR (perfect foresight, lossless, no taper, every feasible target "
        f"met; FCR penalty excluded; reservation the bound's optimum does not hold: "
        f"{entry['bound_fcr_shortfall_kwh']:.0f} kWh){' ' + entry['bound_note'] if entry['bound_note'] else ''}; "
        f"relaxed (feasible targets may be left short): {entry['bound_relaxed_eur']:.2f} EUR; with the EMS's own "
        f"truck model (taper, losses): {entry['bound_physical_eur']:.2f} EUR; "
        f"{entry['infeasible']} of {entry['trucks']} targets infeasible",
        *_online(entry),
        "  " + head,
        "  " + "-" * len(head),
    ]
    for name in (*ALL, *DIAGNOSTICS):
        r = entry["runs"].get(name)
        if r is None:
            continue
        label = {EMS: "EMS (lp)", KNOWN: "lp-known (no fcst.)", ANNOUNCED: "lp, all known at 0"}.get(name, name)
        lines.append(
            f"  {label:20s} {r['total_eur']:10.2f} {r['x_bound']:8.3f} {r['x_relaxed_bound']:8.3f} "
            f"{r['x_physical_bound']:8.3f} {r['x_bound_excl_fcr']:9.3f} "
            f"{r['fcr_penalty_eur']:9.2f} {r['violation_s']:9.0f} {r['missed']:6d} {r['wall_s']:7.1f} "
            f"{r['factor']:7.0f}"
        )
    return lines


def _online(entry: dict[str, Any]) -> list[str]:
    """The scenario's online bound, when it was computed."""
    if "online_ratio" not in entry:
        return []
    mix = ", ".join(
        f"{t['weight']:.2f} " + (f"without {'+'.join(t['missing'])}" if t["missing"] else "the day itself")
        for t in entry["online_binding"]
    )
    return [
        f"  online bound {entry['online_ratio']:.4f} x the bound: any EMS that learns of trucks as announced, keeps "
        f"the limits and meets every feasible target is at least that on this day or on one of its "
        f"{entry['online_twins']} twins (the day without trucks it is not told of yet); a worst mix: {mix}"
    ]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def report(results: dict[str, Any]) -> str:
    """The tables per scenario and one verdict line per target."""
    m = results["machine"]
    lines = [
        f"depot benchmark: {m['cpus']} CPUs, {m['jobs']} jobs, Python {m['python']}, {results['wall_s']:.0f} s wall",
        "",
    ]
    for entry in results["scenarios"].values():
        lines += [*_table(entry), ""]
    v = results["verdict"]
    detail = ""
    if v["violations"]:
        detail = " (" + ", ".join(f"{label}: {s:.0f} s" for label, s in v["violations"].items()) + ")"
    lines.append(f"zero violations (EMS): {_yes(v['zero_violations'])}{detail}")
    detail = ""
    if v["missed"]:
        detail = " (" + "; ".join(f"{label}: {', '.join(ids)}" for label, ids in v["missed"].items()) + ")"
    lines.append(f"every feasible target met (EMS): {_yes(v['targets_met'])}{detail}")
    worst = v["worst_ratio"]
    worst_text = f"worst {worst:.3f} on {v['worst_scenario']}" if worst is not None else "no EMS run"
    lines.append(f"EMS <= {RATIO_TARGET:.2f} x bound on every scenario: {_yes(v['within_ratio'])} ({worst_text})")
    if v["online_worst"] is not None:
        label, ratio = v["online_worst"]
        above = ", ".join(v["online_above_target"]) or "none"
        lines.append(
            f"  no EMS that learns of trucks as announced can guarantee it: its cost over the bound is at least the "
            f"online bound on the day or on one of its twins, above {RATIO_TARGET:.2f} on {above} "
            f"(worst {ratio:.3f} on {label})"
        )
    if v["announced_worst_ratio"] is not None:
        lines.append(
            f"  the same EMS with every truck announced at t = 0 (walk-ins and late bookings known early; a "
            f"diagnostic): worst {v['announced_worst_ratio']:.3f} on {v['announced_worst_scenario']}"
        )
    which = f" ({'; '.join(v['not_below'])})" if v["not_below"] else ""
    lines.append(f"EMS below every heuristic on every scenario: {_yes(v['below_heuristics'])}{which}")
    scale = results.get("scale")
    if scale:
        lines.append(
            f"scale: {scale['chargers']} chargers / {scale['trucks']} trucks / 24 h at {scale['factor']:.0f} x real "
            f"time (target >= {FACTOR_TARGET:.0f}x): {_yes(v['scale_factor_met'])}, {scale['workers']} processes, "
            f"peak RSS {scale['peak_rss_mb']:.0f} MB here, {scale['worker_peak_rss_mb']:.0f} MB the largest worker "
            f"({scale['wall_s']:.0f} s wall, {scale['plans']} plans, "
            f"{scale['solve_s']:.1f} s solving, {scale['violation_s']:.0f} s violations, {scale['missed']} missed, "
            f"result: {scale['result']})"
        )
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="the built-in scenario and 2 seeds, no scale run")
    p.add_argument("--seeds", type=int, nargs="+", help=f"seeds of the generated scenarios (default {SEEDS})")
    p.add_argument("--jobs", type=int, default=2, help="processes in parallel (default 2)")
    p.add_argument(
        "--scale-workers", type=int, default=0, help="processes for the scale run's chargers (default: one per CPU)"
    )
    p.add_argument(
        "--no-online", action="store_true", help="leave out the online bound (about 2 min of CPU a scenario)"
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def seeds_of(args: argparse.Namespace) -> tuple[int, ...]:
    if args.seeds:
        return tuple(args.seeds)
    return QUICK_SEEDS if args.quick else SEEDS

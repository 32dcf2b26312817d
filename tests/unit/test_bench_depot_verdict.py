"""The depot benchmark's verdict and report (`tools.bench.depot`), on figures made by hand."""

from __future__ import annotations

from typing import Any

from tools.bench.depot import ALL, EMS, report, verdict


def _run(total: float, bound: float) -> dict[str, Any]:
    return {
        "total_eur": total,
        "x_bound": total / bound,
        "x_relaxed_bound": total / bound,
        "x_physical_bound": total / bound,
        "x_bound_excl_fcr": total / bound,
        "fcr_penalty_eur": 0.0,
        "violation_s": 0.0,
        "missed": 0,
        "missed_ids": [],
        "wall_s": 1.0,
        "factor": 1000.0,
    }


def _scenario(label: str, bound: float, ems: float, online: float) -> dict[str, Any]:
    runs = {name: _run(ems * 2, bound) for name in ALL} | {EMS: _run(ems, bound)}
    return {
        "label": label,
        "name": label,
        "runs": runs,
        "bound_eur": bound,
        "bound_relaxed_eur": bound,
        "bound_physical_eur": bound,
        "bound_note": "",
        "bound_fcr_shortfall_kwh": 0.0,
        "trucks": 3,
        "infeasible": 0,
        "online_ratio": online,
        "online_twins": 2,
        "online_binding": [
            {"missing": [], "told_s": float("inf"), "weight": 0.6},
            {"missing": ["t2"], "told_s": 3600.0, "weight": 0.4},
        ],
    }


def test_the_verdict_names_the_days_where_no_online_ems_reaches_the_ratio() -> None:
    results: dict[str, Any] = {
        "machine": {"cpus": 2, "python": "3", "jobs": 2},
        "wall_s": 1.0,
        "scale": None,
        "scenarios": {
            "default": _scenario("default", 1000.0, 1100.0, 1.062),
            "seed 0": _scenario("seed 0", 2000.0, 2040.0, 1.018),
        },
    }
    v = results["verdict"] = verdict(results)
    assert v["online_worst"] == ("default", 1.062) and v["online_above_target"] == ["default"]
    assert not v["within_ratio"] and v["worst_scenario"] == "default"
    text = report(results)
    assert "online bound on the day or on one of its twins, above 1.03 on default (worst 1.062 on default)" in text
    assert "online bound 1.0180 x the bound" in text and "0.40 without t2" in text and "0.60 the day itself" in text


def test_without_the_online_bound_the_report_says_nothing_of_it() -> None:
    scenario = _scenario("default", 1000.0, 1100.0, 1.062)
    for key in ("online_ratio", "online_twins", "online_binding"):
        del scenario[key]
    results: dict[str, Any] = {
        "machine": {"cpus": 2, "python": "3", "jobs": 2},
        "wall_s": 1.0,
        "scale": None,
        "scenarios": {"default": scenario},
    }
    v = results["verdict"] = verdict(results)
    assert v["online_worst"] is None and v["online_above_target"] == []
    assert "online bound" not in report(results)

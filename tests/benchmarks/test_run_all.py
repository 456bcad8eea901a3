"""bench/run_all.py (``python -m bench``): a real --quick run into a temporary directory, and the
pure parts (ratios per round, targets) on known numbers."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the bench package lives at the repository root, not in src/

from bench import run_all  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_run_writes_json_and_one_png_per_question(tmp_path: Path) -> None:
    docs = ROOT / "docs" / "benchmarks"
    before = {p.name: p.stat().st_mtime_ns for p in docs.glob("*")} if docs.is_dir() else {}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=850, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # nothing of a smoke run lands in docs/
    after = {p.name: p.stat().st_mtime_ns for p in docs.glob("*")} if docs.is_dir() else {}
    assert after == before

    result = json.loads((out / "results.json").read_text())
    assert result["schema_version"] == run_all.SCHEMA_VERSION
    assert result["config"]["quick"] is True
    rounds = result["config"]["rounds"]
    assert rounds == run_all.QUICK["rounds"] >= 2
    machine = result["machine"]
    for key in ("cores", "cpu_model", "python", "postgresql", "mariadb", "pgbouncer",
                "openssl", "loop"):
        assert machine[key], key
    assert machine["pgbouncer"].startswith("PgBouncer ")
    assert len(result["rounds"]) == rounds
    for r in result["rounds"]:
        assert len(r["loadavg_before"]) == 3 and len(r["loadavg_after"]) == 3

    metrics = result["metrics"]
    assert set(metrics) == set(run_all.METRICS)  # every row measured
    expected = {"pg.": {"direct", "pgbouncer", "endpoint"}, "my.": {"direct", "endpoint"},
                "plugin.": {"rdsiam", "pytest-postgresql"}, "verify.": {"endpoint"}}
    proxy_only = ("idle_rss", "cpu_per")
    for mid, m in metrics.items():
        targets = next(v for k, v in expected.items() if mid.startswith(k))
        if any(p in mid for p in proxy_only):
            targets = targets - {"direct"}
        assert set(m["values"]) == targets, mid
        for target, values in m["values"].items():
            assert len(values) == rounds and all(isinstance(v, float) for v in values), mid
            if "idle_rss" not in mid:  # a few idle connections may cost no new page
                assert all(v > 0 for v in values), (mid, target, values)
            assert m["median"][target] == pytest.approx(sorted(values)[rounds // 2]
                                                        if rounds % 2 else
                                                        sum(sorted(values)[rounds // 2 - 1:
                                                                           rounds // 2 + 1]) / 2)
    ratio = metrics["pg.conn_rate"]["ratios"]["endpoint/pgbouncer"]
    assert len(ratio["per_round"]) == rounds
    assert metrics["plugin.first_test"]["ratios"]["rdsiam/pytest-postgresql"]["median"] > 0

    churn = result["churn"]
    assert churn["rounds_run"] == run_all.QUICK["churn_rounds"]
    assert set(churn["rss_mib"]) == {"postgres/pgbouncer", "postgres/endpoint",
                                     "mariadb/endpoint"}
    for series in churn["rss_mib"].values():
        assert len(series) == churn["rounds_run"] and all(v > 1 for v in series)
    assert len(result["targets"]) == 7
    assert all(t["met"] in (True, False) for t in result["targets"])

    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(result["figures"])
    assert {"connections.png", "select_tps.png", "latency.png", "bulk.png", "idle_rss.png",
            "churn_rss.png", "proxy_cpu.png", "verify.png", "plugin.png",
            "vs_pgbouncer.png"} <= set(pngs)
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert '| target (smoke run, "quick": true) | goal | smoke figure | met |' in proc.stdout
    assert "not judged (smoke run)" in proc.stdout and "**not met**" not in proc.stdout


def test_ratios_are_per_round_and_targets_judge_the_medians() -> None:
    samples = [(0, "pg.conn_rate", "pgbouncer", 100.0), (0, "pg.conn_rate", "endpoint", 90.0),
               (1, "pg.conn_rate", "pgbouncer", 50.0), (1, "pg.conn_rate", "endpoint", 60.0),
               (2, "pg.conn_rate", "pgbouncer", 80.0), (2, "pg.conn_rate", "endpoint", 100.0),
               (0, "pg.idle_rss", "endpoint", 30.0), (1, "pg.idle_rss", "endpoint", 20.0),
               (2, "pg.idle_rss", "endpoint", 24.0)]
    metrics = run_all.summarise(samples, 3)
    ratio = metrics["pg.conn_rate"]["ratios"]["endpoint/pgbouncer"]
    assert ratio["per_round"] == pytest.approx([0.9, 1.2, 1.25])
    assert ratio["median"] == pytest.approx(1.2)  # not 83.3 / 80 of the medians' ratio
    assert metrics["pg.idle_rss"]["median"] == {"endpoint": 24.0}
    churn = {"rounds_run": 10, "growth": {"postgres/endpoint": 1.2, "mariadb/endpoint": 1.05}}
    by_name = {t["name"]: t for t in run_all.evaluate_targets(metrics, churn)}
    assert by_name["new-connection rate vs PgBouncer (PostgreSQL)"]["met"] is True
    # judged on round 1 (30 KiB), the fresh cost, not on the median (24 KiB)
    idle = by_name[f"RSS per idle connection, PostgreSQL endpoint ({run_all.IDLE_FIRST})"]
    assert idle["measured"] == 30.0 and idle["met"] is False
    assert by_name["RSS after 10 churn rounds vs after the first, PostgreSQL endpoint"][
        "met"] is False
    assert by_name["RSS after 10 churn rounds vs after the first, MariaDB endpoint"][
        "met"] is True
    not_run = by_name["select-only TPS vs PgBouncer (PostgreSQL)"]
    assert not_run["measured"] is None and not_run["met"] is None


def test_unknown_bench_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_all.main(["--only", "postgres,nope", "--out", "/nonexistent"])
    assert exc.value.code == 2
    assert "unknown bench(es): nope" in capsys.readouterr().err


def summary_of(quick: bool) -> str:
    result = {"config": {"quick": quick}, "metrics": {},
              "targets": [{"name": "select-only TPS vs PgBouncer (PostgreSQL)", "target": "≥ 1.0x",
                           "measured": 2.21, "unit": "x", "met": True}]}
    return run_all.markdown(result)


def test_quick_summary_is_labelled_a_smoke_run_and_judges_no_target() -> None:
    text = summary_of(quick=True)
    assert text.startswith("**Smoke run (`--quick`")
    assert '| target (smoke run, "quick": true) |' in text
    assert "| 2.21 x | not judged (smoke run) |" in text
    assert "| met |" not in text.replace("| smoke figure | met |", "")


def test_full_summary_judges_targets() -> None:
    text = summary_of(quick=False)
    assert "smoke" not in text.lower()
    assert "| 2.21 x | met |" in text


IDLE = {"pg.idle_rss": {"pgbouncer": [15.48, 0.016, 0.012], "endpoint": [17.82, 11.64, 8.93]},
        "my.idle_rss": {"endpoint": [18.73, 7.45, 9.89]}}


def idle_metrics() -> dict[str, Any]:
    samples = [(r, mid, target, v) for mid, per in IDLE.items() for target, vs in per.items()
               for r, v in enumerate(vs)]
    return run_all.summarise(samples, 3)


def test_idle_rss_target_is_judged_on_round_one_not_on_memory_reuse() -> None:
    """Later rounds reuse memory a long-lived process freed (PgBouncer: 0.02 KiB): the target
    takes the fresh cost of round 1."""
    targets = {t["name"]: t["measured"] for t in run_all.evaluate_targets(idle_metrics(), {})}
    pg = next(k for k in targets if k.startswith("RSS per idle connection, PostgreSQL"))
    my = next(k for k in targets if k.startswith("RSS per idle connection, MariaDB"))
    assert "round 1" in pg and "round 1" in my
    assert targets[pg] == pytest.approx(17.82) and targets[my] == pytest.approx(18.73)


def test_idle_figure_shows_round_one_and_all_rounds_labelled() -> None:
    config = run_all.Config(**{**dataclasses.asdict(run_all.Config()), **run_all.QUICK})
    figs = {f.filename: f for f in run_all.figures(idle_metrics(), {}, config)}
    first, every = figs["idle_rss.png"].panels
    assert "round 1" in first.title and "all rounds" in every.title
    assert dict(first.groups)["PostgreSQL"] == {"pgbouncer": [15.48], "endpoint": [17.82]}
    assert dict(every.groups)["PostgreSQL"] == IDLE["pg.idle_rss"]
    (advantage,) = figs["vs_pgbouncer.png"].panels
    label, ratio = advantage.groups[-1]
    assert label == "RSS/idle, round 1"
    assert ratio["endpoint"] == [pytest.approx(15.48 / 17.82)]


def test_value_labels_sit_above_the_dots() -> None:
    import matplotlib.pyplot as plt
    from bench import plots

    fig, ax = plt.subplots()
    try:
        plots._bars(ax, plots.Panel("t", "u", [("", {"endpoint": [1.0, 3.0, 2.0]})]))
        (label,) = ax.texts
        assert label.get_text() == "2.00"
        assert label.xy[1] == 3.0  # anchored at the highest dot, not at the median bar
    finally:
        plt.close(fig)

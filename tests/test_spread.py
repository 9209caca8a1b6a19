"""bench/spread.py: each row's median and range over runs, quiet and noisy apart, one row per
thread count."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))

import spread  # noqa: E402


def _run(tmp_path, name, threads, noisy, speedups):
    d = tmp_path / name
    d.mkdir()
    rows = [dict(cell="lstm", I=2, H=H, B=32, T=100, speedup_vs_torch=s) for H, s in speedups.items()]
    (d / "results.json").write_text(json.dumps(dict(date="2026-12-07", threads=threads, noisy=noisy, rows=rows,
                                                    machine=dict(cpu="test", torch="2.13"))))
    return str(d)


def test_spread_keeps_thread_counts_and_noisy_runs_apart(tmp_path):
    dirs = [_run(tmp_path, "a", 2, False, {32: 2.0, 128: 1.1}), _run(tmp_path, "b", 2, False, {32: 3.0, 128: 1.3}),
            _run(tmp_path, "c", 2, False, {32: 1.0, 128: 1.2}), _run(tmp_path, "d", 1, False, {32: 5.0}),
            _run(tmp_path, "e", 2, True, {32: 9.0})]
    out = tmp_path / "SPREAD.md"
    assert spread.main(dirs + ["--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert "5 benchmark runs (4 quiet, 1 noisy)" in lines[0]
    assert "| lstm | 2 | 32 | 32 | 100 | 1 | 5.00x [5.00, 5.00] (1) | - |" in lines
    assert "| lstm | 2 | 32 | 32 | 100 | 2 | 2.00x [1.00, 3.00] (3) | 9.00x [9.00, 9.00] (1) |" in lines
    assert "| lstm | 2 | 128 | 32 | 100 | 2 | 1.20x [1.10, 1.30] (3) | - |" in lines


def test_spread_names_a_folder_without_results(tmp_path):
    good = _run(tmp_path, "a", 2, False, {32: 2.0})
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "results.json").write_text("{not json")
    for d in (tmp_path / "empty", bad, tmp_path / "a.log"):
        try:
            spread.main([good, str(d)])
        except SystemExit as e:
            assert str(d) in str(e.code) and "results.json" in str(e.code)
        else:
            raise AssertionError(f"{d}: no error")

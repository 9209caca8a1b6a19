"""Each row's spread across benchmark runs: the median and the range of its speedup over
PyTorch in several results.json files (bench.py --out DIR, run at different hours), quiet runs
and noisy-host runs (bench.py --noisy) apart, and each thread count (bench.py --threads) a row
of its own. One run reads one hour of a shared machine; a target holds when its median over
runs does.

    python bench/spread.py RUN_DIR [RUN_DIR ...] [--out bench/SPREAD.md]
"""
import argparse
import json
import statistics
import sys
from pathlib import Path


def load(dirs):
    """[(noisy, {row key: speedup})] of each run that timed PyTorch."""
    runs = []
    for d in dirs:
        path = Path(d) / "results.json"
        try:
            doc = json.loads(path.read_text())
            doc["rows"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"spread.py: runs: {d} holds no readable bench.py results.json ({type(e).__name__}: {e})")
        rows = {(r["cell"], r["I"], r["H"], r["B"], r["T"], doc.get("threads")): r["speedup_vs_torch"]
                for r in doc["rows"] if r.get("speedup_vs_torch") is not None}
        if rows:
            runs.append((bool(doc.get("noisy")), rows,
                         f"{Path(d).name}: {doc.get('date', '?')}, {doc.get('machine', {}).get('cpu', '?')}, {doc.get('threads')} threads, "
                         f"PyTorch {doc.get('machine', {}).get('torch')}"))
    return runs


def table(runs):
    keys = sorted({k for _, rows, _ in runs for k in rows}, key=lambda k: (k[:5], k[5] or 0))
    lines = ["| cell | I | H | B | T | threads | quiet: median [min, max] (runs) | noisy: median [min, max] (runs) |",
             "|---|---|---|---|---|---|---|---|"]
    for key in keys:
        cells = []
        for noisy in (False, True):
            vals = [rows[key] for n, rows, _ in runs if n == noisy and key in rows]
            cells.append(f"{statistics.median(vals):.2f}x [{min(vals):.2f}, {max(vals):.2f}] ({len(vals)})"
                         if vals else "-")
        lines.append(f"| {' | '.join('-' if v is None else str(v) for v in key)} | {cells[0]} | {cells[1]} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="folders holding a bench.py results.json")
    ap.add_argument("--out", default=None, help="write the table here (markdown) as well as printing it")
    args = ap.parse_args(argv)
    runs = load(args.runs)
    if not runs:
        print("no run timed PyTorch: nothing to compare", file=sys.stderr)
        return 1
    quiet = sum(not n for n, _, _ in runs)
    lines = [f"# Speedup over PyTorch across {len(runs)} benchmark runs ({quiet} quiet, {len(runs) - quiet} noisy)",
             "", "Runs: " + "; ".join(f"{'noisy' if n else 'quiet'} ({about})" for n, _, about in runs) + ".",
             "Noisy: one busy process beside the benchmark (`bench.py --noisy`). Medians of each run's ratio; "
             "brackets: the lowest and highest run.", "", *table(runs), ""]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

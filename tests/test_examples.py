"""Every command printed in README.md and in the --help texts runs as printed (issue #27: the
README's gradients example exited 2 after 9 s). The commands run in order in one empty folder,
as a reader would type them, with the one thing a test may change: FASTRNN_MAX_STEPS caps each
run's training steps (fastrnn.train.config), so the whole tour takes a few minutes. Commands
that cannot run here are listed in NOT_HERE with the reason; a printed command that is neither
run nor listed fails the test, so a new example cannot go untested by accident."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn.train.config import MAX_STEPS_ENV
from fastrnn_cli.main import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOT_HERE = {  # command prefix -> why this test does not run it
    "pytest": "the test suite itself",
    "python bench/bench.py": "the benchmark: half an hour of timing (bench/, run by hand)",
    "dask scheduler": "a Dask cluster: test_sweep.py runs sweeps on a real LocalCluster",
    "dask worker": "a Dask cluster: test_sweep.py runs sweeps on a real LocalCluster",
    "fastrnn sweep study.toml --out study --scheduler": "a Dask cluster, as above",
    "fastrnn train --task adding --cell lstm --device cuda": "a GPU (tests/test_cuda_gpu.py on one)",
}


def readme_commands():
    """The shell commands of README.md's indented code blocks, continuation lines joined,
    comments dropped; `pip install X && CMD` gives CMD (this test runs in an installed fastrnn)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    cmds, in_fence, prev_blank, cur = [], False, True, ""
    for ln in lines:
        if ln.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if ln.startswith("    ") and (prev_blank or cur or cmds and cmds[-1][1] == "block"):
            text = cur + ln.strip()
            if text.endswith("\\"):
                cur = text[:-1] + " "
                continue
            cur = ""
            cmds.append((text, "block"))
        else:
            prev_blank = not ln.strip()
            if cmds:
                cmds[-1] = (cmds[-1][0], "done")
            continue
    out = []
    for text, _ in cmds:
        words = shlex.split(text, comments=True)
        if not words or words[0] not in ("fastrnn", "pip", "python", "dask", "pytest"):
            continue
        if words[0] == "pip":  # pip install ... && CMD: the install is this test's environment
            if "&&" not in words:
                continue
            words = words[words.index("&&") + 1:]
        out.append(shlex.join(words))
    return out


def help_commands():
    """The `Example: fastrnn ...` line of every command's --help."""
    cmds = []
    for name, command in cli.commands.items():
        for m in re.finditer(r"^\s*Example: (fastrnn .+)$", command.help or "", re.M):
            cmds.append(m.group(1).strip())
    return cmds


def readme_toml():
    """The sweep spec the README shows (its ```toml block), which `fastrnn sweep study.toml` reads."""
    m = re.search(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return m.group(1)


def skipped(cmd):
    return next((why for prefix, why in NOT_HERE.items() if cmd.startswith(prefix)), None)


def test_the_lists_are_found():
    """The parsers find what is printed (a README reshuffle that hides the commands fails here)."""
    readme = readme_commands()
    assert "fastrnn compare" in readme
    assert any(c.startswith("fastrnn gradients --task adding --seq-len 200") for c in readme)
    assert len(help_commands()) == len(cli.commands)  # every command shows one example
    for prefix in NOT_HERE:
        assert any(c.startswith(prefix) for c in readme + help_commands()), f"{prefix!r} is printed nowhere now"


def test_every_printed_command_runs_as_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(MAX_STEPS_ENV, "20")
    # what the README asks the reader to have: a text file, the study spec, the waves script
    (tmp_path / "book.txt").write_text((ROOT / "README.md").read_text() * 3)
    (tmp_path / "study.toml").write_text(readme_toml())
    (tmp_path / "studies").mkdir()
    shutil.copy(ROOT / "studies" / "make_waves.py", tmp_path / "studies")
    failures, ran = [], []
    for cmd in readme_commands() + help_commands():
        if skipped(cmd):
            continue
        words = shlex.split(cmd)
        if words[0] == "python":
            r = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True, timeout=300)
            code, output = r.returncode, r.stdout + r.stderr
        else:
            r = CliRunner().invoke(cli, words[1:])
            code, output = r.exit_code, r.output
            if r.exception is not None and not isinstance(r.exception, SystemExit):
                code, output = "traceback", f"{type(r.exception).__name__}: {r.exception}\n{output}"
        ran.append(cmd)
        if code != 0:
            failures.append(f"{cmd}\n  exit {code}: {output[-800:]}")
    assert not failures, "\n".join(failures)
    assert len(ran) >= 15, ran
    # the gradients example: at T = 200 the IRNN diverges on Adam's first step; it is reported,
    # with its profile at initialization, and the other cells' results are written
    import json

    g = json.loads((tmp_path / "grads" / "gradients.json").read_text())
    assert [p["cell"] for p in g["init"]] == ["tanh", "relu", "gru", "lstm"]
    diverged = {u["cell"] for u in g.get("untrained", [])}
    assert {p["cell"] for p in g["trained"]} | diverged == {"tanh", "relu", "gru", "lstm"}
    assert os.path.getsize(tmp_path / "grads" / "gradients.png") > 0


def readme_python():
    """The code blocks of the README's "From Python" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_python_section_runs(tmp_path, monkeypatch):
    """Its blocks run in order in one namespace, as a reader pasting them would."""
    monkeypatch.chdir(tmp_path)
    blocks = readme_python()
    assert len(blocks) >= 2
    env = {}
    for block in blocks:
        exec(compile(block, "README.md (From Python)", "exec"), env)
    assert env["summary"]["status"] in ("solved", "unsolved") and env["summary"]["steps"] <= 400
    assert (tmp_path / "runs" / "py-gru" / "config.json").exists() and np.isfinite(env["res"].loss)


def test_experiments_md_shows_every_study_table_as_committed():
    """EXPERIMENTS.md embeds each studies/results/STUDY/table.md verbatim, so the text cannot
    drift from the results it reads."""
    text = (ROOT / "EXPERIMENTS.md").read_text()
    tables = sorted((ROOT / "studies" / "results").glob("*/table.md"))
    assert len(tables) >= 5
    for table in tables:
        assert table.read_text() in text, f"EXPERIMENTS.md lacks {table.parent.name}'s table as committed"


def test_the_study_tables_regenerate_from_the_committed_results(tmp_path):
    """Every studies/results/STUDY/table.md is what studies/figures.py writes from the committed
    compact results, byte for byte (issue #31: four rows were made from full precision)."""
    import shutil as sh

    sh.copytree(ROOT / "studies", tmp_path / "studies")
    studies = sorted(p.name for p in (ROOT / "studies" / "results").iterdir() if (p / "table.md").exists())
    assert len(studies) >= 5
    for study in studies:
        r = subprocess.run([sys.executable, str(tmp_path / "studies" / "figures.py"), study,
                            str(tmp_path / "studies" / "results" / study)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "studies" / "results" / study / "table.md").read_text() == \
            (ROOT / "studies" / "results" / study / "table.md").read_text(), study

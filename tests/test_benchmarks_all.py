"""benchmarks/all.py runs and prints its ratio table (format only: timings are not asserted,
they depend on the machine)."""
import importlib.util
import json
import math
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "all.py")
ROW = re.compile(r"^\| (\S+) +\| +(\S+) \| +(\S+) \| +(\S+) \|$")


def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, SCRIPT, *args], check=False, capture_output=True,
                          text=True, env=env, timeout=120, cwd=ROOT)


def test_quick_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run("--quick", "--repeats", "2", "--only", "mlp", "conv2d", "--threads", "1",
                "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = lines.index("| workload   | shendu ms |  torch ms |  ratio |")
    rows = [ROW.match(line) for line in lines[header + 2:header + 4]]
    assert [m.group(1) for m in rows] == ["mlp", "conv2d"]
    for m in rows:
        ours, theirs, ratio = (float(m.group(i)) for i in (2, 3, 4))
        assert all(math.isfinite(v) and v > 0 for v in (ours, theirs, ratio))
    assert any(line.startswith("load average at start: ") for line in lines)
    assert any(line.startswith("load average at end: ") for line in lines)
    saved = json.loads(out.read_text())
    assert [r["workload"] for r in saved["results"]] == ["mlp", "conv2d"]
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in saved["results"])


def _load_all():
    """benchmarks/all.py as a module, imported in this process (no subprocess start-up)."""
    path, modules = list(sys.path), set(sys.modules)
    try:
        spec = importlib.util.spec_from_file_location("benchmarks_all", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        # all.py puts benchmarks/ on sys.path and imports cnn, lm, ops, train from it: undo
        # both so that no later test can pick up those top-level names
        sys.path[:] = path
        for name in ("_common", "cnn", "lm", "ops", "train"):
            if name not in modules:
                sys.modules.pop(name, None)
    return module


@pytest.mark.parametrize("args, message", [
    (["--only", "nope"], "--only: unknown workload nope"),
    (["--threads", "0"], "expected a positive integer, got 0"),
    (["--repeats", "x"], "expected a positive integer, got 'x'"),
])
def test_bad_flags_one_line_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load_all().parse_args(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]

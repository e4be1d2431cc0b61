"""The BAGEL adapter against BAGEL's public reference implementation (tests/reference_bagel.py), where a checkout
of github.com/ByteDance-Seed/Bagel is named by BAGEL_REFERENCE (this machine cannot download it: skipped without)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = os.environ.get("BAGEL_REFERENCE", "")


@pytest.mark.skipif(not REFERENCE, reason="set BAGEL_REFERENCE=<a checkout of ByteDance-Seed/Bagel>")
def test_the_adapter_matches_the_reference_on_the_same_weights(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_bagel import prepared_copy
    copy = prepared_copy(Path(REFERENCE), tmp_path / "reference")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(copy), str(ROOT), str(ROOT / "tests")])}
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "reference_bagel.py"), str(tmp_path)], env=env,
                         cwd=copy, capture_output=True, text=True, timeout=300)
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert run.stdout.count("max |ours - reference|") == 6

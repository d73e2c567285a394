"""chart/README.md's values table is generated from values.yaml and covers every value."""

from __future__ import annotations

import subprocess
import sys

import yaml

from conftest import CHART_DIR, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from chart_values_doc import documented_values, leaf_paths, undocumented_leaves  # noqa: E402

VALUES = CHART_DIR / "values.yaml"


def test_readme_table_is_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_chart_readme.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_value_is_documented_in_values_yaml():
    assert undocumented_leaves(VALUES) == []


def test_every_value_path_appears_in_the_readme_table():
    readme = (CHART_DIR / "README.md").read_text()
    table = readme.split("<!-- values-table:start -->")[1].split("<!-- values-table:end -->")[0]
    rows = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    values = yaml.safe_load(VALUES.read_text())
    for leaf in leaf_paths(values):
        parts = leaf.split(".")
        assert any(".".join(parts[:n]) in rows for n in range(1, len(parts) + 1)), leaf
    assert rows == {doc.path for doc in documented_values(VALUES)}


def test_undocumented_value_is_detected(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("# -- documented\na: 1\nb:\n  # -- nested\n  c: 2\n  d: 3\nlist:\n  - x: 1\n")
    assert undocumented_leaves(values) == ["b.d", "list"]
    assert [d.path for d in documented_values(values)] == ["a", "b.c"]

"""The fetcher image, built for real from Dockerfile.fetcher with podman, run as the rendered pod runs it.

The image (the ``image_fetcher`` fixture) is built once per session on the stand-in Debian base that
devkit/image.py makes once per machine (or on FETCHER_IMAGE_BASE). The end-to-end tests marked
``every_lane`` (the pod contract, the sidecar with real Triton) run their fetcher from it; the tests
here check what only a real image shows. Without podman (and without root to install it) they skip
and say why.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from devkit.chart import render_chart
from devkit.image import RESTRICTED, ImageError, ImageFetcher, build_image, security_options
from devkit.pod import LocalPod
from devkit.wheel import ROOT, stage_build_sources

pytestmark = pytest.mark.slow

PROBE = """
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME"
grep -E '^(CapEff|NoNewPrivs):' /proc/self/status
touch /opt/model-fetcher/probe 2>&1 || true
touch /etc/model-fetcher/probe 2>&1 || true
touch /models/probe && echo "models writable"
touch /tmp/probe && echo "tmp writable"
echo "probe done"
"""


def test_the_rendered_fetcher_container_runs_with_the_pods_user_read_only_root_and_no_capabilities(
        image_fetcher: ImageFetcher, tmp_path: Path) -> None:
    rendered = render_chart({"lease": {"models": []}}, name="probe", namespace="default")
    with LocalPod(rendered.pod, tmp_path / "pod", config_maps=rendered.config_maps(), install=image_fetcher) as pod:
        run = pod.run(rendered.fetcher, timeout=120, command=["/bin/sh"], args=["-c", PROBE])
        argv = pod.argv[rendered.fetcher["name"]]
    assert run.returncode == 0 and "probe done" in run.output, run.output
    assert argv[:2] == ["podman", "run"] and image_fetcher.image in argv
    assert re.search(r"^uid=1000 gid=1000 groups=.*\b1000\b.* home=/tmp$", run.output, re.M), run.output
    assert re.search(r"^CapEff:\s+0+$", run.output, re.M), run.output
    assert re.search(r"^NoNewPrivs:\s+1$", run.output, re.M), run.output
    assert "touch: cannot touch '/opt/model-fetcher/probe': Read-only file system" in run.output
    assert "touch: cannot touch '/etc/model-fetcher/probe': Read-only file system" in run.output
    assert "models writable" in run.output and "tmp writable" in run.output


def test_the_image_lanes_own_commands_run_with_the_charts_default_security_context() -> None:
    rendered = render_chart({"lease": {"models": []}}, name="probe", namespace="default")
    assert rendered.fetcher["securityContext"] == RESTRICTED
    options = security_options(rendered.pod, rendered.fetcher)
    assert options[:2] == ["--user", "1000:1000"] and "--read-only" in options
    assert options[options.index("--cap-drop") + 1] == "ALL"
    assert options[options.index("--security-opt") + 1] == "no-new-privileges"


def test_the_images_smoke_check_fails_the_build_when_a_package_is_left_out(image_base: str, tmp_path: Path) -> None:
    """The packaging fault this project once shipped: a hand-written package list without fetcher.watch."""
    context = stage_build_sources(tmp_path / "context")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = sorted(".".join(p.relative_to(ROOT).parent.parts) for p in (ROOT / "fetcher").rglob("__init__.py"))
    listed = [p for p in packages if p != "fetcher.watch"] + ["fetcher.schemas"]
    assert len(listed) == len(packages)  # only fetcher.watch is left out
    text = (context / "pyproject.toml").read_text()
    package_dir = re.search(r"^package-dir = .*$", text, re.M)
    assert package_dir and project["tool"]["setuptools"]["package-dir"]
    text = text.replace(package_dir.group(0), 'package-dir = { "fetcher.schemas" = "schemas" }\n'
                        f"packages = {listed!r}".replace("'", '"'))
    (context / "pyproject.toml").write_text(text)
    with pytest.raises(ImageError, match=r"No module named 'fetcher\.watch'"):
        build_image(f"localhost/triton-model-fetcher:broken-{tmp_path.name}", base=image_base, work=tmp_path,
                    context=context)

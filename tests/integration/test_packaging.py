"""What the container runs: the wheel the Dockerfile builds carries every data file and its
entry point works outside the source tree; the compose file is valid and refers to files that
exist."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import ingest
assert ingest.__file__.startswith(sys.argv[1]), ingest.__file__
from ingest.cluster import render_template, render_components
from ingest.config import SinkConfig, IndexConfig
from ingest.enrich.rules import load_rules
from ingest.ops.dashboards import saved_objects
from ingest.ops.alerts import render_monitors
cfg = SinkConfig(url="http://127.0.0.1:9200")
assert render_template(cfg)["index_patterns"] == ["cloudtrail-*"]
assert len(render_components(cfg, IndexConfig())) == 3
assert load_rules().resources
assert len(saved_objects()) == 16 and len(render_monitors(alias="cloudtrail")) == 4
from sigma.plugins import InstalledSigmaPlugins  # pySigma's discovery finds ct-ingest's pipeline
found = InstalledSigmaPlugins.autodiscover(include_backends=False, include_validators=False)
assert found.pipelines["ct_ingest"]().name == "ct-ingest CloudTrail index", found.pipelines
from ingest.cli import main
sys.argv = ["ct-ingest", "--version"]
main()
"""


class TestWheel:
    def test_wheel_has_the_data_and_the_entry_point(self, tmp_path: Path) -> None:
        """The wheel built as the Dockerfile builds it installs and runs from elsewhere."""
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "-q",
                "-w",
                str(tmp_path),
                str(ROOT),
            ],
            check=True,
            capture_output=True,
        )
        [wheel] = list(tmp_path.glob("ct_ingest-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        for needed in (
            "ingest/enrich/rules.toml",
            "ingest/mappings/component-cloudtrail.json",
            "ingest/mappings/dashboards/cloudtrail.ndjson",
            "ingest/mappings/alerts/root-activity.json",
        ):
            assert needed in names
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        assert "ct-ingest = ingest.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
        target = tmp_path / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "-q",
                "--target",
                str(target),
                str(wheel),
            ],
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(target)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert 0 == out.returncode, out.stderr
        assert out.stdout.startswith("ct-ingest 0.")


class TestCompose:
    def test_compose_file_is_valid_and_its_files_exist(self) -> None:
        """docker-compose.yml parses; services built from '.' have a Dockerfile whose COPY
        sources exist; the setup and tail services run ct-ingest commands."""
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        services = compose["services"]
        assert {"opensearch", "dashboards", "setup", "tail"} <= set(services)
        for name in ("setup", "tail"):
            assert "." == services[name]["build"]
        dockerfile = (ROOT / "Dockerfile").read_text()
        for line in dockerfile.splitlines():
            if line.startswith("COPY") and "--from" not in line:
                for src in line.split()[1:-1]:
                    assert (ROOT / src).exists(), src
        assert 'ENTRYPOINT ["ct-ingest"]' in dockerfile
        assert "setup" == services["setup"]["command"][0]
        assert "tail" == services["tail"]["command"][0]
        assert (
            "service_completed_successfully" == services["tail"]["depends_on"]["setup"]["condition"]
        )

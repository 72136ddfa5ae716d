"""setup --alerts and --sigma against OpenSearch 2.11 with the Alerting and Notifications
plugins, emulated by the fault proxy in front of osmem-server as their sources answer (no
monitors index before the first monitor), and against a cluster without them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from ingest.errors import SinkError
from ingest.ops.alerts import install_monitors, monitor_key, render_monitors
from ingest.sigma.convert import convert_paths
from ingest.testing.faultproxy import ALERTING_2X, FaultProxy

from .helpers import cli

pytestmark = pytest.mark.integration

RULE = """\
title: {title}
id: {id}
status: test
level: {level}
tags:
  - attack.{tag}
logsource:
  product: aws
  service: cloudtrail
detection:
  selection:
    eventSource: {source}
    eventName: {name}
  condition: selection
"""
RULES = {
    "root-login.yml": RULE.format(
        title="Root console login", id="6a1d2e4f-0000-4000-8000-000000000001", level="high",
        tag="privilege_escalation", source="signin.amazonaws.com", name="ConsoleLogin",
    ),
    "nested/trail-stopped.yml": RULE.format(
        title="CloudTrail logging stopped", id="6a1d2e4f-0000-4000-8000-000000000002",
        level="critical", tag="defense_evasion", source="cloudtrail.amazonaws.com",
        name="StopLogging",
    ),
    "broken.yml": "title: [not closed\n",
}  # fmt: skip


@pytest.fixture
def cluster(opensearch_url: str) -> Iterator[FaultProxy]:
    """A fresh OpenSearch 2.11 with Alerting and Notifications (no monitor yet)."""
    with FaultProxy(opensearch_url, emulation=ALERTING_2X) as proxy:
        yield proxy


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    for name, text in RULES.items():
        (tmp_path / "rules" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "rules" / name).write_text(text)
    return tmp_path / "rules"


def _setup(url: str, *extra: str) -> Any:
    return cli("setup", "--opensearch", url, "--log-format", "json", *extra)


def _ours(proxy: FaultProxy) -> dict[tuple[str, str], dict[str, Any]]:
    assert proxy.plugins is not None
    found = {monitor_key(d["monitor"]): d for d in proxy.plugins.monitors.values()}
    return {k: v for k, v in found.items() if k is not None}


def _ids(proxy: FaultProxy) -> dict[tuple[str, str], str]:
    assert proxy.plugins is not None
    found = {monitor_key(d["monitor"]): mid for mid, d in proxy.plugins.monitors.items()}
    return {k: v for k, v in found.items() if k is not None}


class TestAlerts:
    def test_a_fresh_2x_cluster_gets_every_monitor(self, cluster: FaultProxy) -> None:
        """The monitor search answers 404 index_not_found_exception before the first monitor:
        read as no monitors yet, and all four are created, posting to the fixed channel; the
        ClickOps volume monitor notifies at most once a day."""
        run = _setup(cluster.url, "--alerts", "--webhook", "https://hooks.example.com/a")
        assert 0 == run.code, run.stderr[-2000:]
        assert cluster.plugins is not None
        first_search = cluster.plugins.calls.index(("POST", "/_plugins/_alerting/monitors/_search"))
        assert ("POST", "/_plugins/_alerting/monitors") == cluster.plugins.calls[first_search + 1]
        channel = "ct-ingest-cloudtrail-webhook"
        assert "https://hooks.example.com/a" == cluster.plugins.configs[channel]["webhook"]["url"]
        monitors = _ours(cluster)
        assert {"clickops-volume", "console-write-to-resource", "root-activity",
                "console-signin-without-mfa"} == {key for _, key in monitors}  # fmt: skip
        actions = [
            a
            for d in monitors.values()
            for t in d["monitor"]["triggers"]
            for a in t["query_level_trigger"]["actions"]
        ]
        assert {channel} == {a["destination_id"] for a in actions}
        volume = monitors["cloudtrail", "clickops-volume"]["monitor"]["triggers"][0]
        action = volume["query_level_trigger"]["actions"][0]
        assert (True, {"value": 1440, "unit": "MINUTES"}) == (
            action["throttle_enabled"],
            action["throttle"],
        )
        assert (
            f"alerts: 4 monitors (4 created, 0 updated), posting to webhook channel {channel}"
            in (run.stdout)
        )

    def test_a_rerun_updates_and_never_duplicates(self, cluster: FaultProxy) -> None:
        """A second setup with another threshold and webhook updates the same monitors (same
        ids, new name and condition) and the same channel."""
        assert 0 == _setup(cluster.url, "--alerts", "--webhook", "https://a.example.com").code
        before = _ids(cluster)
        run = _setup(
            cluster.url, "--alerts", "--webhook", "https://b.example.com",
            "--clickops-threshold", "50",
        )  # fmt: skip
        assert 0 == run.code, run.stderr[-2000:]
        assert "(0 created, 4 updated)" in run.stdout
        assert cluster.plugins is not None
        after = _ids(cluster)
        assert before == after
        volume = cluster.plugins.monitors[after["cloudtrail", "clickops-volume"]]
        assert 2 == volume["_version"]
        assert "ct-ingest: more than 50 ClickOps events in 24 h" == volume["monitor"]["name"]
        assert ["ct-ingest-cloudtrail-webhook"] == list(cluster.plugins.configs)
        assert (
            "https://b.example.com"
            == cluster.plugins.configs["ct-ingest-cloudtrail-webhook"]["webhook"]["url"]
        )

    def test_monitors_of_an_earlier_version_are_taken_over(self, cluster: FaultProxy) -> None:
        """A monitor named as before this version (threshold in the name, no key) is updated
        in place, not installed a second time."""
        old = render_monitors(alias="cloudtrail", threshold=20)[0]
        del old["ui_metadata"]
        client = OpenSearch(hosts=[cluster.url])
        try:
            client.transport.perform_request("POST", "/_plugins/_alerting/monitors", body=old)
        finally:
            client.close()
        run = _setup(cluster.url, "--alerts", "--webhook", "https://a.example.com")
        assert "(3 created, 1 updated)" in run.stdout, run.stdout
        assert cluster.plugins is not None
        assert 4 == len(cluster.plugins.monitors)

    def test_a_refused_monitor_is_an_error_naming_it(self, cluster: FaultProxy) -> None:
        """A 400 for a bad body surfaces as an error naming the monitor and the plugin's reason,
        never as a cluster without Alerting."""
        bad = render_monitors(alias="cloudtrail", channel_id="ct-ingest-cloudtrail-webhook")[2]
        bad["triggers"][0]["query_level_trigger"]["actions"][0]["throttle"] = {
            "value": 0,
            "unit": "MINUTES",
        }
        client = OpenSearch(hosts=[cluster.url])
        try:
            with pytest.raises(SinkError) as caught:
                install_monitors(client, [bad])
        finally:
            client.close()
        assert (
            "alerts: monitor 'ct-ingest: root user activity' refused (HTTP 400): "
            "Can only set positive throttle period"
        ) == str(caught.value)

    def test_without_the_plugins_one_line_and_setup_carries_on(
        self, opensearch_url: str, rules: Path
    ) -> None:
        """osmem-server lists no plugins (GET _cat/plugins): one line each for --alerts and
        --sigma, no monitor call, and setup succeeds."""
        run = _setup(
            opensearch_url, "--alerts", "--webhook", "https://a.example.com", "--sigma", str(rules)
        )
        assert 0 == run.code, run.stderr[-2000:]
        lines = [line for line in run.stdout.splitlines() if "alerts:" in line or "sigma:" in line]
        assert [
            "ct-ingest: alerts: not installed: OpenSearch 3.8.0 runs no opensearch-alerting or "
            "opensearch-notifications (GET _cat/plugins)",
            "ct-ingest: sigma: no monitors installed: OpenSearch 3.8.0 runs no "
            "opensearch-alerting or opensearch-notifications (GET _cat/plugins)",
        ] == lines


class TestSigma:
    def test_one_monitor_per_rule_and_a_rerun_is_idempotent(
        self, cluster: FaultProxy, rules: Path
    ) -> None:
        """Each converted rule becomes one query monitor (title, level as severity, tags, its
        query under the time filter), keyed by rule id; the rule that does not convert is one
        line; a rerun updates the same monitors."""
        run = _setup(cluster.url, "--sigma", str(rules))
        assert 0 == run.code, run.stderr[-2000:]
        assert "sigma: 2 rule monitors (2 created, 0 updated) (no --webhook: alerts only)" in (
            run.stdout
        )
        broken = [line for line in run.stdout.splitlines() if "broken.yml" in line]
        assert 1 == len(broken)
        assert "not converted: cannot read the rule: ParserError: " in broken[0]
        monitors = _ours(cluster)
        root = monitors["cloudtrail", "sigma:6a1d2e4f-0000-4000-8000-000000000001"]["monitor"]
        trigger = root["triggers"][0]["query_level_trigger"]
        assert ("ct-ingest sigma: Root console login", "2", []) == (
            root["name"],
            trigger["severity"],
            trigger["actions"],
        )
        assert ["attack.privilege_escalation"] == root["ui_metadata"]["ct_ingest"]["tags"]
        converted = {c.id: c.query for c in convert_paths([rules]) if c.query is not None}
        search = root["inputs"][0]["search"]["query"]["query"]["bool"]["filter"]
        assert converted["6a1d2e4f-0000-4000-8000-000000000001"] == search[1]
        stopped = monitors["cloudtrail", "sigma:6a1d2e4f-0000-4000-8000-000000000002"]
        assert "1" == stopped["monitor"]["triggers"][0]["query_level_trigger"]["severity"]
        assert cluster.plugins is not None
        ids = set(cluster.plugins.monitors)
        again = _setup(cluster.url, "--sigma", str(rules), "--webhook", "https://a.example.com")
        assert "sigma: 2 rule monitors (0 created, 2 updated), posting to webhook channel " in (
            again.stdout
        )
        assert ids == set(cluster.plugins.monitors)

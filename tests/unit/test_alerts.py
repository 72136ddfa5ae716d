"""The monitor bodies ct-ingest installs, as pure functions: Sigma rules as monitors, the stable
keys reruns find them by, and the channel's id."""

from __future__ import annotations

from ingest.ops.alerts import channel_id, monitor_key, render_monitors, sigma_monitors
from ingest.sigma.convert import Converted

QUERY = {"bool": {"filter": [{"term": {"eventName": "StopLogging"}}]}}


def _rule(rid: str, level: str | None = "high", error: str | None = None) -> Converted:
    query = None if error else QUERY
    return Converted(f"rules/{rid}.yml", rid, f"Rule {rid}", level, ("attack.t1562",), query, error)


class TestSigmaMonitors:
    def test_level_tags_and_query_are_carried(self) -> None:
        """The level becomes the trigger's severity (unknown or absent: medium), the tags the
        monitor's metadata, the query a filter beside the time window."""
        levels = ("critical", "high", "medium", "low", "informational", None, "odd")
        rules = [_rule(str(n), level) for n, level in enumerate(levels)]
        monitors, skipped = sigma_monitors(rules, alias="audit", channel_id="chan")
        assert [] == skipped
        assert ["1", "2", "3", "4", "5", "3", "3"] == [
            m["triggers"][0]["query_level_trigger"]["severity"] for m in monitors
        ]
        first = monitors[0]
        assert ("audit", "sigma:0") == monitor_key(first)
        assert ["attack.t1562"] == first["ui_metadata"]["ct_ingest"]["tags"]
        search = first["inputs"][0]["search"]
        assert (["audit"], QUERY) == (
            search["indices"],
            search["query"]["query"]["bool"]["filter"][1],
        )
        action = first["triggers"][0]["query_level_trigger"]["actions"][0]
        assert "chan" == action["destination_id"]
        assert (
            "Sigma rule Rule 0 (level critical, attack.t1562)"
            in action["message_template"]["source"]
        )

    def test_rules_without_a_monitor_are_one_line_each(self) -> None:
        """A rule not converted (its error on one line) and a second rule with the same id are
        skipped with a line; without a channel the triggers have no actions."""
        rules = [_rule("a"), _rule("b", error="bad\n  at line 2"), _rule("a")]
        monitors, skipped = sigma_monitors(rules, alias="cloudtrail")
        assert 1 == len(monitors)
        assert [] == monitors[0]["triggers"][0]["query_level_trigger"]["actions"]
        assert [
            "sigma: rules/b.yml: not converted: bad at line 2",
            "sigma: rules/a.yml: skipped: rule id a seen before",
        ] == skipped


class TestKeys:
    def test_builtin_monitors_are_keyed_by_file_and_alias(self) -> None:
        """Each built-in monitor's key is its file's name, whatever the threshold in its name."""
        keys = [monitor_key(m) for m in render_monitors(alias="audit", threshold=99)]
        assert [
            ("audit", "clickops-volume"),
            ("audit", "console-write-to-resource"),
            ("audit", "root-activity"),
            ("audit", "console-signin-without-mfa"),
        ] == keys

    def test_monitors_of_earlier_versions_by_name_and_others_not(self) -> None:
        """A monitor without the key is ours by its old name only."""
        old = {"name": "ct-ingest: more than 5 ClickOps events in 24 h",
               "inputs": [{"search": {"indices": ["cloudtrail"]}}]}  # fmt: skip
        assert ("cloudtrail", "clickops-volume") == monitor_key(old)
        assert None is monitor_key({"name": "someone else's", "ui_metadata": {"x": 1}})

    def test_channel_ids_take_only_the_characters_notifications_allows(self) -> None:
        """Letters, digits, _ and - (an alias with dots or stars gets dashes)."""
        assert "ct-ingest-cloudtrail-webhook" == channel_id("cloudtrail")
        assert "ct-ingest-audit-v2-x-webhook" == channel_id("audit.v2*x")

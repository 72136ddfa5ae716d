from __future__ import annotations

from datetime import date

from ingest.layout import TrailKind, is_log_name, parse_log_key


class TestParseLogKey:
    def test_plain_account_layout(self) -> None:
        """A log file's key gives its account, region, day and kind."""
        key = (
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/"
            "111122223333_CloudTrail_us-east-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json.gz"
        )
        got = parse_log_key(key)
        assert got is not None
        assert ("111122223333", "us-east-1", date(2024, 3, 5), TrailKind.LOGS, None) == (
            got.account,
            got.region,
            got.day,
            got.kind,
            got.org,
        )

    def test_organization_layout_under_a_prefix(self) -> None:
        """An organization trail adds o-ID before the account; a prefix may precede AWSLogs."""
        key = (
            "trails/AWSLogs/o-exampleorg1/444455556666/CloudTrail/eu-west-1/2024/03/05/"
            "444455556666_CloudTrail_eu-west-1_20240305T1410Z_Hy6cD1qE8uTs3KoP.json.gz"
        )
        got = parse_log_key(key)
        assert got is not None
        assert (got.org, got.account) == ("o-exampleorg1", "444455556666")

    def test_digest_check_file_and_strangers_are_not_log_files(self) -> None:
        """Digests, the writability check file and stray keys are not log files."""
        for key in (
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/05/"
            "111122223333_CloudTrail-Digest_us-east-1_acct-audit-trail_us-east-1_20240305T141500Z.json.gz",
            "AWSLogs/111122223333/CloudTrail/us-east-1/ConfigWritabilityCheckFile",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/notes.txt",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/02/30/"
            "111122223333_CloudTrail_us-east-1_20240230T1410Z_Qm7vR2kT9xLp4WaZ.json.gz",
            "elsewhere/111122223333_CloudTrail_us-east-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json.gz",
        ):
            assert None is parse_log_key(key), key

    def test_account_in_name_must_match_folder(self) -> None:
        """A file whose name names another account than its folder is not trusted as a log file."""
        key = (
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/"
            "999999999999_CloudTrail_us-east-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json.gz"
        )
        assert None is parse_log_key(key)

    def test_insight_files(self) -> None:
        """Insight files parse with their own kind."""
        key = (
            "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2024/03/05/"
            "111122223333_CloudTrail-Insight_us-east-1_20240305T1430Z_fX2gJ5nV7bM0wQeR.json.gz"
        )
        got = parse_log_key(key)
        assert got is not None
        assert got.kind == TrailKind.INSIGHT


class TestIsLogName:
    def test_agrees_with_parse_log_key_below_a_checked_day_folder(self) -> None:
        """A name below a day folder is a log file exactly when the whole key parses."""
        day = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/"
        names = [
            "111122223333_CloudTrail_us-east-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json.gz",
            "111122223333_CloudTrail_us-east-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json",
            "999999999999_CloudTrail_us-east-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json.gz",
            "111122223333_CloudTrail_eu-west-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json.gz",
            "111122223333_CloudTrail-Insight_us-east-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json.gz",
            "deeper/111122223333_CloudTrail_us-east-1_20240305T1410Z_Qm7vR2kT9xLp4WaZ.json.gz",
            "README.txt",
        ]
        expected = [parse_log_key(day + n) is not None for n in names]
        actual = [is_log_name(n, "111122223333", "CloudTrail", "us-east-1") for n in names]
        assert [True, True, False, False, False, False, False] == expected
        assert expected == actual

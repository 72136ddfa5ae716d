"""Sigma rules to OpenSearch query DSL, without a server: the field mapping of the pipeline, the
shape of the queries, the rules that cannot be expressed (an error line each, never a crash),
the ids, and ``ct-ingest sigma convert``'s lines and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.cli import app
from ingest.sigma import convert_paths
from ingest.sigma.convert import Converted
from ingest.sigma.pipeline import index_field

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RULES, BAD = FIXTURES / "sigma", FIXTURES / "sigma-bad"
_HEAD = "title: t\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel:\n"


def _rule(tmp_path: Path, selection: str, condition: str = "sel", name: str = "r.yml") -> Path:
    path = tmp_path / name
    path.write_text(f"{_HEAD}{selection}  condition: {condition}\n", encoding="utf-8")
    return path


def _one(tmp_path: Path, selection: str, condition: str = "sel") -> Converted:
    [converted] = convert_paths([_rule(tmp_path, selection, condition)])
    return converted


class TestFieldMapping:
    @pytest.mark.parametrize(
        ("sigma", "index"),
        [
            ("eventName", "eventName"),
            (
                "userIdentity.sessionContext.sessionIssuer.userName",
                "userIdentity.sessionContext.sessionIssuer.userName",
            ),
            ("userAgent", "userAgent.keyword"),  # text: its keyword sub-field
            ("errorMessage", "errorMessage.keyword"),
            ("requestParameters.bucketName", "ct.flat.request.bucketName"),
            (
                "responseElements.credentials.accessKeyId",
                "ct.flat.response.credentials.accessKeyId",
            ),
            ("additionalEventData.MFAUsed", "ct.flat.additional.MFAUsed"),
            ("serviceEventDetails", "ct.flat.service_event"),
            ("requestParameters", "ct.flat.request"),  # the whole object
            ("user_agent.original", "userAgent.keyword"),  # an alias, resolved
            ("event.action", "eventName"),
            ("status", "event.outcome"),  # SigmaHQ names CloudTrail does not write
            ("src_ip", "source.ip"),
        ],
    )
    def test_sigma_field_to_index_field(self, sigma: str, index: str) -> None:
        """Each field family lands where ct-ingest indexes it."""
        assert index == index_field(sigma)


class TestQueries:
    def test_strings_are_case_insensitive_terms_and_wildcards(self, tmp_path: Path) -> None:
        """Plain values are terms, wildcards (contains, startswith) wildcard queries, both with
        case_insensitive; AND is one bool filter."""
        c = _one(tmp_path, "    eventName: consolelogin\n    userAgent|contains: 'Windows NT'\n")
        assert {
            "bool": {
                "filter": [
                    {"term": {"eventName": {"value": "consolelogin", "case_insensitive": True}}},
                    {
                        "wildcard": {
                            "userAgent.keyword": {"value": "*Windows NT*", "case_insensitive": True}
                        }
                    },
                ]
            }
        } == c.query

    def test_cased_strings_prefixes_and_escaped_wildcards(self, tmp_path: Path) -> None:
        """|cased drops case_insensitive; startswith is a prefix query (the value taken as is),
        other wildcards a wildcard query with a literal * escaped."""
        c = _one(
            tmp_path,
            "    eventName|cased|startswith: 'Get\\*'\n    eventSource|contains: 'a\\*b'\n",
        )
        assert [
            {"prefix": {"eventName": {"value": "Get*"}}},
            {"wildcard": {"eventSource": {"value": "*a\\*b*", "case_insensitive": True}}},
        ] == c.query["bool"]["filter"]  # type: ignore[index]

    def test_payload_equality_also_asks_the_exact_value(self, tmp_path: Path) -> None:
        """On a payload field, the exact term beside the case-insensitive one (older
        flat_object answers the latter with nothing)."""
        c = _one(tmp_path, "    additionalEventData.MFAUsed: 'NO'\n")
        field = "ct.flat.additional.MFAUsed"
        assert {
            "bool": {
                "should": [
                    {"term": {field: {"value": "NO"}}},
                    {"term": {field: {"value": "NO", "case_insensitive": True}}},
                ],
                "minimum_should_match": 1,
            }
        } == c.query

    def test_lists_are_should_and_all_is_filter(self, tmp_path: Path) -> None:
        """A list is a should with one to match; |all makes it a filter."""
        any_of = _one(tmp_path, "    eventName: [A, B]\n").query
        assert 1 == any_of["bool"]["minimum_should_match"]  # type: ignore[index]
        assert 2 == len(any_of["bool"]["should"])  # type: ignore[index]
        all_of = _one(tmp_path, "    errorMessage|contains|all: [a, b]\n").query
        assert 2 == len(all_of["bool"]["filter"])  # type: ignore[index]

    def test_regexp_is_unanchored_unless_the_rule_anchors_it(self, tmp_path: Path) -> None:
        """Sigma regular expressions search; Lucene's match whole terms."""
        c = _one(tmp_path, "    eventName|re: 'Put.*Policy$'\n    userIdentity.arn|re|i: '^arn'\n")
        assert [
            {"regexp": {"eventName": {"value": ".*Put.*Policy", "flags": "NONE"}}},
            {
                "regexp": {
                    "userIdentity.arn": {
                        "value": "arn.*",
                        "flags": "NONE",
                        "case_insensitive": True,
                    }
                }
            },
        ] == c.query["bool"]["filter"]  # type: ignore[index]

    def test_null_numbers_booleans_cidr_and_compare(self, tmp_path: Path) -> None:
        """null is a missing field; payload scalars are strings; cidr uses source.ip."""
        c = _one(
            tmp_path,
            "    userIdentity.invokedBy: null\n    requestParameters.maxCount: 20\n"
            "    requestParameters.force: true\n    readOnly: false\n"
            "    sourceIPAddress|cidr: 10.0.0.0/8\n    source.as.number|gte: 64500\n",
        )
        assert [
            {"bool": {"must_not": [{"exists": {"field": "userIdentity.invokedBy"}}]}},
            {"term": {"ct.flat.request.maxCount": {"value": "20"}}},
            {"term": {"ct.flat.request.force": {"value": "true"}}},
            {"term": {"readOnly": {"value": False}}},
            {"term": {"source.ip": "10.0.0.0/8"}},
            {"range": {"source.as.number": {"gte": 64500}}},
        ] == c.query["bool"]["filter"]  # type: ignore[index]

    def test_other_types_take_no_case_insensitive(self, tmp_path: Path) -> None:
        """Only keyword and payload fields get case_insensitive (ip or boolean would refuse it)."""
        c = _one(tmp_path, "    src_ip: 10.1.2.3\n    readOnly: 'true'\n")
        assert [
            {"term": {"source.ip": {"value": "10.1.2.3"}}},
            {"term": {"readOnly": {"value": "true"}}},
        ] == c.query["bool"]["filter"]  # type: ignore[index]

    def test_a_placeholder_without_values_matches_nothing(self, tmp_path: Path) -> None:
        """|expand of %name% with no values: an empty list, so a filter of it excludes nothing."""
        c = _one(
            tmp_path,
            "    eventName: ConsoleLogin\n  filter:\n    src_country|expand: '%Allowed%'\n",
            "sel and not filter",
        )
        nothing = {"bool": {"must_not": [{"match_all": {}}]}}
        [_, negated] = c.query["bool"]["filter"]  # type: ignore[index]
        assert {"bool": {"must_not": [nothing]}} == negated

    def test_fieldref_is_a_script_comparing_doc_values(self, tmp_path: Path) -> None:
        """Keyword fields compare case-insensitively, in Painless without params."""
        c = _one(tmp_path, "    recipientAccountId|fieldref: userIdentity.accountId\n")
        [query] = c.query["bool"]["filter"]  # type: ignore[index]
        source = query["script"]["script"]["source"]
        assert "doc['recipientAccountId'].value.equalsIgnoreCase(" in source
        assert "doc['userIdentity.accountId'].size() > 0" in source

    def test_conditions_with_filters(self, tmp_path: Path) -> None:
        """all of / not 1 of become filter and must_not."""
        c = _one(
            tmp_path,
            "    eventName: A\n  sel2:\n    eventSource: b\n"
            "  filter_x:\n    errorCode|exists: true\n",
            "all of sel* and not 1 of filter_*",
        )
        assert {
            "bool": {
                "filter": [
                    {"term": {"eventName": {"value": "A", "case_insensitive": True}}},
                    {"term": {"eventSource": {"value": "b", "case_insensitive": True}}},
                    {"bool": {"must_not": [{"exists": {"field": "errorCode"}}]}},
                ]
            }
        } == c.query

    def test_several_conditions_match_where_any_does(self, tmp_path: Path) -> None:
        """A condition list is one query: a should of the conditions' queries."""
        path = tmp_path / "two.yml"
        path.write_text(
            "title: t\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n"
            "  a:\n    eventName: A\n  b:\n    eventName: B\n  condition: [a, b]\n",
            encoding="utf-8",
        )
        [c] = convert_paths([path])
        assert c.query is not None
        assert 1 == c.query["bool"]["minimum_should_match"]
        assert 2 == len(c.query["bool"]["should"])


class TestErrors:
    @pytest.mark.parametrize(
        ("selection", "message"),
        [
            ("    eventName|sometimes: x\n", "Unknown modifier 'sometimes'"),
            ("    noSuchField: x\n", "'noSuchField' is not in ct-ingest's index"),
            ("    requestParameters.a|fieldref: eventName\n", "payload fields have no doc values"),
            ("    requestParameters.maxCount|gt: 3\n", "its values compare as strings"),
            ("    eventName|gte: 3\n", "its values compare as strings"),
            ("    - just a keyword\n", "keyword search"),
        ],
    )
    def test_a_rule_that_cannot_be_expressed_is_an_error_not_a_crash(
        self, tmp_path: Path, selection: str, message: str
    ) -> None:
        """The error says why; there is no query."""
        c = _one(tmp_path, selection)
        assert c.query is None
        assert message in (c.error or "")

    def test_bad_files_each_get_their_error(self) -> None:
        """Broken YAML, another log source, an unknown field or modifier: one error each."""
        converted = convert_paths([BAD])
        assert 4 == len(converted)
        assert all(c.query is None and c.error for c in converted)
        assert (
            "not a CloudTrail rule"
            in {c.rule: c.error for c in converted}[str(BAD / "not_cloudtrail.yml")]
        )


class TestIds:
    def test_rule_id_title_level_tags_are_carried(self) -> None:
        """What the rule says about itself is in the result."""
        [c] = convert_paths([RULES / "contains_multiword.yml"])
        assert ("0b5d8a10-0001-4c1e-9e6a-5a1d00000001", "low") == (c.id, c.level)
        assert ("Console sign-in from a Windows browser", ("attack.initial-access",)) == (
            c.title,
            c.tags,
        )

    def test_an_id_is_derived_from_the_path_below_the_directory(self, tmp_path: Path) -> None:
        """A rule without id gets the same id from wherever the directory is given."""
        (tmp_path / "a" / "sub").mkdir(parents=True)
        _rule(tmp_path / "a" / "sub", "    eventName: x\n")
        first = convert_paths([tmp_path / "a"])[0].id
        (tmp_path / "a").rename(tmp_path / "b")
        assert first == convert_paths([tmp_path / "b"])[0].id
        assert first != convert_paths([tmp_path / "b" / "sub"])[0].id  # another relative name


class TestConvertCommand:
    def test_one_line_per_rule_exit_0(self) -> None:
        """Every fixture rule converts: a JSON line with rule, id, title and query; exit 0."""
        result = CliRunner().invoke(app, ["sigma", "convert", str(RULES), "--format", "dsl"])
        assert 0 == result.exit_code, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(list(RULES.glob("*.yml"))) == len(lines)
        assert all({"rule", "id", "title", "query"} <= set(line) for line in lines)
        assert all("bool" in line["query"] for line in lines)

    def test_error_lines_and_exit_1(self) -> None:
        """Bad rules give error lines beside the good ones, and exit 1."""
        good = str(RULES / "mfa_nested.yml")
        result = CliRunner().invoke(app, ["sigma", "convert", good, str(BAD)])
        assert 1 == result.exit_code
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [True, False, False, False, False] == ["query" in line for line in lines]
        assert all("error" in line and "id" in line for line in lines[1:])

    def test_unknown_format(self) -> None:
        """Only dsl is offered."""
        result = CliRunner().invoke(app, ["sigma", "convert", str(RULES), "--format", "lucene"])
        assert 2 == result.exit_code

"""Reports from the index: the monthly ClickOps report and the least-privilege report of a
principal (following AssumeRole chains by access key, across accounts).

Every grouping pages through a composite aggregation, so the numbers are exact on millions of
events (no ``terms`` top-N approximation). Output is Markdown, CSV or JSON. Every search goes
through the OpenSearch boundary (:func:`ingest.cluster.opensearch_errors`), so a report fails
with :class:`~ingest.errors.SinkUnavailable` or :class:`~ingest.errors.SinkError` only.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from ingest.cluster import opensearch_errors

__all__ = [
    "ClickOpsReport",
    "PrincipalReport",
    "clickops_report",
    "composite",
    "granted_actions",
    "iam_action",
    "principal_report",
    "render",
]

_SERVICE_NAMES = {"monitoring": "cloudwatch", "email": "ses", "ec2messages": "ec2messages"}
_VERSION_SUFFIX = re.compile(r"\d{8}(v\d+)?$")


def iam_action(event_source: str, event_name: str) -> str:
    """``s3.amazonaws.com`` + ``PutBucketPolicy`` → ``s3:PutBucketPolicy`` (Lambda's dated API
    names lose their date: ``UpdateFunctionConfiguration20150331v2`` → ...Configuration)."""
    service = event_source.split(".", 1)[0]
    return f"{_SERVICE_NAMES.get(service, service)}:{_VERSION_SUFFIX.sub('', event_name)}"


def composite(
    client: Any,
    index: str,
    query: dict[str, Any],
    fields: list[str],
    *,
    sub: dict[str, Any] | None = None,
    page: int = 1000,
    missing: bool = False,
) -> Iterator[tuple[dict[str, Any], int, dict[str, Any]]]:
    """Every bucket of a composite aggregation over ``fields``, page by page:
    (key, doc_count, sub-aggregations); with ``missing``, documents without a field get a
    ``None`` key for it instead of being left out."""
    after: dict[str, Any] | None = None
    while True:
        comp: dict[str, Any] = {
            "size": page,
            "sources": [{f: {"terms": {"field": f, "missing_bucket": missing}}} for f in fields],
        }
        if after:
            comp["after"] = after
        agg: dict[str, Any] = {"composite": comp}
        if sub:
            agg["aggs"] = sub
        with opensearch_errors(f"search {index} (composite over {', '.join(fields)})"):
            res = client.search(
                index=index,
                body={"size": 0, "query": query, "aggs": {"g": agg}},
                params={"ignore_unavailable": "true"},
            )
        got = res.get("aggregations", {}).get("g", {})
        buckets = got.get("buckets", [])
        for b in buckets:
            yield b["key"], int(b["doc_count"]), b
        after = got.get("after_key")
        if not buckets or not after:
            return


def _range(since: datetime, until: datetime) -> dict[str, Any]:
    return {"range": {"@timestamp": {"gte": since.isoformat(), "lt": until.isoformat()}}}


def _count(client: Any, index: str, query: dict[str, Any]) -> int:
    with opensearch_errors(f"count {index}"):
        res = client.count(
            index=index, body={"query": query}, params={"ignore_unavailable": "true"}
        )
    return int(res["count"])


@dataclass
class ClickOpsReport:
    since: datetime
    until: datetime
    total: int
    previous: int
    by_user: list[tuple[str, int]]
    by_resource: list[tuple[str, str, int]]  # id, type, count
    by_service: list[tuple[str, int]]
    by_account: list[tuple[str, int]]
    accounts_without: list[str]

    @property
    def change(self) -> float | None:
        return None if self.previous == 0 else (self.total - self.previous) / self.previous


def clickops_report(
    client: Any, index: str, since: datetime, until: datetime, *, top: int = 20
) -> ClickOpsReport:
    window = _range(since, until)
    clickops = {"bool": {"filter": [window, {"term": {"ct.clickops": True}}]}}
    before = {
        "bool": {
            "filter": [_range(since - (until - since), since), {"term": {"ct.clickops": True}}]
        }
    }

    def ranked(fields: list[str]) -> list[tuple[Any, ...]]:
        rows = [
            (*(k[f] for f in fields), n) for k, n, _ in composite(client, index, clickops, fields)
        ]
        return sorted(rows, key=lambda r: (-r[-1], r[:-1]))

    by_account = ranked(["recipientAccountId"])
    active = {
        k["recipientAccountId"]
        for k, _, _ in composite(client, index, window, ["recipientAccountId"])
    }
    return ClickOpsReport(
        since=since,
        until=until,
        total=_count(client, index, clickops),
        previous=_count(client, index, before),
        by_user=ranked(["ct.actor.name"])[:top],
        by_resource=ranked(["ct.resource.id", "ct.resource.type"])[:top],
        by_service=ranked(["eventSource"])[:top],
        by_account=by_account,
        accounts_without=sorted(active - {a for a, _ in by_account}),
    )


# -- least privilege ---------------------------------------------------------------------------


@dataclass
class ActionUse:
    action: str
    count: int
    last_used: str
    via: list[str] = field(default_factory=list)  # "direct" or the role ARNs the calls came through


@dataclass
class PrincipalReport:
    principal: str
    since: datetime
    until: datetime
    actions: list[ActionUse]
    roles_assumed: list[str]
    granted: list[tuple[str, list[str]]] | None = None  # (granted pattern, used actions it allows)

    @property
    def unused_grants(self) -> list[str]:
        return [g for g, used in (self.granted or []) if not used]


def principal_report(
    client: Any,
    index: str,
    *,
    user: str | None,
    role: str | None,
    since: datetime,
    until: datetime,
    iam_details: dict[str, Any] | None = None,
    max_hops: int = 5,
) -> PrincipalReport:
    """The API actions a principal used, itself and through the roles it assumed (an AssumeRole
    issues an access key; later calls with that key are the principal's, in any account)."""
    window = _range(since, until)
    if user:
        seed: dict[str, Any] = {
            "bool": {
                "filter": [
                    window,
                    {"term": {"userIdentity.type": "IAMUser"}},
                    {"term": {"userIdentity.userName": user}},
                ]
            }
        }
    else:
        seed = {
            "bool": {
                "filter": [
                    window,
                    {"term": {"userIdentity.sessionContext.sessionIssuer.userName": role}},
                ]
            }
        }
    uses: dict[str, ActionUse] = {}
    roles: set[str] = set()
    query, via = seed, "direct"
    seen_keys: set[str] = set()
    for _ in range(max_hops + 1):
        for key, n, b in composite(
            client,
            index,
            query,
            ["eventSource", "eventName", "userIdentity.sessionContext.sessionIssuer.arn"]
            if via != "direct"
            else ["eventSource", "eventName"],
            sub={"last": {"max": {"field": "@timestamp"}}},
        ):
            action = iam_action(key["eventSource"], key["eventName"])
            last = b["last"].get("value_as_string") or ""
            use = uses.setdefault(action, ActionUse(action, 0, ""))
            use.count += n
            use.last_used = max(use.last_used, last)
            through = key.get("userIdentity.sessionContext.sessionIssuer.arn") or via
            if through not in use.via:
                use.via.append(through)
        issued: set[str] = set()
        key_field, role_field = (
            "responseElements.credentials.accessKeyId",
            "requestParameters.roleArn",
        )
        for k, _, _ in composite(
            client,
            index,
            {"bool": {"filter": [query, {"prefix": {"eventName": "AssumeRole"}}]}},
            [key_field, role_field],
            missing=True,  # a refused AssumeRole names a role but issues no key
        ):
            if k[key_field] is not None:
                issued.add(k[key_field])
            if k[role_field] is not None:
                roles.add(k[role_field])
        new = sorted(issued - seen_keys)
        if not new:
            break
        seen_keys |= set(new)
        query = {"bool": {"filter": [window, {"terms": {"userIdentity.accessKeyId": new}}]}}
        via = "assumed"
    actions = sorted(uses.values(), key=lambda u: (-u.count, u.action))
    report = PrincipalReport(user or role or "", since, until, actions, sorted(roles))
    if iam_details is not None:
        patterns = granted_actions(iam_details, user=user, role=role)
        report.granted = [
            (
                p,
                sorted(
                    a.action for a in actions if fnmatch.fnmatchcase(a.action.lower(), p.lower())
                ),
            )
            for p in patterns
        ]
    return report


def granted_actions(details: dict[str, Any], *, user: str | None, role: str | None) -> list[str]:
    """The Allow actions of every policy attached to the user (with its groups) or the role, from
    ``aws iam get-account-authorization-details`` JSON."""
    managed: dict[str, Any] = {
        p["Arn"]: next(
            (v["Document"] for v in p.get("PolicyVersionList", []) if v.get("IsDefaultVersion")), {}
        )
        for p in details.get("Policies", [])
    }
    docs: list[Any] = []

    def take(entity: dict[str, Any], inline_key: str) -> None:
        docs.extend(p.get("PolicyDocument", {}) for p in entity.get(inline_key, []))
        docs.extend(
            managed.get(p["PolicyArn"], {}) for p in entity.get("AttachedManagedPolicies", [])
        )

    if user:
        for u in details.get("UserDetailList", []):
            if u.get("UserName") == user:
                take(u, "UserPolicyList")
                for g in details.get("GroupDetailList", []):
                    if g.get("GroupName") in u.get("GroupList", []):
                        take(g, "GroupPolicyList")
    if role:
        for r in details.get("RoleDetailList", []):
            if r.get("RoleName") == role:
                take(r, "RolePolicyList")
    out: set[str] = set()
    for doc in docs:
        if isinstance(doc, str):
            from urllib.parse import unquote

            doc = orjson.loads(unquote(doc))
        statements = doc.get("Statement", []) if isinstance(doc, dict) else []
        for st in [statements] if isinstance(statements, dict) else statements:
            if st.get("Effect") == "Allow":
                acts = st.get("Action", [])
                out.update([acts] if isinstance(acts, str) else acts)
    return sorted(out)


# -- rendering ----------------------------------------------------------------------------------


def _table(head: list[str], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [
        "| " + " | ".join(f"{c:,}" if isinstance(c, int) else str(c) for c in r) + " |"
        for r in rows
    ]
    return "\n".join(lines)


def _sections(
    report: ClickOpsReport | PrincipalReport,
) -> tuple[str, dict[str, Any], list[tuple[str, list[str], list[tuple[Any, ...]]]]]:
    if isinstance(report, ClickOpsReport):
        change = "n/a" if report.change is None else f"{report.change:+.0%}"
        summary = {
            "clickops_events": report.total,
            "previous_period": report.previous,
            "change": change,
            "since": report.since.isoformat(),
            "until": report.until.isoformat(),
        }
        return (
            f"ClickOps report {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}",
            summary,
            [
                ("Who changes things by hand", ["user", "console writes"], report.by_user),
                (
                    "Resources changed from the console (candidates for IaC)",
                    ["resource", "type", "console writes"],
                    report.by_resource,
                ),
                ("Services", ["service", "console writes"], report.by_service),
                ("Accounts", ["account", "console writes"], report.by_account),
                (
                    "Accounts with no console writes (candidates for removing console access)",
                    ["account"],
                    [(a,) for a in report.accounts_without],
                ),
            ],
        )
    summary = {
        "principal": report.principal,
        "actions_used": len(report.actions),
        "roles_assumed": report.roles_assumed,
        "since": report.since.isoformat(),
    }
    sections: list[tuple[str, list[str], list[tuple[Any, ...]]]] = [
        (
            "Actions used",
            ["action", "calls", "last used", "via"],
            [(a.action, a.count, a.last_used, ", ".join(a.via)) for a in report.actions],
        )
    ]
    if report.granted is not None:
        summary["granted_never_used"] = len(report.unused_grants)
        sections.append(
            (
                "Granted actions",
                ["granted", "used as"],
                [(g, ", ".join(used) if used else "NEVER USED") for g, used in report.granted],
            )
        )
    return f"Least-privilege report for {report.principal}", summary, sections


def render(report: ClickOpsReport | PrincipalReport, fmt: str) -> str:
    title, summary, sections = _sections(report)
    if fmt == "json":
        return orjson.dumps(
            {
                "title": title,
                "summary": summary,
                "sections": {
                    name: [dict(zip(head, row, strict=True)) for row in rows]
                    for name, head, rows in sections
                },
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["section", "key", "value", "detail"])
        for k, v in summary.items():
            w.writerow(["summary", k, v, ""])
        for name, _, rows in sections:
            for row in rows:
                w.writerow([name, *row])
        return buf.getvalue()
    parts = [f"# {title}", "", *(f"- **{k}**: {v}" for k, v in summary.items())]
    for name, head, rows in sections:
        parts += ["", f"## {name}", "", _table(head, rows) if rows else "_none_"]
    return "\n".join(parts) + "\n"


def window(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``30d`` or a date for since; until defaults to now."""
    from ingest.config import parse_day

    def to_dt(text: str) -> datetime:
        m = re.fullmatch(r"(\d+)d", text.strip())
        if m:
            return now - timedelta(days=int(m[1]))
        day = parse_day(text)
        return datetime(day.year, day.month, day.day, tzinfo=now.tzinfo)

    return to_dt(since), to_dt(until) if until else now

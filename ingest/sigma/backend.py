"""A pySigma backend that turns a rule's condition into an OpenSearch query DSL object.

Each node of the condition becomes a query, never a string: AND is a ``bool.filter``, OR a
``bool.should`` (one must match), NOT a ``bool.must_not``. Values follow Sigma's semantics:

- strings match case-insensitively (``case_insensitive`` on ``term``, ``prefix`` and ``wildcard``
  of keyword and payload fields; the other types refuse it and have no case), unless ``|cased``;
  ``*``/``?`` are wildcards, ``contains``/``startswith``/``endswith`` arrive here as wildcards
  and ``abc*`` becomes a ``prefix`` query; lists are ORs, ``|all`` ANDs; a placeholder
  (``|expand`` of ``%name%``) with no values given is an empty list, matching nothing;
- on a payload field an equality also asks for the exact value: ``flat_object`` before
  OpenSearch 2.17 answers a case-insensitive term with nothing;
- ``|re`` is a ``regexp`` query, unanchored unless the rule anchors it with ``^``/``$``,
  case-insensitive with ``|re|i``; ``|cidr`` a ``term`` on the ``ip`` field (``sourceIPAddress``
  is matched through ``source.ip``), ``|lt``/``|gte``… a ``range`` on numeric and date fields;
- numbers and booleans are ``term`` queries (as strings in the ``flat_object`` copies, where every
  leaf is a string), ``null`` is a missing field, ``|exists`` the ``exists`` query;
- ``|fieldref`` is a script query comparing the two fields' doc values (case-insensitively for
  strings); it needs fields with doc values, so not the payloads' ``flat_object`` copies.

A field the index does not map is an error (the rule could never match), as are the features
OpenSearch has no query for here (keyword searches without a field, timestamp parts,
correlations).
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn, cast

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import Backend
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from ingest.sigma.pipeline import FLAT_PREFIX, field_types

__all__ = ["DslBackend", "Query"]

Query = dict[str, Any]
_RANGE = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
}
_ORDERED = ("long", "integer", "short", "byte", "double", "float", "half_float", "date")
_IP_TWIN = {"sourceIPAddress": "source.ip"}  # a keyword field, and the ip field derived from it
_NOTHING: Query = {"bool": {"must_not": [{"match_all": {}}]}}


def _unsupported(what: str) -> NoReturn:
    raise SigmaFeatureNotSupportedByBackendError(what)


def _bool(kind: str, queries: list[Query]) -> Query:
    """``bool`` of one kind, with nested ``bool``s of the same single kind folded in."""
    flat: list[Query] = []
    for q in queries:
        inner = q.get("bool", {})
        if kind != "must_not" and list(inner) in ([kind], [kind, "minimum_should_match"]):
            flat += inner[kind]
        else:
            flat.append(q)
    body: Query = {kind: flat}
    if kind == "should":
        body["minimum_should_match"] = 1
    return {"bool": body}


def _correlation(self: Backend, *args: Any, **kwargs: Any) -> NoReturn:
    _unsupported("correlation rules")


def _is_flat(field: str) -> bool:
    return field.startswith(FLAT_PREFIX)


def _check(field: str) -> str:
    """The field, if the index maps it (a payload's path always is, inside its copy)."""
    if not _is_flat(field) and field not in field_types():
        _unsupported(f"field {field!r} is not in ct-ingest's index (the rule could never match)")
    return field


def _literal_prefix(value: SigmaString) -> str | None:
    """``abc*`` (a ``startswith``): the literal before the one trailing wildcard."""
    *head, last = value.s
    if head and last is SpecialChars.WILDCARD_MULTI and all(isinstance(p, str) for p in head):
        return "".join(str(p) for p in head)
    return None


def _string(field: str, value: SigmaString, *, cased: bool) -> Query:
    if value.contains_placeholder():  # %name% with no values given: an empty list
        return _NOTHING
    text_like = _is_flat(field) or field_types().get(field) == "keyword"
    options: dict[str, Any] = {"case_insensitive": True} if text_like and not cased else {}
    if not value.contains_special():
        term = {"term": {field: {"value": value.to_plain(), **options}}}
        if _is_flat(field) and options:
            # flat_object before OpenSearch 2.17 answers a case-insensitive term with nothing
            # (it looks in the wrong sub-field): the exact value still matches there
            return _bool("should", [{"term": {field: {"value": value.to_plain()}}}, term])
        return term
    prefix = _literal_prefix(value)
    if prefix is not None:  # flat_object takes prefix queries since 2.7, wildcards since 2.18
        return {"prefix": {field: {"value": prefix, **options}}}
    pattern = value.convert(escape_char="\\", add_escaped="\\")
    return {"wildcard": {field: {"value": pattern, **options}}}


def _scalar(field: str, value: Any) -> Query:
    """A number or boolean; the flat_object copies hold every leaf as a string."""
    if _is_flat(field):
        value = str(value).lower() if isinstance(value, bool) else str(value)
    return {"term": {field: {"value": value}}}


def _regexp(field: str, value: SigmaRegularExpression) -> Query:
    pattern = str(value.regexp)
    pattern = pattern[1:] if pattern.startswith("^") else ".*" + pattern
    anchored = pattern.endswith("$") and not pattern.endswith("\\$")
    if anchored:
        pattern = pattern[:-1]
    elif not pattern.endswith(".*"):
        pattern += ".*"
    body: Query = {"value": pattern, "flags": "NONE"}  # Lucene's extra operators off: PCRE-like
    if SigmaRegularExpressionFlag.IGNORECASE in value.flags:
        body["case_insensitive"] = True
    return {"regexp": {field: body}}


def _painless_doc(field: str) -> str:
    return "doc['" + field.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _fieldref(left: str, ref: SigmaFieldReference) -> Query:
    """A script comparing two fields' first values; Painless as the smallest engines take it
    (field names inline, no ``params``, no ``def``)."""
    right = _check(ref.field)
    if _is_flat(left) or _is_flat(right):
        _unsupported(f"|fieldref between {left!r} and {right!r}: payload fields have no doc values")
    a, b = _painless_doc(left), _painless_doc(right)
    present = f"{a}.size() > 0 && {b}.size() > 0"
    types = field_types()
    if types[left] != "keyword" or types[right] != "keyword":
        test = f"{a}.value == {b}.value"
    elif ref.starts_with or ref.ends_with:
        method = "startsWith" if ref.starts_with else "endsWith"
        test = f"{a}.value.toLowerCase().{method}({b}.value.toLowerCase())"
    else:
        test = f"{a}.value.equalsIgnoreCase({b}.value)"
    return {"script": {"script": {"source": f"{present} && {test}", "lang": "painless"}}}


class DslBackend(Backend):
    """Sigma rules to OpenSearch query DSL objects (one ``{"bool": ...}`` per rule)."""

    name: ClassVar[str] = "ct-ingest OpenSearch query DSL"
    identifier: ClassVar[str] = "ct_ingest_dsl"
    formats: ClassVar[dict[str, str]] = {"default": "OpenSearch query DSL objects"}
    requires_pipeline: ClassVar[bool] = True

    # -- the condition's structure
    def convert_condition_and(self, cond: ConditionAND, state: ConversionState) -> Query:
        return _bool("filter", [self.convert_condition(a, state) for a in cond.args])

    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> Query:
        return _bool("should", [self.convert_condition(a, state) for a in cond.args])

    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> Query:
        return _bool("must_not", [self.convert_condition(a, state) for a in cond.args])

    def convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> Query:
        _unsupported("in-expressions")  # never chosen: convert_or_as_in is off

    # -- field = value
    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        value = cast(SigmaString, cond.value)  # pySigma dispatches by the value's type
        return _string(_check(cond.field), value, cased=isinstance(value, SigmaCasedString))

    convert_condition_field_eq_val_str_case_sensitive = convert_condition_field_eq_val_str

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        return _scalar(_check(cond.field), cast(SigmaNumber, cond.value).number)

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        return _scalar(_check(cond.field), cast(SigmaBool, cond.value).boolean)

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        return _regexp(_check(cond.field), cast(SigmaRegularExpression, cond.value))

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        cidr = cast(SigmaCIDRExpression, cond.value)
        field = _check(cond.field)
        field = _IP_TWIN.get(field, field)
        if field_types().get(field) != "ip":
            _unsupported(f"|cidr on {field!r}: not an ip field")
        return {"term": {field: str(cidr.network)}}

    def convert_condition_field_compare_op_val(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        value = cast(SigmaCompareExpression, cond.value)
        field = _check(cond.field)
        if _is_flat(field) or field_types()[field] not in _ORDERED:  # "9" > "10" as strings
            _unsupported(f"|lt/|gt... on {field!r}: its values compare as strings")
        if value.op is CompareOperators.NEQ:
            return _bool("must_not", [_scalar(field, value.number.number)])
        return {"range": {field: {_RANGE[value.op]: value.number.number}}}

    def convert_condition_field_eq_field(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        return _fieldref(_check(cond.field), cast(SigmaFieldReference, cond.value))

    def convert_condition_field_eq_val_null(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        return _bool("must_not", [{"exists": {"field": _check(cond.field)}}])

    def convert_condition_field_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        return {"exists": {"field": _check(cond.field)}}

    def convert_condition_field_not_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        return self.convert_condition_field_eq_val_null(cond, state)

    def convert_condition_field_eq_val_timestamp_part(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        _unsupported("timestamp parts (|minute, |hour...)")

    def convert_condition_field_eq_query_expr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Query:
        _unsupported("query expressions")

    # -- values without a field
    def convert_condition_val_str(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> Query:
        _unsupported("keyword searches (a value without a field)")

    convert_condition_val_num = convert_condition_val_str
    convert_condition_val_re = convert_condition_val_str
    convert_condition_query_expr = convert_condition_val_str

    # -- the whole rule
    def finalize_query_default(
        self, rule: SigmaRule, query: Any, index: int, state: ConversionState
    ) -> Query:
        return query if "bool" in query else {"bool": {"filter": [query]}}

    def finalize_output_default(self, queries: list[Any]) -> list[Query]:
        return queries

    # -- correlation rules: none
    convert_correlation_event_count_rule = _correlation
    convert_correlation_value_count_rule = _correlation
    convert_correlation_temporal_rule = _correlation
    convert_correlation_temporal_ordered_rule = _correlation
    convert_correlation_extended_temporal_rule = _correlation
    convert_correlation_extended_temporal_ordered_rule = _correlation
    convert_correlation_value_sum_rule = _correlation
    convert_correlation_value_avg_rule = _correlation
    convert_correlation_value_percentile_rule = _correlation
    convert_correlation_value_median_rule = _correlation

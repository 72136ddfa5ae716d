"""Who is behind a call: the human or workload, from ``userIdentity``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

__all__ = ["actor", "permission_set"]

_SSO_PATH = "/aws-reserved/sso.amazonaws.com/"
_SSO_PREFIX = "AWSReservedSSO_"
_HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"


def permission_set(role_name: str) -> str:
    """``AWSReservedSSO_AdministratorAccess_7c1e2f9a4b3d5e60`` → ``AdministratorAccess``."""
    name = role_name.removeprefix(_SSO_PREFIX)
    head, sep, tail = name.rpartition("_")
    return head if sep and len(tail) == 16 and all(c in "0123456789abcdef" for c in tail) else name


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _after_colon(principal_id: str | None) -> str | None:
    if principal_id and ":" in principal_id:
        return principal_id.split(":", 1)[1] or None
    return None


def actor(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    """``{"actor": {name, type, account_id, role, session, permission_set, ...}}`` or nothing
    (a shared dict: do not change it)."""
    ui = record.get("userIdentity")
    if not isinstance(ui, dict) or not ui:
        return {}
    ctx = ui.get("sessionContext")
    if isinstance(ctx, dict):
        issuer = ctx.get("sessionIssuer")
        source_identity = ctx.get("sourceIdentity")
    else:
        issuer = source_identity = None
    if isinstance(issuer, dict):
        issuer_name, issuer_arn = issuer.get("userName"), issuer.get("arn")
    else:
        issuer_name = issuer_arn = None
    key = (
        ui.get("type"),
        ui.get("accountId"),
        record.get("recipientAccountId"),
        issuer_name,
        issuer_arn,
        source_identity,
        ui.get("userName"),
        ui.get("arn"),
        ui.get("principalId"),
        ui.get("invokedBy"),
        ui.get("identityProvider"),
        isinstance(ui.get("onBehalfOf"), dict),
        record.get("eventSource"),
    )
    try:
        return _actor(*key)
    except TypeError:  # an unhashable value (never in CloudTrail): not cached
        return _actor.__wrapped__(*key)


@lru_cache(maxsize=4096)  # untyped: a value that is not a string counts as absent
def _actor(
    type_: Any,
    account_id: Any,
    recipient: Any,
    issuer_name: Any,
    issuer_arn: Any,
    source_identity: Any,
    user_name: Any,
    arn: Any,
    principal: Any,
    invoked_by: Any,
    provider: Any,
    on_behalf: bool,
    event_source: Any,
) -> dict[str, Any]:
    """:func:`actor` on the values it reads (cached: a principal makes many calls)."""
    kind = _s(type_)
    account = _s(account_id) or _s(recipient)
    out: dict[str, Any] = {"account_id": account}
    issuer_name = _s(issuer_name)
    source_identity = _s(source_identity)

    if kind == "IAMUser":
        name = _s(user_name)
        out.update(type="iam-user", name="unknown" if name in (None, _HIDDEN) else name)
    elif kind == "AssumedRole":
        arn = _s(arn) or ""
        session = _after_colon(_s(principal)) or arn.rsplit("/", 1)[-1] or None
        role = issuer_name or (arn.split("/")[1] if arn.count("/") >= 2 else None)
        sso = bool(role and role.startswith(_SSO_PREFIX)) or _SSO_PATH in (_s(issuer_arn) or "")
        out.update(
            type="sso-user" if sso else "assumed-role", name=session, role=role, session=session
        )
        if sso and role:
            out["permission_set"] = permission_set(role)
    elif kind == "Root":
        out.update(type="root", name="root")
    elif kind == "AWSService" or (kind is None and _s(invoked_by)):
        invoked = _s(invoked_by) or ""
        name = invoked if invoked.endswith(".amazonaws.com") else _s(event_source)
        out.update(type="aws-service", name=name or invoked or None)
    elif kind == "SAMLUser":
        out.update(type="saml-user", name=_s(user_name), provider=_s(provider))
    elif kind == "WebIdentityUser":
        out.update(type="web-identity-user", name=_s(user_name), provider=_s(provider))
    elif kind == "FederatedUser":
        out.update(type="federated-user", name=_after_colon(_s(principal)), role=issuer_name)
    elif kind == "AWSAccount":
        out.update(type="aws-account", name=_after_colon(_s(principal)) or account)
    elif kind == "IdentityCenterUser" or on_behalf:
        out.update(type="identity-center-user", name=_s(user_name))
    else:
        out.update(type=(kind or "unknown").lower(), name=_s(user_name))
    if source_identity:
        out["source_identity"] = source_identity
    return {"actor": {k: v for k, v in out.items() if v is not None}}

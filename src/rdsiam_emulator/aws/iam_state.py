"""Reading moto's in-process IAM/STS state: key id → credential + principal, principal → policies.

moto keeps IAM per account and partition (``iam_backends[account]["aws"]``) and STS sessions per
account (``sts_backends[account][partition].assumed_roles``). The endpoint reads this from its own
thread while tests change it, so every read copies (``list(...)``) and retries once if moto changed
a dict underneath; nothing here writes to moto (``patches`` records at issue time instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from rdsiam_emulator.aws import patches as moto_patches
from rdsiam_emulator.iam.evaluator import Layer, PolicyRef
from rdsiam_emulator.iam.organizations import moto_org_for
from rdsiam_emulator.iam.principals import MotoCredential, Principal, PrincipalPolicies

T = TypeVar("T")


def _retry(read: Callable[[], T]) -> T:
    """moto's dicts may change size under us (another thread); one retry settles it."""
    for _ in range(3):
        try:
            return read()
        except RuntimeError:
            continue
    return read()


def _aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _iam_backends() -> Iterator[tuple[str, str, Any]]:
    from moto.iam.models import iam_backends

    for account_id, by_partition in list(iam_backends.items()):
        for partition, backend in list(by_partition.items()):
            yield account_id, partition, backend


def _sts_backends() -> Iterator[Any]:
    from moto.sts.models import sts_backends

    for _account_id, by_partition in list(sts_backends.items()):
        yield from list(by_partition.values())


class MotoCredentials:
    """``CredentialLookup`` over moto's in-process state (``mock_aws`` or ThreadedMotoServer).

    Resolves IAM user keys (any account), AssumeRole / AssumeRoleWithWebIdentity /
    AssumeRoleWithSAML sessions, and GetSessionToken / GetFederationToken credentials issued while
    ``moto_patches`` is installed (constructing this class installs it, each patch when moto
    imports the service it changes).
    """

    def __init__(self, *, install_patches: bool = True) -> None:
        if install_patches:
            moto_patches.install_when_imported()

    def lookup(self, access_key_id: str) -> MotoCredential | None:
        """What moto's IAM/STS state holds for ``access_key_id`` (user key, or temporary credentials
        with their session token and expiry, aware UTC), or None when no account knows it.
        """
        return _retry(lambda: self._lookup(access_key_id))

    def _lookup(self, akid: str) -> MotoCredential | None:
        for account_id, partition, backend in _iam_backends():
            key = backend.access_keys.get(akid)
            if key is None:
                continue
            if key.user_name is not None:
                return self._user_key(account_id, partition, backend, key)
            # AssumeRoleWithSAML keys carry no role_arn in moto: search the sessions either way
            return self._role_session(akid, key) or self._token_session(akid, key)
        return None

    @staticmethod
    def _user_key(account_id: str, partition: str, backend: Any, key: Any) -> MotoCredential:
        user = backend.users.get(key.user_name)
        arn = (
            user.arn if user is not None
            else f"arn:{partition}:iam::{account_id}:user/{key.user_name}"
        )
        principal = Principal(
            "User", arn, account_id, partition, user_name=key.user_name,
            user_id=None if user is None else user.id, source="iam-user",
        )
        return MotoCredential(
            access_key_id=key.access_key_id, secret_access_key=key.secret_access_key,
            active=key.status == "Active", principal_arn=arn, account_id=account_id,
            source="iam-user", principal=principal,
        )

    @staticmethod
    def _role_session(akid: str, key: Any) -> MotoCredential | None:
        for sts in _sts_backends():
            for role in list(sts.assumed_roles):
                if role.access_key_id != akid:
                    continue
                record: moto_patches.SessionRecord | None = getattr(role, "rdsiam_session", None)
                # no record: issued before moto_patches was installed (PolicyArns/Tags unknown)
                api = record.api if record is not None else "AssumeRole (unrecorded)"
                policy = role.policy or (record.policy if record is not None else None)
                arns = record.policy_arns if record is not None else ()
                principal = Principal(
                    "AssumedRole", role.arn, role.account_id, role.partition,
                    role_arn=role.role_arn, session_name=role.session_name,
                    user_id=_role_user_id(role),
                    session_policy=policy or None, session_policy_arns=arns,
                    session_layer=bool(policy) or bool(arns),
                    session_tags=record.tags if record is not None else (),
                    issued_at=record.issued_at if record is not None else None,
                    mfa_present=record.mfa if record is not None else False,
                    source=f"sts:{api}",
                )
                return MotoCredential(
                    access_key_id=akid, secret_access_key=role.secret_access_key,
                    session_token=role.session_token, active=key.status == "Active",
                    expires_at=_aware(role.expiration), principal_arn=role.arn,
                    account_id=role.account_id, source=f"sts:{api}", principal=principal,
                )
        return None

    @staticmethod
    def _token_session(akid: str, key: Any) -> MotoCredential | None:
        for sts in _sts_backends():
            tokens: dict[str, moto_patches.SessionRecord] = sts.__dict__.get("rdsiam_tokens", {})
            record = tokens.get(akid)
            if record is None:
                continue
            if record.account_id is None or record.user_arn is None:
                continue  # not a record this module wrote; never guess a principal
            partition = record.user_arn.split(":", 2)[1]
            if record.api == "GetFederationToken":
                name = record.federated_name
                arn = f"arn:{partition}:sts::{record.account_id}:federated-user/{name}"
                principal = Principal(
                    "FederatedUser", arn, record.account_id, partition,
                    user_name=record.user_name, user_id=f"{record.account_id}:{name}",
                    session_policy=record.policy or None, session_policy_arns=record.policy_arns,
                    session_layer=True, session_tags=record.tags, issued_at=record.issued_at,
                    mfa_present=False, source="sts:GetFederationToken",
                )
            else:
                arn = record.user_arn
                principal = Principal(
                    "User", arn, record.account_id, partition, user_name=record.user_name,
                    issued_at=record.issued_at, mfa_present=record.mfa,
                    source="sts:GetSessionToken",
                )
            return MotoCredential(
                access_key_id=akid, secret_access_key=key.secret_access_key,
                session_token=record.session_token, active=key.status == "Active",
                expires_at=record.expires_at, principal_arn=arn, account_id=record.account_id,
                source=principal.source, principal=principal,
            )
        return None


def _role_user_id(role: Any) -> str:
    try:
        return str(role.user_id)
    except Exception:
        return f"AROA:{role.session_name}"


# -------------------------------------------------------------------------------------- policies


def _default_document(policy: Any) -> str | None:
    for version in list(policy.versions):
        if version.is_default:
            return str(version.document)
    return None


def _managed(backend: Any, arn: str, layer: Layer, notes: list[str]) -> PolicyRef | None:
    policy = backend.managed_policies.get(arn)
    if policy is None:
        notes.append(f"managed policy {arn} does not exist")
        return None
    document = _default_document(policy)
    if document is None:
        notes.append(f"managed policy {arn} has no default version")
        return None
    return PolicyRef(f"managed policy {policy.name!r}", document, layer, arn)


class MotoPolicySource:
    """``PolicySource`` reading moto's in-process IAM backends (fresh on every call)."""

    def policies_for(self, principal: Principal) -> PrincipalPolicies:
        """The principal's policies, boundary and tags as moto's in-process IAM state holds them
        now; policies that cannot be found are reported in the result's ``notes``.
        """
        return _retry(lambda: self._policies_for(principal))

    def _policies_for(self, principal: Principal) -> PrincipalPolicies:
        from moto.iam.models import iam_backends

        backend = iam_backends[principal.account_id][principal.partition]
        notes: list[str] = []
        identity: list[PolicyRef] = []
        boundary: tuple[PolicyRef, ...] | None = None
        boundary_unknown = False
        unread: str | None = None
        tags: list[tuple[str, str]] = []
        user_id = principal.user_id
        if principal.type == "AssumedRole":
            role = _find_role(backend, principal.role_arn)
            if role is None:
                notes.append(f"role {principal.role_arn} does not exist")
            else:
                for name, doc in list(role.policies.items()):
                    identity.append(PolicyRef(f"inline policy {name!r} of role {role.name}", doc))
                for arn in list(role.managed_policies):
                    ref = _managed(backend, arn, "identity", notes)
                    if ref is not None:
                        identity.append(ref)
                if role.permissions_boundary_arn:
                    ref = _managed(backend, role.permissions_boundary_arn, "boundary", notes)
                    boundary = (ref,) if ref is not None else ()
                    unread = None if ref is not None else role.permissions_boundary_arn
                tags.extend((t["Key"], t["Value"]) for t in list(role.tags or []))
        else:
            user = backend.users.get(principal.user_name or "")
            if user is None:
                notes.append(f"user {principal.user_name} does not exist")
            else:
                user_id = user_id or user.id
                for name, doc in list(user.policies.items()):
                    identity.append(PolicyRef(f"inline policy {name!r} of user {user.name}", doc))
                for arn in list(user.managed_policies):
                    ref = _managed(backend, arn, "identity", notes)
                    if ref is not None:
                        identity.append(ref)
                for group in list(backend.groups.values()):
                    if not any(member.name == user.name for member in list(group.users)):
                        continue
                    for name, doc in list(group.policies.items()):
                        identity.append(
                            PolicyRef(f"inline policy {name!r} of group {group.name}", doc)
                        )
                    for arn in list(group.managed_policies):
                        ref = _managed(backend, arn, "identity", notes)
                        if ref is not None:
                            identity.append(ref)
                boundary_unknown = not user.__dict__.get(moto_patches.BOUNDARY_RECORDED)
                boundary_arn = user.__dict__.get("permissions_boundary_arn")
                if boundary_arn:
                    ref = _managed(backend, boundary_arn, "boundary", notes)
                    boundary = (ref,) if ref is not None else ()
                    unread = None if ref is not None else boundary_arn
                user_tags = backend.tagger.list_tags_for_resource(user.arn).get("Tags", [])
                tags.extend((t["Key"], t["Value"]) for t in user_tags)
        session = _session_policies(backend, principal, notes)
        merged = dict(tags)
        merged.update(dict(principal.session_tags))  # session tags override principal tags
        org = moto_org_for(principal.account_id, principal.partition)
        skipped: list[str] = []
        if principal.source.endswith("(unrecorded)"):
            skipped.append(
                "the session's PolicyArns and session tags: the session was issued before "
                "moto_patches was installed, so moto kept neither")
        if boundary_unknown:
            skipped.append(
                "user permissions boundary: the user was created before moto_patches was "
                "installed (moto drops CreateUser(PermissionsBoundary=…)); create it after "
                "MotoCredentials() or set it again with put_user_permissions_boundary")
        return PrincipalPolicies(
            tuple(identity), session, boundary, tuple(merged.items()), user_id,
            tuple(notes) + (org.notes if org is not None else ()),
            scp=None if org is None else org.scp,
            org=None if org is None else org.membership, skipped=tuple(skipped),
            boundary_unread=unread,
        )


def _find_role(backend: Any, role_arn: str | None) -> Any:
    if role_arn is None:
        return None
    for role in list(backend.roles.values()):
        if role.arn == role_arn:
            return role
    name = role_arn.rsplit("/", 1)[-1]  # an assumed-role ARN loses the path: match by name
    for role in list(backend.roles.values()):
        if role.name == name:
            return role
    return None


def _session_policies(
    backend: Any, principal: Principal, notes: list[str]
) -> tuple[PolicyRef, ...] | None:
    if not principal.session_layer:
        return None
    refs: list[PolicyRef] = []
    if principal.session_policy:
        refs.append(PolicyRef("inline session policy", principal.session_policy, "session"))
    for arn in principal.session_policy_arns:
        ref = _managed(backend, arn, "session", notes)
        if ref is not None:
            refs.append(ref)
    return tuple(refs)

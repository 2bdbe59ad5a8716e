"""The people API: who signs in (admins manage them), each person's own API tokens, and the
audit log (admins read it).

Served by ``tend web`` (and inside ``tend up``). Bearer-token auth. ``/v1/people`` and
``/v1/audit`` need the admin role; ``/v1/me`` and ``/v1/tokens`` are every person's own (the
admin token is nobody: it has no tokens of its own). A token is shown once, when it is made;
only its SHA-256 is kept. Every change here is in the audit log with its actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.web.deps import SessionDep
from shared.api_auth import CallerDep, require_role, require_token
from shared.api_errors import ApiError, ErrorRoute, error_responses, operation_id
from shared.api_input import MAX_BIGINT, is_id, storable, storable_params
from shared.db.models import AuditEntry, Person, PersonalToken
from shared.people import audit, directory
from shared.people.caller import Caller
from shared.people.directory import PeopleError

router = APIRouter(
    prefix="/v1",
    tags=["people"],
    dependencies=[Depends(require_token), Depends(storable_params)],
    route_class=ErrorRoute,
    generate_unique_id_function=operation_id,
    responses=error_responses(401, 403, 422),
)
ADMIN = [require_role("admin")]

RoleName = Literal["admin", "leader", "csm"]


class PersonOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None
    signs_in_with: list[str]


class PersonList(BaseModel):
    people: list[PersonOut]


class PersonCreated(PersonOut):
    password: str | None = Field(description="The password, shown this once (when made here).")


class Me(BaseModel):
    email: str
    name: str
    role: str
    person_id: int | None
    sees: Literal["every account", "their book", "every account, acting on their book"]


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class TokenList(BaseModel):
    tokens: list[TokenOut]


class TokenCreated(TokenOut):
    token: str = Field(description="The token, shown this once; only its hash is kept.")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_id: int | None
    action: str
    target: str | None
    account_id: str | None
    reason: str | None
    details: dict[str, Any]


class AuditList(BaseModel):
    total: int
    entries: list[AuditOut]


class _Storable(BaseModel):
    """Text fields that the database can store (no NUL, no lone surrogate): else a 422."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if isinstance(value, str) and not storable(value):
            raise ValueError("contains NUL or a lone surrogate")
        return value


class NewPerson(_Storable):
    email: str = Field(max_length=320, description="Also the CSM email of their book.")
    name: str = Field("", max_length=200)
    role: RoleName
    password: str | None = Field(
        None,
        min_length=12,
        max_length=200,
        description="At least 12 characters; unset: a random one is made and answered once.",
    )
    oidc_only: bool = Field(False, description="No password: sign-in by OIDC only.")


class PersonChange(_Storable):
    role: RoleName | None = None
    disabled: bool | None = Field(None, description="true ends their sessions and tokens now.")
    name: str | None = Field(None, min_length=1, max_length=200)


class NewToken(_Storable):
    name: str = Field(min_length=1, max_length=200, description="What the token is for.")


def person_json(p: Person) -> dict[str, Any]:
    ways = (["password"] if p.password_hash else []) + (["oidc"] if p.oidc_subject else [])
    return {
        "id": p.id,
        "email": p.email,
        "name": p.name,
        "role": p.role,
        "created_at": p.created_at,
        "disabled_at": p.disabled_at,
        "signs_in_with": ways,
    }


def token_json(t: PersonalToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "created_at": t.created_at,
        "revoked_at": t.revoked_at,
    }


def audit_json(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "actor_id": e.actor_id,
        "action": e.action,
        "target": e.target,
        "account_id": e.account_id,
        "reason": e.reason,
        "details": e.details,
    }


def _invalid(err: PeopleError) -> ApiError:
    return ApiError.invalid(err.field, err.problem)


def _person_id(caller: Caller) -> int:
    if caller.person_id is None:
        raise HTTPException(403, detail="the admin token is nobody: sign in as a person")
    return caller.person_id


@router.get("/me", summary="Who this token acts as", response_model=Me)
async def me(caller: CallerDep) -> dict[str, Any]:
    sees = "every account" if caller.sees_all else "their book"
    if not caller.sees_all and caller.read_all:
        sees = "every account, acting on their book"
    return {
        "email": caller.email,
        "name": caller.name,
        "role": caller.role,
        "person_id": caller.person_id,
        "sees": sees,
    }


@router.get(
    "/people",
    summary="Everyone who signs in (admin)",
    response_model=PersonList,
    dependencies=ADMIN,
)
async def list_people(session: SessionDep) -> dict[str, Any]:
    return {"people": [person_json(p) for p in await directory.list_people(session)]}


@router.post(
    "/people",
    summary="Add a person (admin)",
    response_model=PersonCreated,
    status_code=201,
    dependencies=ADMIN,
    responses=error_responses(409),
)
async def add_person(
    body: Annotated[NewPerson, Body()], session: SessionDep, caller: CallerDep
) -> dict[str, Any]:
    password = None if body.oidc_only else (body.password or directory.generate_password())
    try:
        address = directory.normal_email(body.email)
        if await directory.find_person(session, address) is not None:
            raise ApiError.conflict(f"email: {address} already exists")
        person = await directory.add_person(session, address, body.name, body.role, password)
    except PeopleError as err:
        raise _invalid(err) from None
    audit.record(
        session, caller, "person.add", target=f"person:{person.email}", details={"role": body.role}
    )
    await session.commit()
    return {**person_json(person), "password": password if body.password is None else None}


@router.patch(
    "/people/{person_id}",
    summary="Change a person's role, name, or disable them (admin)",
    response_model=PersonOut,
    dependencies=ADMIN,
    responses=error_responses(404),
)
async def change_person(
    person_id: str,
    body: Annotated[PersonChange, Body()],
    session: SessionDep,
    caller: CallerDep,
) -> dict[str, Any]:
    person = await session.get(Person, int(person_id)) if is_id(person_id) else None
    if person is None:
        raise ApiError.not_found("person", person_id)
    target = f"person:{person.email}"
    if body.name is not None:
        person.name = body.name.strip() or person.name
    if body.role is not None and body.role != person.role:
        audit.record(
            session,
            caller,
            "person.role",
            target=target,
            details={"from": person.role, "to": body.role},
        )
        await directory.set_role(session, person, body.role)
    if body.disabled is True and person.disabled_at is None:
        await directory.disable(session, person)
        audit.record(session, caller, "person.disable", target=target)
    elif body.disabled is False and person.disabled_at is not None:
        await directory.enable(session, person)
        audit.record(session, caller, "person.enable", target=target)
    await session.commit()
    return person_json(person)


@router.get(
    "/tokens", summary="Your API tokens (never the tokens themselves)", response_model=TokenList
)
async def list_tokens(session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    rows = await directory.list_tokens(session, _person_id(caller))
    return {"tokens": [token_json(t) for t in rows]}


@router.post(
    "/tokens",
    summary="Make an API token of yours (shown once)",
    response_model=TokenCreated,
    status_code=201,
)
async def create_token(
    body: Annotated[NewToken, Body()], session: SessionDep, caller: CallerDep
) -> dict[str, Any]:
    person_id = _person_id(caller)
    try:
        row, plaintext = await directory.create_token(session, person_id, body.name)
    except PeopleError as err:
        raise _invalid(err) from None
    audit.record(
        session,
        caller,
        "token.create",
        target=f"token:{row.id}",
        details={"name": row.name, "prefix": row.prefix},
    )
    await session.commit()
    return {**token_json(row), "token": plaintext}


@router.delete(
    "/tokens/{token_id}",
    summary="Revoke an API token of yours (an admin: anyone's)",
    response_model=TokenOut,
    responses=error_responses(404),
)
async def revoke_token(token_id: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    owner = None if caller.role == "admin" else _person_id(caller)
    row = await directory.revoke_token(session, owner, int(token_id)) if is_id(token_id) else None
    if row is None:
        raise ApiError.not_found("token", token_id)
    audit.record(
        session,
        caller,
        "token.revoke",
        target=f"token:{row.id}",
        details={"name": row.name, "prefix": row.prefix, "person_id": row.person_id},
    )
    await session.commit()
    return token_json(row)


@router.get(
    "/audit",
    summary="The audit log, newest first (admin)",
    response_model=AuditList,
    dependencies=ADMIN,
)
async def list_audit(
    session: SessionDep,
    action: Annotated[str | None, Query(description="e.g. alert.acknowledge")] = None,
    actor: Annotated[str | None, Query(description="an email, api-token or cli")] = None,
    account: Annotated[str | None, Query(description="account id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
) -> dict[str, Any]:
    if action is not None and action not in audit.ACTIONS:
        raise ApiError.invalid("action", f"{action!r} is not one of {', '.join(audit.ACTIONS)}")
    query = audit.AuditQuery(action, actor, account, limit, offset)
    total, rows = await audit.entries(session, query)
    return {"total": total, "entries": [audit_json(e) for e in rows]}

"""Password hashing with argon2id (argon2-cffi): memory-hard, salted, the parameters kept in
the stored PHC string, so raising them later only rehashes at the next sign-in."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 12


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # RFC 9106's second recommended profile (64 MiB, 3 passes)


@lru_cache(maxsize=1)
def _decoy() -> str:
    return _hasher().hash("tend: no such person")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _hasher().hash(password)


def verify_password(stored: str | None, given: str) -> bool:
    """Whether ``given`` is the password ``stored`` hashes. With nothing stored (no such
    person, or one who signs in by OIDC only) a decoy hash is checked, so the answer takes as
    long and says nothing about who exists."""
    try:
        return _hasher().verify(stored or _decoy(), given) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher().check_needs_rehash(stored)

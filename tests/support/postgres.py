"""A fresh PostgreSQL database per test run on the server at 127.0.0.1:5432."""

from __future__ import annotations

import os
import uuid

import asyncpg

SERVER_DSN = os.environ.get("TEND_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def create_database(prefix: str = "tend_test") -> str:
    """Create an empty database and return its SQLAlchemy async URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = SERVER_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()

"""``sitewatch keys create | revoke | list``: API keys. The token is printed once; only its hash is stored."""

from __future__ import annotations

import getpass
import json
import logging
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.auth import ROLES, new_token
from jobs.context import open_engine
from jobs.settings import Settings
from store import api_repo

logger = logging.getLogger(__name__)

app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")],
    sites: Annotated[
        list[str] | None, typer.Option("--sites", help="Only these site ids (repeat, or comma-separated)")
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Create a key and print its token once (store it now: it cannot be shown again)."""
    if role not in ROLES:
        raise ValueError(f"--role: {role!r} is not one of {', '.join(ROLES)}")
    scope = sorted({s.strip() for part in sites for s in part.split(",") if s.strip()}) if sites else None
    token = new_token()
    engine = open_engine(_settings(ctx))
    record = api_repo.save_key(
        engine,
        key_id=token.key_id,
        name=name,
        role=role,
        sites=scope,
        token_sha256=token.token_sha256,
        actor=f"cli:{getpass.getuser()}",
    )
    if as_json:
        typer.echo(
            json.dumps({"id": record.id, "role": record.role, "sites": scope, "name": name, "token": token.token})
        )
        return
    err.print(f"created key [bold]{record.id}[/] ({role}{', sites ' + ', '.join(scope) if scope else ''})")
    err.print("the token is shown once; send it as `Authorization: Bearer <token>`:")
    typer.echo(token.token)


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`)")]) -> None:
    """Revoke a key: it is refused from the next request on."""
    record = api_repo.revoke_key(open_engine(_settings(ctx)), key_id, actor=f"cli:{getpass.getuser()}")
    out.print(f"revoked key {record.id}")


@app.command("list")
def list_keys(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every key with its role, scope and state (never the token)."""
    rows: list[dict[str, Any]] = [
        {
            "id": k.id,
            "name": k.name,
            "role": k.role,
            "sites": list(k.sites) if k.sites is not None else None,
            "created_at": k.created_at.isoformat(timespec="seconds"),
            "created_by": k.created_by,
            "revoked_at": k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else None,
        }
        for k in api_repo.list_keys(open_engine(_settings(ctx)))
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("id", "name", "role", "sites", "created", "state", title=f"{len(rows)} key(s)")
    for r in rows:
        table.add_row(
            r["id"],
            r["name"],
            r["role"],
            ", ".join(r["sites"]) if r["sites"] is not None else "all",
            r["created_at"],
            f"revoked {r['revoked_at']}" if r["revoked_at"] else "active",
        )
    out.print(table)

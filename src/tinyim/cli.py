"""`tinyim run` (serve the roles of IM_ROLES) and `tinyim migrate` (alembic upgrade head)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tinyim.infra import logging as im_logging
from tinyim.settings import Settings

log = logging.getLogger("tinyim")


def _alembic_config(settings: Settings) -> object:
    from alembic.config import Config

    ini = Path(os.environ.get("IM_ALEMBIC_INI", Path(__file__).resolve().parents[2] / "alembic.ini"))
    if not ini.exists():
        ini = Path.cwd() / "alembic.ini"
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(ini.parent / "migrations"))
    cfg.attributes["database_url"] = settings.effective_database_url
    return cfg


def migrate(settings: Settings) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)  # before import: plugins log as they load
    from alembic import command

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    command.upgrade(_alembic_config(settings), "head")  # type: ignore[arg-type]
    log.info(
        "schema is at the latest migration", extra={"database": _safe_url(settings.effective_database_url)}
    )


def run(settings: Settings) -> None:
    import uvicorn

    from tinyim.bootstrap.app import build_app

    if settings.auto_migrate:
        migrate(settings)
    app = build_app(settings)
    log.info(
        "tinyim serving",
        extra={"roles": settings.roles, "http": f"{settings.host}:{settings.http_port}"},
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_body + 9,
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()


def _safe_url(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyim", description="TinyIM instant-messaging server")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="serve the roles named by IM_ROLES (default: all, one process)")
    sub.add_parser("migrate", help="bring the database schema to the latest migration")
    cluster = sub.add_parser("cluster", help="the multi-process topology as local processes (no Docker)")
    cluster.add_argument("action", choices=["up", "down"])
    # PC client: chat (terminal UI), send, tail, upload, download
    from tinyim.pc.main import COMMANDS as PC_COMMANDS
    from tinyim.pc.main import add_subcommands as add_pc_subcommands

    add_pc_subcommands(sub)
    args = parser.parse_args(argv)
    if args.command in PC_COMMANDS:
        from tinyim.pc.main import run_command

        return run_command(args)
    if args.command == "cluster":
        from tinyim.cluster import main as cluster_main

        return cluster_main(args.action)
    try:
        settings = Settings()
    except Exception as exc:
        print(f"tinyim: bad configuration: {exc}", file=sys.stderr)
        return 2
    im_logging.configure(settings.log_level, settings.log_format)
    if args.command == "migrate":
        migrate(settings)
    elif args.command == "run":
        run(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

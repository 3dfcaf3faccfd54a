"""`tinyim run` (serve the roles of IM_ROLES) and `tinyim migrate` (alembic upgrade head)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tinyim.infra import logging as im_logging
from tinyim.settings import Settings, env_file

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
    from tinyim.infra.listener import AbortableWebSocketProtocol, GuardedHttpProtocol, configure_limits

    if settings.auto_migrate:
        migrate(settings)
    _raise_fd_limit()
    app = build_app(settings)
    _tune_gc()
    log.info(
        "tinyim serving",
        extra={"roles": settings.roles, "http": f"{settings.host}:{settings.http_port}"},
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        loop="uvloop",
        http=GuardedHttpProtocol,
        ws=AbortableWebSocketProtocol,
        ws_max_size=settings.max_frame_body + 9,
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        timeout_keep_alive=int(settings.http_idle_timeout_seconds),
    )
    configure_limits(settings.http_header_timeout_seconds, settings.max_connections_per_address)
    uvicorn.Server(config).run()


def _tune_gc() -> None:
    """What is loaded by now lives as long as the process: frozen, the collector stops walking it on
    every full collection; a larger first generation makes collections rarer under a message load (each
    pause delays every connection's answers: it shows in the latency tail)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _raise_fd_limit() -> None:
    """One fd per client connection: take the most the machine allows (the soft limit is often 1024)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit", extra={"soft": soft, "hard": hard})


def _ops(command: str, as_json: bool, settings: Settings) -> int:
    import asyncio
    import json

    from tinyim import ops

    if command == "config":
        config = ops.effective_config(settings)
        if as_json:
            print(json.dumps(config, indent=2, default=str))
        else:
            for name, value in config.items():
                print(f"{name}={value}")
        return 0
    findings = asyncio.run(ops.doctor(settings))
    for finding in findings:
        print(f"{'ok  ' if finding.ok else 'FAIL'} {finding.name}: {finding.detail}")
    return 0 if all(f.ok for f in findings) else 1


def _backup(command: str, directory: Path, settings: Settings) -> int:
    from tinyim import backup

    try:
        if command == "backup":
            manifest = backup.backup(settings, directory)
            rows = sum(n for t, n in manifest["rows_after"].items() if t != "alembic_version")
            print(f"backed up {manifest['kind']} at revision {manifest['revision']}: {rows} rows, "
                  f"{len(manifest['data_files'])} data files -> {directory}")  # fmt: skip
            return 0
        report = backup.restore_check(settings, directory)
    except backup.BackupError as exc:
        print(f"tinyim {command}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report.lines))
    print("restore check passed" if report.ok else "restore check FAILED")
    return 0 if report.ok else 1


def _safe_url(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main(argv: list[str] | None = None) -> int:
    from tinyim.infra import grpc_io

    grpc_io.apply_defaults()  # first: gRPC reads its settings when it is imported
    from tinyim.ops import version

    parser = argparse.ArgumentParser(prog="tinyim", description="TinyIM instant-messaging server")
    parser.add_argument("--version", action="version", version=f"tinyim {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="serve the roles named by IM_ROLES (default: all, one process)")
    sub.add_parser("migrate", help="bring the database schema to the latest migration")
    cluster = sub.add_parser("cluster", help="the multi-process topology as local processes (no Docker)")
    cluster.add_argument("action", choices=["up", "down"])
    # operator commands (tinyim/ops.py)
    config = sub.add_parser("config", help="print the effective settings (IM_*), secrets masked")
    config.add_argument("--json", action="store_true", help="one JSON object instead of NAME=value lines")
    sub.add_parser("doctor", help="check the database, Redis, registry, data dir, ports and fd limit")
    backup = sub.add_parser("backup", help="back up the database and the data dir into a new directory")
    backup.add_argument("dir", type=Path)
    check = sub.add_parser("restore-check", help="restore a backup into a scratch database and check it")
    check.add_argument("dir", type=Path)
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
        settings = Settings(_env_file=env_file())  # type: ignore[call-arg]
    except Exception as exc:
        print(f"tinyim: bad configuration: {exc}", file=sys.stderr)
        return 2
    if args.command in ("config", "doctor"):
        return _ops(args.command, getattr(args, "json", False), settings)
    if args.command in ("backup", "restore-check"):
        return _backup(args.command, args.dir, settings)
    from tinyim.infra import extras

    try:  # a setting that needs an optional driver which is not installed: say which extra provides it
        extras.check(settings)
    except extras.MissingExtra as exc:
        print(f"tinyim: {exc}", file=sys.stderr)
        return 2
    im_logging.configure(settings.log_level, settings.log_format)
    from tinyim.infra import audit

    audit.configure(settings.audit_log)
    if args.command == "migrate":
        migrate(settings)
    elif args.command == "run":
        run(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

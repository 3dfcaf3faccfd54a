"""The PC client's subcommands of `tinyim`: chat, send, tail, upload, download."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .account import DEFAULT_SERVER, Account, account_from, add_account_arguments

COMMANDS = ("chat", "send", "tail", "upload", "download")


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat = sub.add_parser("chat", help="PC client: full-screen terminal chat")
    add_account_arguments(chat)
    chat.add_argument("--register", metavar="NICKNAME", help="register this username first, then log in")
    chat.add_argument("--download-dir", type=Path, default=None, help="where /download puts files")

    send = sub.add_parser("send", help="PC client: send a message (or a file) and exit")
    add_account_arguments(send)
    target = send.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", help="username (or #user_id) of a friend")
    target.add_argument("--group", type=int, help="group id")
    send.add_argument("--file", type=Path, help="send this file (FILE message; progress bar on a TTY)")
    send.add_argument("--image", action="store_true", help="send --file as an IMAGE message")
    send.add_argument("--json", action="store_true", help="print {msg_id, seq_id} as JSON")
    send.add_argument("text", nargs="*", help="the message; '-' or nothing (without --file): read stdin")

    tail = sub.add_parser("tail", help="PC client: print incoming messages as lines or JSON")
    add_account_arguments(tail)
    tail.add_argument("--json", action="store_true", help="one JSON object per message and line")
    tail.add_argument("--count", type=int, default=0, help="exit after this many messages")
    tail.add_argument("--timeout", type=float, default=0.0, help="exit after this many seconds")
    tail.add_argument("--history", action="store_true", help="print the whole timeline first")

    upload = sub.add_parser("upload", help="PC client: upload a file, print its task id")
    add_account_arguments(upload)
    upload.add_argument("path", type=Path)
    upload.add_argument("--json", action="store_true")

    download = sub.add_parser("download", help="PC client: download a file by task id")
    add_account_arguments(download)
    download.add_argument(
        "task_id", help="the task id a FILE/IMAGE message names (tail --json: file.task_id)"
    )
    download.add_argument("dest", type=Path, nargs="?", default=Path("."), help="file or folder")
    download.add_argument("--json", action="store_true")


def run_command(args: argparse.Namespace) -> int:
    from . import scripts

    if args.command == "chat":
        from .tui import run_chat

        account = account_from(args, prompt=False) if _has_credentials(args) else _partial(args)
        return run_chat(account, register_nickname=args.register, download_dir=args.download_dir)
    account = account_from(args)
    if args.command == "send":
        text = " ".join(args.text)
        if (text in ("", "-")) and args.file is None:
            text = sys.stdin.read().rstrip("\n")
        if text == "-":
            text = ""
        if not text and args.file is None:
            print("tinyim: nothing to send", file=sys.stderr)
            return 2
        return scripts.run(
            scripts.send(
                account,
                to=args.to,
                group=args.group,
                text=text or None,
                file=args.file,
                image=True if args.image else None,
                as_json=args.json,
            )
        )
    if args.command == "tail":
        return scripts.run(
            scripts.tail(
                account, as_json=args.json, count=args.count, timeout=args.timeout, history=args.history
            )
        )
    if args.command == "upload":
        return scripts.run(scripts.upload(account, args.path, as_json=args.json))
    if args.command == "download":
        return scripts.run(scripts.download(account, args.task_id, args.dest, as_json=args.json))
    raise AssertionError(args.command)


def _has_credentials(args: argparse.Namespace) -> bool:
    import os

    return bool((args.user or os.environ.get("TINYIM_USER")) and os.environ.get("TINYIM_PASSWORD"))


def _partial(args: argparse.Namespace) -> Account:
    """No full credentials: the chat opens on its login form, prefilled with what is known."""
    import os

    return Account(
        (args.server or os.environ.get("TINYIM_SERVER") or DEFAULT_SERVER).rstrip("/"),
        args.user or os.environ.get("TINYIM_USER") or "",
        "",
        args.device or os.environ.get("TINYIM_DEVICE") or "PC",
        Path(args.home) if args.home else None,
    )

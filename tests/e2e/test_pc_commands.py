"""The scriptable PC commands as a user runs them: real `tinyim send/tail/upload/download` processes
against a real `tinyim run`, with `tinyim tail --json` piped into another program that parses it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import PASSWORD, befriend, new_user, online
from tests.support.server import ServerProcess
from tinyim.client import Client

pytestmark = pytest.mark.e2e

TINYIM = str(Path(sys.executable).with_name("tinyim"))
HAS_FILES = hasattr(Client, "upload_file") and hasattr(Client, "download_file")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("pc-cmd")).start()
    yield proc
    proc.stop()


def env_for(server: ServerProcess, user: str, home: Path, password: str = PASSWORD) -> dict[str, str]:
    return {
        **os.environ,
        "TINYIM_SERVER": server.base_url,
        "TINYIM_USER": user,
        "TINYIM_PASSWORD": password,
        "TINYIM_HOME": str(home),
    }


def tinyim(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TINYIM, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def wait_listening(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "listening as" in line, line + (proc.stderr.read() if proc.poll() is not None else "")


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def users(server: ServerProcess, *prefixes: str) -> list[tuple[str, int]]:
    async def make() -> list[tuple[str, int]]:
        return [await new_user(server.base_url, p) for p in prefixes]

    return asyncio.run(make())


def test_send_and_tail_json_read_by_another_program(
    server: ServerProcess, tmp_path: Path, spawned: list[subprocess.Popen[str]]
) -> None:
    (alice, alice_id), (bob, bob_id) = users(server, "alice", "bob")
    asyncio.run(befriend(server.base_url, alice, bob))

    # Bob tails as JSON; a separate Python program reads the lines and checks each is one JSON object.
    consumer = (
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    m = json.loads(line)\n"
        "    print(m['sender'], m['type'], m['text'], sep='|', flush=True)\n"
    )
    tail = subprocess.Popen(
        [TINYIM, "tail", "--json", "--count", "3"],
        env=env_for(server, bob, tmp_path / "bob"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawned.append(tail)
    reader = subprocess.Popen(
        [sys.executable, "-c", consumer], stdin=tail.stdout, stdout=subprocess.PIPE, text=True
    )
    spawned.append(reader)
    assert tail.stdout is not None
    tail.stdout.close()  # the reader owns the pipe now
    wait_listening(tail)

    alice_env = env_for(server, alice, tmp_path / "alice")
    sent = tinyim("send", "--to", f"#{bob_id}", "--json", "hello from a script", env=alice_env)
    assert sent.returncode == 0, sent.stderr
    ack = json.loads(sent.stdout)
    assert ack["msg_id"] > 0 and ack["seq_id"] > 0
    assert sent.stderr == ""  # not a TTY: no progress output, no noise
    piped = tinyim("send", "--to", bob, env=alice_env, stdin="from stdin\n")  # by username
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("sent msg_id=")

    async def from_bobs_pad() -> None:  # Bob's own message, from his other device
        async with online(server.base_url, bob, "Pad") as bob_pad:
            await bob_pad.send_text(alice_id, "bob writes back")

    asyncio.run(from_bobs_pad())

    out, _ = reader.communicate(timeout=30)
    assert tail.wait(timeout=10) == 0
    lines = out.splitlines()
    assert lines == [
        f"{alice}|text|hello from a script",
        f"{alice}|text|from stdin",
        f"{bob}|text|bob writes back",
    ]


def test_tail_lines_history_and_errors(
    server: ServerProcess, tmp_path: Path, spawned: list[subprocess.Popen[str]]
) -> None:
    (alice, _), (bob, bob_id), (carol, _) = users(server, "alice", "bob", "carol")
    asyncio.run(befriend(server.base_url, alice, bob))
    alice_env = env_for(server, alice, tmp_path / "alice")
    assert tinyim("send", "--to", f"#{bob_id}", "first", env=alice_env).returncode == 0

    # --history prints what was there before; plain lines name the sender.
    listed = tinyim("tail", "--history", "--timeout", "1", env=env_for(server, bob, tmp_path / "bob"))
    assert listed.returncode == 0, listed.stderr
    assert f"{alice}: * friend request from {alice}" in listed.stdout
    assert listed.stdout.rstrip().endswith(f"{alice}: first")

    # To a group, and read back as a line that names it.
    async def make_group() -> int:
        async with online(server.base_url, alice, "Mobile") as a:
            return await a.create_group("Ops", [bob_id])

    group_id = asyncio.run(make_group())
    assert tinyim("send", "--group", str(group_id), "to the group", env=alice_env).returncode == 0
    listed = tinyim("tail", "--history", "--timeout", "1", env=env_for(server, bob, tmp_path / "bob"))
    assert listed.stdout.rstrip().endswith(f"[group {group_id}] {alice}: to the group")

    # Errors are one clear line and an exit code, not a traceback.
    refused = tinyim("send", "--to", carol, "not a friend", env=alice_env)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr and "friend" in refused.stderr.lower()
    wrong = tinyim(
        "send", "--to", f"#{bob_id}", "x", env=env_for(server, alice, tmp_path / "a", "wrong pass")
    )
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    for unknown in ("#999999999", "nobody_with_this_name"):
        nobody = tinyim("send", "--to", unknown, "x", env=alice_env)
        assert nobody.returncode == 1 and "no user" in nobody.stderr
    assert tinyim("send", "--to", f"#{bob_id}", env=alice_env, stdin="").returncode == 2

    # A newer login of the same device type ends the tail with exit code 3.
    tail = subprocess.Popen(
        [TINYIM, "tail"], env=env_for(server, carol, tmp_path / "carol"), stderr=subprocess.PIPE, text=True
    )
    spawned.append(tail)
    wait_listening(tail)
    asyncio.run(Client(server.base_url, carol, PASSWORD, "PC").login())
    assert tail.wait(timeout=20) == 3
    assert tail.stderr is not None and "logged in elsewhere" in tail.stderr.read()


@pytest.mark.skipif(
    not HAS_FILES,
    reason="needs Client.upload_file/download_file from the file-transfer work (not merged yet)",
)
async def test_upload_send_file_and_download(server: ServerProcess, tmp_path: Path) -> None:
    alice, _ = await new_user(server.base_url, "alice")
    bob, bob_id = await new_user(server.base_url, "bob")
    await befriend(server.base_url, alice, bob)
    payload = tmp_path / "data.bin"
    payload.write_bytes(os.urandom(700_000))
    alice_env = env_for(server, alice, tmp_path / "alice")

    uploaded = tinyim("upload", "--json", str(payload), env=alice_env)
    assert uploaded.returncode == 0, uploaded.stderr
    ref = json.loads(uploaded.stdout)
    assert ref["file_name"] == "data.bin" and ref["size"] == payload.stat().st_size

    sent = tinyim("send", "--to", f"#{bob_id}", "--file", str(payload), "--json", env=alice_env)
    assert sent.returncode == 0, sent.stderr
    bob_env = env_for(server, bob, tmp_path / "bob")
    listed = tinyim("tail", "--history", "--json", "--timeout", "1", env=bob_env)
    files = [json.loads(line)["file"] for line in listed.stdout.splitlines()]
    task_id = next(f["task_id"] for f in files if f)
    dest = tmp_path / "got"
    dest.mkdir()
    got = tinyim("download", str(task_id), str(dest / "data.bin"), env=bob_env)
    assert got.returncode == 0, got.stderr
    assert (dest / "data.bin").read_bytes() == payload.read_bytes()

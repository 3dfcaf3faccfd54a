"""`tinyim chat` in a real terminal: the installed command runs inside tmux (send-keys, capture-pane)
against a real `tinyim run`, exchanges messages with an SDK client, and quits on Ctrl+Q."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import PASSWORD, friend_pair, online
from tests.support.server import ServerProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
]

TINYIM = str(Path(sys.executable).with_name("tinyim"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("pc-tmux")).start()
    yield proc
    proc.stop()


class Tmux:
    """One private tmux server (its own socket), killed at the end."""

    def __init__(self) -> None:
        self.socket = f"tinyim-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10, check=False
        )

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "chat").stdout

    async def until(self, condition: Callable[[str], bool], what: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if condition(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; pane:\n{text}")
            await asyncio.sleep(0.2)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    yield t
    t("kill-server")


async def test_tinyim_chat_in_a_real_terminal(server: ServerProcess, tmp_path: Path, tmux: Tmux) -> None:
    alice, alice_id, bob, _ = await friend_pair(server.base_url)
    env = {
        "TINYIM_SERVER": server.base_url,
        "TINYIM_USER": alice,
        "TINYIM_PASSWORD": PASSWORD,
        "TINYIM_HOME": str(tmp_path / "home"),
        "TERM": "xterm-256color",
    }
    command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + f" {TINYIM} chat"
    started = tmux("new-session", "-d", "-s", "chat", "-x", "110", "-y", "30", command)
    assert started.returncode == 0, started.stderr
    await tmux.until(lambda s: "● connected" in s, "the chat to connect")

    tmux("send-keys", "-t", "chat", f"/open {bob}", "Enter")
    await tmux.until(lambda s: "Bob accepted the friend request" in s, "the conversation")
    async with online(server.base_url, bob, "Mobile") as bob_client:
        tmux("send-keys", "-t", "chat", "-l", "typed in tmux")
        tmux("send-keys", "-t", "chat", "Enter")
        got = await bob_client.next_message(timeout=15)
        assert (got.sender_id, got.content) == (alice_id, "typed in tmux")
        await bob_client.send_text(alice_id, "seen it in my SDK")
    await tmux.until(lambda s: "Bob: seen it in my SDK" in s, "the answer on screen")

    tmux("send-keys", "-t", "chat", "C-q")
    deadline = time.monotonic() + 15
    while tmux("has-session", "-t", "chat").returncode == 0:  # the command exited: the session closed
        assert time.monotonic() < deadline, tmux.screen()
        await asyncio.sleep(0.2)
    assert list((tmp_path / "home").rglob("seq-*.json")), "the local seq is kept on disk"

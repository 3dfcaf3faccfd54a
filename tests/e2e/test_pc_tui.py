"""The PC client's terminal UI (`tinyim chat`) driven headlessly (Textual's pilot) against a real
`tinyim run`: two PC users log in (one through the login form), become friends, chat both ways, watch
unread counts change, handle a group join request, send a file, ride out a server restart, and one is
logged out by a newer login of the same device type."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, ProgressBar, Static

from tests.e2e.helpers import PASSWORD, friend_pair, new_user, online, unique
from tests.support.server import ServerProcess
from tinyim.client import Client, ClientOptions, FileSeqStore
from tinyim.pc.account import Account
from tinyim.pc.tui import ChatApp, RequestDialog, screen_text

pytestmark = pytest.mark.e2e

CLIENT_OPTIONS = ClientOptions(heartbeat_interval=5, backoff_initial=0.1, backoff_max=0.5)
HAS_FILES = hasattr(Client, "send_file") and hasattr(Client, "download_file")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("pc-tui")).start()
    yield proc
    proc.stop()


@asynccontextmanager
async def chat_app(app: ChatApp) -> AsyncIterator[Pilot[int]]:
    async with app.run_test(size=(110, 32)) as pilot:
        try:
            yield pilot
        finally:
            if app.client is not None:
                await app.client.close()


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; screen:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


def shown(pilot: Pilot[Any], text: str) -> Callable[[], bool]:
    return lambda: text in screen_text(pilot.app)


def options(pilot: Pilot[Any], selector: str) -> list[str]:
    widget = pilot.app.query_one(selector, OptionList)
    return [str(widget.get_option_at_index(i).prompt) for i in range(widget.option_count)]


async def type_line(pilot: Pilot[Any], text: str) -> None:
    box = pilot.app.query_one("#input", Input)
    box.focus()
    box.value = text
    await pilot.press("enter")


async def pick(pilot: Pilot[Any], selector: str, contains: str) -> None:
    """Highlight the option of a list that contains `contains` and press Enter on it."""
    widget = pilot.app.query_one(selector, OptionList)
    prompts = options(pilot, selector)
    index = next(i for i, p in enumerate(prompts) if contains in p)
    widget.focus()
    widget.highlighted = index
    await pilot.press("enter")


async def test_two_pc_users_chat_through_the_terminal_ui(server: ServerProcess, tmp_path: Path) -> None:
    alice_name, bob_name = unique("alice"), unique("bob")
    # Alice starts with nothing but the server: the login form comes up and she registers there.
    alice_app = ChatApp(
        Account(server.base_url, "", "", "PC", tmp_path / "alice-home"),
        download_dir=tmp_path / "alice-downloads",
        client_options=CLIENT_OPTIONS,
    )
    bob_app = ChatApp(
        Account(server.base_url, bob_name, PASSWORD, "PC", tmp_path / "bob-home"),
        register_nickname="Bob",
        client_options=CLIENT_OPTIONS,
    )
    async with chat_app(alice_app) as alice, chat_app(bob_app) as bob:
        await until(alice, shown(alice, "log in or register"), "the login form")
        alice.app.screen.query_one("#username", Input).value = alice_name
        alice.app.screen.query_one("#password", Input).value = PASSWORD
        alice.app.screen.query_one("#nickname", Input).value = "Alice"
        await alice.click("#register-button")
        for pilot in (alice, bob):
            await until(pilot, shown(pilot, "● connected"), "the connection")
        assert alice_app.client is not None and bob_app.client is not None
        alice_id, bob_id = alice_app.client.user_id, bob_app.client.user_id

        # Friend request from the input line; it shows up in Bob's requests and conversations.
        await type_line(alice, f"/add {bob_name} hello from the TUI")
        await until(alice, shown(alice, "asked Bob"), "the request to be sent")
        await until(bob, lambda: any("friend: Alice" in p for p in options(bob, "#requests")), "the request")
        await until(bob, lambda: any("Alice" in p and "[1]" in p for p in options(bob, "#convs")), "unread 1")
        assert bob_app.bells >= 1  # a message in a conversation that is not open rings the bell

        # Bob handles it in place: Enter on the request opens a dialog, Accept.
        await pick(bob, "#requests", "friend: Alice")
        await until(bob, lambda: isinstance(bob.app.screen, RequestDialog), "the dialog")
        await bob.click("#accept")
        await until(bob, lambda: options(bob, "#requests") == [], "the request to be settled")
        await until(alice, shown(alice, "Bob accepted the friend request"), "the acceptance")

        # Chat both ways; unread counts follow.
        await type_line(alice, f"/open {bob_name}")
        await until(alice, lambda: alice_app.current == (bob_id, 0), "the conversation to open")
        await type_line(alice, "hi bob, from the terminal")
        await until(alice, shown(alice, "me: hi bob, from the terminal"), "her own line")
        # Unread as the server counts it: the friend request and this message, both from Alice.
        await until(
            bob, lambda: any("Alice" in p and "[2]" in p for p in options(bob, "#convs")), "Bob's unread 2"
        )
        await pick(bob, "#convs", "Alice")
        await until(bob, shown(bob, "Alice: hi bob, from the terminal"), "the message in Bob's pane")
        await until(bob, lambda: not any("[" in p.split("\n")[0] for p in options(bob, "#convs")), "unread 0")
        await type_line(bob, "hello alice")
        await until(alice, shown(alice, "Bob: hello alice"), "Bob's answer in Alice's open conversation")
        assert not any("[" in p.split("\n")[0] for p in options(alice, "#convs"))  # read as it arrived
        # The server agrees: Bob read everything of Alice's.
        assert not [u for u in await bob_app.client.unread() if u.peer_id == alice_id and u.unread]

        # A group join request, handled by the owner in place.
        await type_line(alice, "/group Team")
        await until(alice, lambda: alice_app.current is not None and alice_app.current[1] > 0, "the group")
        assert alice_app.current is not None
        group_id = alice_app.current[1]
        await type_line(bob, f"/join {group_id}")
        await until(bob, shown(bob, f"asked to join g:{group_id}"), "the join request to be sent")
        await until(
            alice, lambda: any(f"join g:{group_id}: Bob" in p for p in options(alice, "#requests")), "it"
        )
        await pick(alice, "#requests", f"join g:{group_id}")
        await until(alice, lambda: isinstance(alice.app.screen, RequestDialog), "the dialog")
        await alice.click("#accept")
        await until(alice, lambda: options(alice, "#requests") == [], "the join request to be settled")
        await until(bob, lambda: any(f"g:{group_id}" in p for p in options(bob, "#convs")), "the group")
        await type_line(bob, f"/open g:{group_id}")
        await until(bob, lambda: bob_app.current == (0, group_id), "the group conversation")
        await type_line(bob, "hello team")
        await until(alice, shown(alice, "Bob: hello team"), "the group message")
        await type_line(bob, "/leave")
        await until(alice, shown(alice, f"* Bob left group {group_id}"), "the leave notice")

        # Back to the 1:1 conversation for what follows.
        await type_line(alice, f"/open {bob_name}")
        await until(alice, lambda: alice_app.current == (bob_id, 0), "the 1:1 conversation")
        await type_line(bob, f"/open {alice_name}")
        await until(bob, lambda: bob_app.current == (alice_id, 0), "the 1:1 conversation")

        # The server restarts: both show the state, reconnect by themselves and resync.
        server.stop()
        for pilot in (alice, bob):
            await until(pilot, shown(pilot, "reconnecting"), "the lost connection")
        await type_line(alice, "written while the server was down")
        await until(alice, shown(alice, "goes out once the connection is back"), "the notice")
        server.start()
        for pilot in (alice, bob):
            await until(pilot, shown(pilot, "● connected"), "the reconnect", timeout=30)
        await until(bob, shown(bob, "Alice: written while the server was down"), "the held message")
        await type_line(alice, "after the restart")
        await until(bob, shown(bob, "Alice: after the restart"), "a message after the restart")

        # The local seq is kept per user on disk, as the SDK does.
        store = FileSeqStore(alice_app.account.state_dir)
        assert store.load(alice_id, "PC") == alice_app.client.local_max_seq > 0

        # A newer login of Alice on another PC: this session says so and stops.
        other = Client(server.base_url, alice_name, PASSWORD, "PC")
        await other.login()
        await until(alice, shown(alice, "logged in elsewhere"), "the kick")
        assert alice.app.query_one("#input", Input).disabled


@pytest.mark.skipif(
    not HAS_FILES, reason="needs Client.send_file/download_file from the file-transfer work (not merged yet)"
)
async def test_a_file_sent_in_the_tui_arrives_and_downloads_with_progress(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice_name, bob_name = unique("alice"), unique("bob")
    alice_app = ChatApp(
        Account(server.base_url, alice_name, PASSWORD, "PC", tmp_path / "a"),
        register_nickname="Alice",
        download_dir=tmp_path / "alice-downloads",
        client_options=CLIENT_OPTIONS,
    )
    bob_app = ChatApp(
        Account(server.base_url, bob_name, PASSWORD, "PC", tmp_path / "b"),
        register_nickname="Bob",
        client_options=CLIENT_OPTIONS,
    )
    payload = tmp_path / "report.bin"
    payload.write_bytes(bytes(range(256)) * 4000)  # ~1 MiB: several chunks
    async with chat_app(alice_app) as alice, chat_app(bob_app) as bob:
        for pilot in (alice, bob):
            await until(pilot, shown(pilot, "● connected"), "the connection")
        assert alice_app.client is not None and bob_app.client is not None
        alice_id = alice_app.client.user_id
        await type_line(alice, f"/add {bob_name}")
        await until(bob, lambda: bool(options(bob, "#requests")), "the request")
        await type_line(bob, f"/accept {alice_name}")
        await until(alice, shown(alice, "Bob accepted"), "the acceptance")
        await type_line(alice, f"/open {bob_name}")
        await type_line(bob, f"/open {alice_name}")
        await until(bob, lambda: bob_app.current == (alice_id, 0), "the conversation")

        await type_line(bob, f"/file {payload}")
        await until(bob, shown(bob, "sent report.bin"), "the upload")
        bar = bob.app.query_one("#transfer", ProgressBar)
        assert bar.percentage == 1.0
        assert (
            f"({payload.stat().st_size}/{payload.stat().st_size} bytes (100%)" in bob_app.transfer_text
            or ("100%" in bob_app.transfer_text)
        )
        await until(alice, shown(alice, "[file] report.bin"), "the file message")
        await type_line(alice, "/download")
        await until(alice, shown(alice, "downloaded report.bin"), "the download")
        assert alice.app.query_one("#transfer", ProgressBar).percentage == 1.0
        assert "100%" in alice_app.transfer_text
        assert (tmp_path / "alice-downloads" / "report.bin").read_bytes() == payload.read_bytes()


async def test_history_loads_on_scroll_and_the_list_survives_a_restart(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice_name, alice_id, bob_name, bob_id = await friend_pair(server.base_url)
    async with online(server.base_url, bob_name, "Mobile") as bob:
        for i in range(60):
            await bob.send_text(alice_id, f"line {i:02d}")
    home = tmp_path / "alice-home"
    app = ChatApp(Account(server.base_url, alice_name, PASSWORD, "PC", home), history_page=10)
    async with chat_app(app) as pilot:
        await until(pilot, lambda: any("[61]" in p for p in options(pilot, "#convs")), "61 unread")
        await pick(pilot, "#convs", "Bob")
        await until(pilot, shown(pilot, "Bob: line 59"), "the newest page")
        history = pilot.app.query_one("#history")

        def lines() -> list[str]:
            return [str(w.content).split(": ", 1)[-1] for w in pilot.app.query(".line").results(Static)]

        # Pages of 10 come in until the pane can scroll, and no more.
        await until(pilot, lambda: history.max_scroll_y > 0, "a full pane")
        await pilot.pause(0.3)
        first = len(lines())
        assert first % 10 == 0 and first < 60 and lines()[-1] == "line 59"
        history.scroll_home(animate=False)  # the user scrolls to the top: the next page comes in above
        await until(pilot, lambda: len(lines()) == first + 10, "the next page")
        # The line that was on top stays in view (no cascade of pages).
        await until(pilot, lambda: history.scroll_y > 0, "the view to keep its place")
        await pilot.pause(0.3)
        assert len(lines()) == first + 10
        while "line 00" not in lines():
            count = len(lines())
            await pilot.press("ctrl+o")  # the same by key
            await until(pilot, lambda: len(lines()) > count, "another page")  # noqa: B023
        assert [x for x in lines() if x.startswith("line")] == [f"line {i:02d}" for i in range(60)]
        await until(pilot, lambda: not any("[" in p.split("\n")[0] for p in options(pilot, "#convs")), "read")
        seq = app.client.local_max_seq if app.client else 0

    # Started again, the app syncs nothing old, yet lists the conversation it knew (saved next to the seq).
    again = ChatApp(Account(server.base_url, alice_name, PASSWORD, "PC", home))
    async with chat_app(again) as pilot:
        await until(pilot, shown(pilot, "● connected"), "the connection")
        await until(pilot, lambda: any("line 59" in p for p in options(pilot, "#convs")), "the saved list")
        assert again.client is not None and again.client.local_max_seq == seq
        assert not any("[" in p.split("\n")[0] for p in options(pilot, "#convs"))
        async with online(server.base_url, bob_name, "Mobile") as bob:
            await bob.send_text(alice_id, "one more")
        await until(pilot, lambda: any("[1]" in p for p in options(pilot, "#convs")), "a new unread")
        # Read on Alice's phone: the server tells this device (ReadNotify) and the count goes.
        async with online(server.base_url, alice_name, "Mobile", drain=False) as phone:
            newest = max(m.seq_id for m in phone.take_delivered() if m.content == "one more")
            await phone.mark_read(peer_id=bob_id, read_seq=newest)
        await until(pilot, lambda: not any("[" in p.split("\n")[0] for p in options(pilot, "#convs")), "0")


async def test_blacklist_groups_and_login_errors_from_the_input_line(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice_name, _, bob_name, bob_id = await friend_pair(server.base_url)
    carol_name, carol_id = await new_user(server.base_url, "carol")
    # A wrong password keeps the login form up with the server's answer.
    app = ChatApp(Account(server.base_url, alice_name, "wrong password", "PC", tmp_path / "a"))
    async with chat_app(app) as pilot:
        await until(pilot, shown(pilot, "wrong username or password"), "the login error")
        pilot.app.screen.query_one("#password", Input).value = PASSWORD
        await pilot.click("#login-button")
        await until(pilot, shown(pilot, "● connected"), "the connection")

        await type_line(pilot, f"/block {carol_name}")
        await until(pilot, shown(pilot, f"blocked Carol ({carol_name})"), "the block")
        await type_line(pilot, "/blacklist")
        await until(pilot, shown(pilot, f"blocked: {carol_name} #{carol_id}"), "the blacklist")
        await type_line(pilot, f"/unblock {carol_name}")
        await type_line(pilot, "/blacklist")
        await until(pilot, shown(pilot, "blocked: nobody"), "an empty blacklist")

        await type_line(pilot, f"/group Crew {bob_name}")
        await until(pilot, lambda: app.current is not None and app.current[1] > 0, "the group")
        assert app.current is not None
        group_id = app.current[1]
        await type_line(pilot, "/members")
        await until(pilot, shown(pilot, f"members: {alice_name} (owner), {bob_name}"), "the members")
        await type_line(pilot, f"/remove {group_id} {bob_name}")
        await until(pilot, shown(pilot, f"removed Bob ({bob_name}) from g:{group_id}"), "the removal")
        await type_line(pilot, "/leave")
        await until(pilot, shown(pilot, "the owner cannot leave"), "the server's refusal")
        async with online(server.base_url, carol_name, "Mobile") as carol:
            await carol.join_group(group_id)
        await until(pilot, lambda: any("Carol" in p for p in options(pilot, "#requests")), "the join request")
        await type_line(pilot, f"/deny {group_id} {carol_name}")
        await until(pilot, lambda: options(pilot, "#requests") == [], "the denial")
        await type_line(pilot, "/friends")
        await until(pilot, shown(pilot, f"friends: Bob ({bob_name}) #{bob_id}"), "the friend list")
        await type_line(pilot, "/frobnicate")
        await until(pilot, shown(pilot, "unknown command /frobnicate"), "help for a typo")
        await type_line(pilot, "/add nobody_by_this_name")
        await until(pilot, shown(pilot, "no user 'nobody_by_this_name'"), "the lookup error")

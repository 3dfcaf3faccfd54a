"""The Web client in real headless Chromium against a real server: one process, then the cluster.

Two people (two browser contexts, so two browsers' worth of storage) register, become friends, chat both
ways, see unread badges and clear them (in two tabs at once), create a group and chat in it, reload and
find the history, and go on after the server restarts (a message typed while it is down is sent once).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.web_browser import (
    ARTIFACTS,
    REPO,
    Person,
    chromium,
    login,
    open_person,
    register,
    require_browser,
    run_async,
    unique,
)
from tests.support.server import ServerProcess
from tinyim.cluster import Cluster

pytestmark = pytest.mark.e2e


@dataclass
class Deployment:
    name: str
    base_url: str
    stop: Callable[[], None]  # what serves the WebSockets goes away (the whole server, or every gateway)
    start: Callable[[], None]  # and comes back on the same ports


@pytest.fixture(scope="module", params=["one-process", "cluster"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    require_browser()
    if request.param == "cluster":
        cluster: Cluster = request.getfixturevalue("cluster")
        gateways = ("gateway-1", "gateway-2")

        def stop_gateways() -> None:
            for g in gateways:
                cluster.kill(g, signal.SIGTERM)

        def start_gateways() -> None:
            for g in gateways:
                cluster.start(g)

        try:
            yield Deployment("cluster", cluster.dispatch_url, stop_gateways, start_gateways)
        finally:
            for g in gateways:  # the cluster is shared with other modules: leave both gateways running
                proc = cluster.procs.get(g)
                if proc is None or proc.poll() is not None:
                    cluster.start(g)
        return
    # small file chunks: an upload takes many requests, so a test can reload in the middle of one
    server = ServerProcess(
        tmp_path_factory.mktemp("tinyim-web"), env={"IM_FILE_CHUNK_BYTES": "16384"}
    ).start()

    def start_again() -> None:
        server.start()

    try:
        yield Deployment("one-process", server.base_url, server.stop, start_again)
    finally:
        server.stop()


def test_dispatch_serves_the_app_next_to_the_api(deployment: Deployment) -> None:
    index = httpx.get(deployment.base_url + "/", timeout=5)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert '<div id="app">' in index.text and index.headers["cache-control"] == "no-cache"
    script = index.text.split('src="', 1)[1].split('"', 1)[0]
    asset = httpx.get(deployment.base_url + script, timeout=5)
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert httpx.get(deployment.base_url + "/healthz", timeout=5).json()["status"] == "ok"
    config = httpx.get(deployment.base_url + "/api/client_config", timeout=5).json()
    assert config["heartbeat_interval_seconds"] > 0
    assert httpx.post(deployment.base_url + "/api/login", json={}, timeout=5).status_code == 400


def _chat(p: Person, text: str) -> None:
    p.tid("composer").fill(text)
    p.tid("send").click()


def _expect(locator: Any) -> Any:
    from playwright.sync_api import expect

    return expect(locator)


def test_two_people_chat_in_the_browser(deployment: Deployment) -> None:
    shots = ARTIFACTS / deployment.name
    with chromium() as browser:
        alice = open_person(browser, deployment.base_url, unique("alice"), shots)
        bob = open_person(browser, deployment.base_url, unique("bob"), shots, phone=True)
        register(alice, "Alice")
        register(bob, "Bob")
        assert alice.page.evaluate("window.tinyim.shared") is True  # one session per browser
        alice.shot("01-registered")
        alice_id, bob_id = alice.user_id(), bob.user_id()
        with_alice, with_bob = f"u:{alice_id}", f"u:{bob_id}"

        # --- friends: search by username, request, accept
        alice.tid("tab-contacts").click()
        alice.tid("search-input").fill(bob.name)
        alice.tid("search-button").click()
        _expect(alice.tid("search-result")).to_contain_text("Bob")
        alice.tid("add-friend").click()
        _expect(alice.tid("contacts-note")).to_contain_text("Request sent")
        bob.tid("tab-contacts").click()
        _expect(bob.tid("friend-request")).to_contain_text("Alice")
        bob.shot("02-friend-request")
        bob.tid("friend-request").get_by_test_id("accept").click()
        _expect(bob.tid("friend")).to_contain_text("Alice")
        _expect(alice.tid("friend")).to_contain_text("Bob")

        # --- 1:1 both ways; the receiver sees an unread badge, opening the chat clears it
        alice.tid("message-friend").click()
        _chat(alice, "hello bob")
        _expect(alice.tid("messages")).to_contain_text("hello bob")
        bob.tid("tab-chats").click()
        _expect(bob.conv(with_alice).get_by_test_id("unread")).to_have_text("1")
        _expect(bob.conv(with_alice).get_by_test_id("conv-preview")).to_have_text("hello bob")
        _expect(bob.page).to_have_title("(1) TinyIM")
        bob.shot("03-unread-badge")
        bob.conv(with_alice).click()
        _expect(bob.tid("messages")).to_contain_text("hello bob")
        _chat(bob, "hi alice")
        _expect(alice.page.locator("[data-testid=message]:not(.mine)")).to_contain_text(["hi alice"])
        _expect(alice.tid("unread")).to_have_count(0)  # Alice has the chat open: read at once
        alice.shot("04-chat")
        bob.page.get_by_role("button", name="Back").click()
        _expect(bob.tid("unread")).to_have_count(0)

        # --- a second tab shares the session (no kick); reading in one clears the badge in both
        tab2 = bob.context.new_page()
        tab2.goto(deployment.base_url + "/")
        bob.online(tab2)
        _chat(alice, "seen in two tabs")
        for page in (bob.page, tab2):
            _expect(bob.conv(with_alice, page).get_by_test_id("unread")).to_have_text("1")
        bob.shot("05-two-tabs", tab2)
        bob.conv(with_alice, tab2).click()
        _expect(tab2.get_by_test_id("messages")).to_contain_text("seen in two tabs")
        _expect(bob.conv(with_alice).get_by_test_id("unread")).to_have_count(0)
        bob.online()  # the first tab was not kicked
        tab2.close()

        # --- a group with a friend; both post
        alice.tid("tab-groups").click()
        alice.tid("group-name").fill("Weekend")
        alice.page.locator(f"[data-testid=pick-member][data-user='{bob_id}']").check()
        alice.tid("create-group-button").click()
        _expect(alice.tid("chat-title")).to_have_text("Weekend")
        _chat(alice, "hello group")
        _expect(bob.conv_named("Weekend").get_by_test_id("conv-preview")).to_contain_text("hello group")
        _expect(bob.conv_named("Weekend").get_by_test_id("unread")).not_to_have_count(0)
        bob.conv_named("Weekend").click()
        _expect(bob.tid("messages")).to_contain_text("hello group")
        _chat(bob, "count me in")
        _expect(alice.tid("messages")).to_contain_text("count me in")
        alice.tid("toggle-members").click()
        _expect(alice.tid("member")).to_have_count(2)
        alice.shot("06-group")
        bob.shot("06-group")

        # --- reload: the conversation list and the history come back
        alice.page.reload()
        alice.online()
        _expect(alice.conv(with_bob)).to_be_visible()
        alice.conv(with_bob).click()
        _expect(alice.tid("messages")).to_contain_text("hello bob")
        _expect(alice.tid("messages")).to_contain_text("hi alice")
        alice.shot("07-after-reload")

        # --- the server restarts; a message typed meanwhile is sent once when it is back
        bob.page.get_by_role("button", name="Back").click()
        deployment.stop()
        for p in (alice, bob):
            _expect(p.tid("conn-status")).not_to_have_attribute("data-status", "online")
        _chat(alice, "typed while the server was down")
        _expect(alice.tid("outbox")).to_have_attribute("data-status", "sending")
        alice.shot("08-offline")
        deployment.start()
        alice.online()
        bob.online()
        _expect(alice.tid("outbox")).to_have_count(0)
        _chat(alice, "after the restart")
        _expect(bob.conv(with_alice).get_by_test_id("conv-preview")).to_have_text("after the restart")
        bob.conv(with_alice).click()
        for text in ("typed while the server was down", "after the restart"):
            _expect(bob.page.locator("[data-testid=message]", has_text=text)).to_have_count(1)
        bob.shot("09-after-restart")
        alice.context.close()
        bob.context.close()


def _befriend(a: Person, b: Person, b_nick: str, *, agree: bool = True) -> None:
    a.tid("tab-contacts").click()
    a.tid("search-input").fill(b.name)
    a.tid("search-button").click()
    _expect(a.tid("search-result")).to_contain_text(b_nick)
    a.tid("add-friend").click()
    _expect(a.tid("contacts-note")).to_be_visible()
    b.tid("tab-contacts").click()
    b.tid("friend-request").get_by_test_id("accept" if agree else "reject").click()
    _expect(b.tid("friend-request")).to_have_count(0)


def test_requests_groups_blocking_language_and_kick_in_the_browser(deployment: Deployment) -> None:
    shots = ARTIFACTS / deployment.name
    with chromium() as browser:
        carol, dave, erin = (
            open_person(browser, deployment.base_url, unique(n), shots) for n in ("carol", "dave", "erin")
        )
        for p, nick in ((carol, "Carol"), (dave, "Dave"), (erin, "Erin")):
            register(p, nick)
        dave_id = dave.user_id()
        with_dave = f"u:{dave_id}"

        # a rejected request reaches the applicant as a notice; a second one is accepted
        _befriend(carol, dave, "Dave", agree=False)
        carol.tid("tab-chats").click()
        _expect(carol.conv(with_dave).get_by_test_id("conv-preview")).to_contain_text("declined")
        _befriend(carol, dave, "Dave")
        _expect(carol.tid("friend")).to_contain_text("Dave")

        # a group: Erin asks to join by id, Carol approves, then removes her; Dave leaves
        carol.tid("tab-groups").click()
        carol.tid("group-name").fill("Club")
        carol.page.locator(f"[data-testid=pick-member][data-user='{dave_id}']").check()
        carol.tid("create-group-button").click()
        _expect(carol.tid("chat-title")).to_have_text("Club")
        carol.tid("tab-groups").click()
        group_id = carol.tid("group").get_attribute("data-group")
        erin.tid("tab-groups").click()
        erin.tid("join-group-id").fill(str(group_id))
        erin.tid("join-group-button").click()
        _expect(erin.tid("groups-note")).to_contain_text("owner decides")
        carol.tid("toggle-members").click()
        carol.tid("join-request").get_by_test_id("accept").click()
        _expect(carol.tid("member")).to_have_count(3)
        _expect(erin.tid("group")).to_contain_text("Club")
        carol.shot("11-members")
        carol.page.locator(f"[data-testid=member][data-user='{erin.user_id()}']").get_by_test_id(
            "remove-member"
        ).click()
        _expect(carol.tid("member")).to_have_count(2)
        erin.tid("tab-chats").click()
        _expect(erin.tid("conv-list")).to_contain_text("You were removed from")
        dave.tid("tab-groups").click()
        dave.tid("group").click()
        dave.tid("toggle-members").click()
        dave.tid("leave-group").click()
        _expect(carol.tid("member")).to_have_count(1)

        # blocking: Carol's message to Dave fails visibly; after the unblock a retry goes through
        dave.tid("tab-contacts").click()
        dave.tid("friend").get_by_test_id("block").click()
        _expect(dave.tid("blocked")).to_contain_text("Carol")
        carol.tid("tab-chats").click()
        carol.conv(with_dave).click()
        _chat(carol, "can you hear me")
        _expect(carol.tid("outbox")).to_have_attribute("data-status", "failed")
        carol.shot("12-blocked")
        dave.tid("unblock").click()
        _expect(dave.tid("blocked")).to_have_count(0)
        carol.tid("outbox").get_by_role("button", name="Retry").click()
        _expect(carol.tid("outbox")).to_have_count(0)
        dave.tid("tab-chats").click()
        _expect(dave.conv(f"u:{carol.user_id()}").get_by_test_id("conv-preview")).to_have_text(
            "can you hear me"
        )

        # deleting a friend is one-way: Carol no longer lists Dave
        carol.tid("tab-contacts").click()
        carol.page.once("dialog", lambda d: d.accept())
        carol.tid("friend").get_by_test_id("delete-friend").click()
        _expect(carol.tid("friend")).to_have_count(0)

        # changing your nickname (friends see it when their friend list next refreshes)
        dave.page.once("dialog", lambda d: d.accept("Dave the Brave"))
        dave.tid("me-name").click()
        _expect(dave.tid("me-name")).to_have_text("Dave the Brave")

        # the UI speaks Simplified Chinese too, and every tab follows the switch
        carol.tid("lang").click()
        _expect(carol.tid("tab-chats")).to_contain_text("聊天")
        carol.shot("13-chinese")
        carol.tid("lang").click()
        _expect(carol.tid("tab-chats")).to_contain_text("Chats")

        # a login of the same account in another browser: this one says it was logged in elsewhere
        elsewhere = open_person(browser, deployment.base_url, carol.name, shots)
        login(elsewhere)
        _expect(carol.tid("kicked")).to_be_visible()
        carol.shot("14-kicked")
        elsewhere.online()
        carol.page.get_by_role("button", name="Log in again").click()
        _expect(carol.tid("auth-form")).to_be_visible()
        elsewhere.tid("logout").click()  # logging out ends the session: a reload shows the login form
        _expect(elsewhere.tid("auth-form")).to_be_visible()
        elsewhere.page.reload()
        _expect(elsewhere.tid("auth-form")).to_be_visible()
        for p in (carol, dave, erin, elsewhere):
            p.context.close()


def test_history_loads_on_scroll_up_and_sdk_messages_show_up(deployment: Deployment) -> None:
    """Messages sent through the Python SDK; Alice's PC reads some, then all (the badge follows); the chat
    shows the newest page and scrolling up loads the rest."""
    import asyncio

    from tests.e2e.helpers import PASSWORD as SDK_PASSWORD
    from tests.e2e.helpers import friend_pair, online

    async def chatter() -> tuple[str, int, str, int]:
        alice, alice_id, bob, bob_id = await friend_pair(deployment.base_url)
        async with online(deployment.base_url, bob, "PC") as b:
            for i in range(45):
                await b.send_text(alice_id, f"line {i:02d}")
        return alice, alice_id, bob, bob_id

    alice_name, alice_id, bob_name, bob_id = asyncio.run(chatter())

    async def chatter_more() -> None:
        async with online(deployment.base_url, bob_name, "PC") as b:
            await b.send_text(alice_id, "line 45")

    with chromium() as browser:
        alice = open_person(browser, deployment.base_url, alice_name, ARTIFACTS / deployment.name)
        # where SharedWorker is missing the session runs in the page: the same app, tested that way here
        alice.page.goto(deployment.base_url + "/?noshared")
        alice.page.fill("input[name=username]", alice_name)
        alice.page.fill("input[name=password]", SDK_PASSWORD)
        alice.tid("auth-submit").click()
        alice.online()
        assert alice.page.evaluate("window.tinyim.shared") is False
        conv = alice.conv(f"u:{bob_id}")
        _expect(conv.get_by_test_id("unread")).to_have_text("46")  # and the friend_accepted notice
        _expect(conv.get_by_test_id("conv-preview")).to_have_text("line 44")

        async def read_on_pc(up_to_line: int) -> None:  # Alice's PC reads part of it, then all of it
            async with online(deployment.base_url, alice_name, "PC") as pc:
                history, _ = await pc.history(peer_id=bob_id, limit=100)
                texts = [m for m in history if m.content.startswith("line")]
                await pc.mark_read(peer_id=bob_id, read_seq=texts[up_to_line].seq_id)

        run_async(read_on_pc(39))  # 5 left unread: the web app asks the server for the count
        _expect(conv.get_by_test_id("unread")).to_have_text("5")
        run_async(read_on_pc(44))
        _expect(conv.get_by_test_id("unread")).to_have_count(0)
        run_async(chatter_more())
        _expect(conv.get_by_test_id("unread")).to_have_text("1")
        conv.click()
        messages = alice.page.locator("[data-testid=message]")
        _expect(messages).to_have_count(30)  # the newest page
        _expect(messages.last).to_contain_text("line 45")
        alice.tid("messages").evaluate("el => el.scrollTo(0, 0)")
        _expect(messages).to_have_count(46)
        _expect(messages.first).to_contain_text("line 00")
        _expect(conv.get_by_test_id("unread")).to_have_count(0)
        alice.shot("10-history")
        alice.context.close()


def test_the_readme_javascript_example_talks_to_the_server(deployment: Deployment) -> None:
    """README's "speak the protocol from JavaScript", built to /examples/protocol.html, run in Chromium."""
    import asyncio

    from tests.e2e.helpers import PASSWORD as SDK_PASSWORD
    from tests.e2e.helpers import friend_pair, online

    alice, alice_id, bob, bob_id = asyncio.run(friend_pair(deployment.base_url))
    with chromium() as browser:
        page = browser.new_page()
        page.goto(
            f"{deployment.base_url}/examples/protocol.html?username={alice}&password={SDK_PASSWORD}&to={bob_id}"
        )
        out = page.locator("#out")
        _expect(out).to_contain_text("stored as seq")
        _expect(out).to_contain_text("hi from JS")

    async def bobs_history() -> list[str]:
        async with online(deployment.base_url, bob, "PC") as b:
            history, _ = await b.history(peer_id=alice_id)
            return [m.content for m in history if m.type == 0]

    assert asyncio.run(bobs_history()) == ["hi from JS"]


def _serves_files() -> bool:
    import importlib.util

    return importlib.util.find_spec("tinyim.modules.files") is not None


def test_an_image_and_a_file_reach_the_other_side(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Pick a file: it uploads over the file gateway's HTTP, the other side sees the image inline and
    downloads the file byte for byte."""
    import asyncio

    from tests.e2e.helpers import PASSWORD as SDK_PASSWORD
    from tests.e2e.helpers import friend_pair

    if not _serves_files():
        pytest.skip("this server version has no file transfer yet (the files module)")
    alice_name, alice_id, bob_name, bob_id = asyncio.run(friend_pair(deployment.base_url))
    files = tmp_path_factory.mktemp("web-files")
    image = files / "screenshot.png"
    image.write_bytes((REPO / "docs" / "web-phone.png").read_bytes())
    blob = files / "data.bin"
    blob.write_bytes(bytes(range(256)) * 5000)  # 1.28 MB: several chunks
    shots = ARTIFACTS / deployment.name
    with chromium() as browser:
        alice = open_person(browser, deployment.base_url, alice_name, shots)
        bob = open_person(browser, deployment.base_url, bob_name, shots)
        for p in (alice, bob):
            p.page.fill("input[name=username]", p.name)
            p.page.fill("input[name=password]", SDK_PASSWORD)
            p.tid("auth-submit").click()
            p.online()
        alice.conv(f"u:{bob_id}").click()
        alice.tid("file-input").set_input_files([str(image), str(blob)])
        for p in (alice, bob):
            if p is bob:
                bob.conv(f"u:{alice_id}").click()
            img = p.tid("image")
            _expect(img).to_be_visible()
            p.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
            _expect(p.tid("download")).to_be_visible()
        bob.shot("15-files")
        href = bob.tid("download").get_attribute("href")
        assert href
        got = bob.page.request.get(href)
        assert got.status == 200 and got.body() == blob.read_bytes()
        with bob.page.expect_download() as download:  # a click takes a fresh link and saves the file
            bob.tid("download").click()
        saved = download.value.path()
        assert download.value.suggested_filename == "data.bin" and saved.read_bytes() == blob.read_bytes()
        for p in (alice, bob):
            p.context.close()


def test_an_upload_resumes_after_a_reload(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Close the app while a file uploads and open it again: the stored file continues at the gateway's
    offset in the same task, and the message is sent once, with every byte."""
    import asyncio

    from tests.e2e.helpers import PASSWORD as SDK_PASSWORD
    from tests.e2e.helpers import friend_pair

    if not _serves_files():
        pytest.skip("this server version has no file transfer yet (the files module)")
    if deployment.name != "one-process":
        pytest.skip("the one-process server is started with small file chunks for this test")
    alice_name, _, _, bob_id = asyncio.run(friend_pair(deployment.base_url))
    blob = tmp_path_factory.mktemp("web-resume") / "movie.bin"
    blob.write_bytes(bytes(range(256)) * 12_000)  # 3 MB in 16 KiB chunks
    with chromium() as browser:
        alice = open_person(browser, deployment.base_url, alice_name, ARTIFACTS / deployment.name)
        alice.page.fill("input[name=username]", alice_name)
        alice.page.fill("input[name=password]", SDK_PASSWORD)
        alice.tid("auth-submit").click()
        alice.online()
        alice.conv(f"u:{bob_id}").click()
        alice.tid("file-input").set_input_files(str(blob))
        uploading = '[data-testid=upload]:not([data-task^="local-"]) progress'
        alice.page.wait_for_function(f"() => document.querySelector('{uploading}')?.value > 0")
        task_id = alice.tid("upload").get_attribute("data-task")
        assert task_id and not task_id.startswith("local-")
        # close the only tab (the shared session goes with it), then open the app again
        alice.page.close()
        time.sleep(1)
        alice.page = alice.context.new_page()
        alice.page.goto(deployment.base_url + "/")
        alice.online()
        alice.conv(f"u:{bob_id}").click()
        _expect(alice.tid("download")).to_have_count(1, timeout=60_000)
        href = alice.tid("download").get_attribute("href")
        assert href and f"/{task_id}" in href  # the same upload task, continued: not a second upload
        assert alice.page.request.get(href).body() == blob.read_bytes()
        alice.context.close()


def test_without_shared_worker_the_tabs_elect_a_leader(deployment: Deployment) -> None:
    """?noshared: the app acts as where SharedWorker is missing. The first tab leads (holds the session),
    a second one follows over a BroadcastChannel without kicking it; when the leader closes, it takes over."""
    with chromium() as browser:
        erin = open_person(browser, deployment.base_url, unique("erin"), ARTIFACTS / deployment.name)
        erin.page.goto(deployment.base_url + "/?noshared")
        register(erin, "Erin")
        assert erin.page.evaluate("window.tinyim.shared") is False
        follower = erin.context.new_page()
        follower.goto(deployment.base_url + "/?noshared")
        erin.online(follower)
        _expect(follower.get_by_test_id("me-name")).to_have_text("Erin")
        erin.online()  # the leader was not kicked
        follower.get_by_test_id("tab-groups").click()
        follower.get_by_test_id("group-name").fill("Solo")
        follower.get_by_test_id("create-group-button").click()  # a call through the leader
        _expect(erin.tid("tab-chats")).to_be_visible()
        _expect(erin.conv_named("Solo")).to_be_visible()
        follower.get_by_test_id("tab-groups").click()
        follower.get_by_test_id("group-name").fill("Duo")
        # Every status the tab shows from here on: it must not go on showing the closed leader's "online".
        follower.evaluate(
            """() => {
                const el = document.querySelector("[data-testid=conn-status]");
                window.__statuses = [];
                new MutationObserver(() => window.__statuses.push(el.dataset.status))
                    .observe(el, { attributes: true, attributeFilter: ["data-status"] });
            }"""
        )
        erin.page.close()  # the leader goes: the follower takes the lock and resumes the stored session
        # at once, before the takeover: the call waits for the next leader instead of going to no one
        follower.get_by_test_id("create-group-button").click()
        follower.wait_for_function(
            "window.__statuses.includes('connecting') && window.__statuses.at(-1) === 'online'",
            timeout=20_000,
        )
        erin.online(follower)
        _expect(follower.get_by_test_id("chat-title")).to_have_text("Duo")  # what was typed went through
        erin.online(follower)
        follower.get_by_test_id("tab-chats").click()
        _expect(erin.conv_named("Solo", follower)).to_be_visible()
        _expect(erin.conv_named("Duo", follower)).to_be_visible()
        erin.context.close()

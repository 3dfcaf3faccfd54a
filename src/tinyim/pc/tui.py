"""`tinyim chat`: a full-screen terminal chat client (Textual) on the Python SDK.

Left: conversations (last message, unread count) and pending requests (friend requests, group join
requests: Enter opens a dialog to accept or decline). Right: the open conversation (older history loads
when you scroll to the top, or with Ctrl+O), a transfer progress bar, and the input line: text is sent to
the open conversation, `/commands` do the rest (`/help`). Bottom: connection state and notifications (the
terminal bell rings for a message in a conversation that is not open).
"""

from __future__ import annotations

import asyncio
import io
import shlex
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message as TextualMessage
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, Header, Input, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from tinyim.client import (
    Client,
    ClientOptions,
    ConversationBook,
    FileSeqStore,
    Kicked,
    Message,
    ServerError,
    User,
    conversation_key,
    describe,
    file_of,
    register,
)
from tinyim.client.conversations import ConvKey
from tinyim.pb import im_protocol_pb2 as pb

from .account import Account

HELP = """\
Commands (anything else is sent to the open conversation):
  /open USER | g:GROUP_ID      open a conversation (USER: username or #id)
  /add USER [reason]           send a friend request      /accept USER, /decline USER
  /friends  /unfriend USER     /block USER  /unblock USER  /blacklist
  /groups   /group NAME USER…  (create with friends)       /members [GROUP_ID]
  /join GROUP_ID               /approve GROUP_ID USER      /deny GROUP_ID USER
  /leave [GROUP_ID]            /remove GROUP_ID USER       /nick NICKNAME
  /file PATH   /image PATH     send a file or an image to the open conversation
  /download [TASK_ID] [FOLDER] the last file of the open conversation (or TASK_ID) into FOLDER
  /dir FOLDER                  where downloads go          /quit (or Ctrl+Q)
Keys: Tab moves between the lists and the input; Enter on a request opens it; Ctrl+O loads older history."""

STATE_TEXT = {
    "connected": "[green]● connected[/]",
    "reconnecting": "[yellow]○ reconnecting…[/]",
    "kicked": "[red]✖ logged in elsewhere[/]",
    "closed": "[red]✖ closed[/]",
    "offline": "[yellow]○ connecting…[/]",
}


def screen_text(app: App[Any]) -> str:
    """The current screen as plain text (tests, and the README's capture)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


class History(VerticalScroll):
    """The open conversation; reaching the top asks for older messages."""

    class ReachedTop(TextualMessage):
        pass

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 < old_value:
            self.post_message(self.ReachedTop())

    def on_mouse_scroll_up(self) -> None:
        if self.scroll_y <= 0:  # already at the top (or nothing to scroll yet): the wheel asks for more
            self.post_message(self.ReachedTop())


class LoginScreen(Screen[None]):
    def __init__(self, account: Account, error: str = "", nickname: str = "") -> None:
        super().__init__()
        self._account = account
        self._error = error
        self._nickname = nickname

    def compose(self) -> ComposeResult:
        with Vertical(id="login"):
            yield Label("TinyIM — log in or register", id="login-title")
            yield Input(self._account.server, placeholder="server URL", id="server")
            yield Input(self._account.username, placeholder="username", id="username")
            yield Input(self._account.password, placeholder="password", password=True, id="password")
            yield Input(self._nickname, placeholder="nickname (only to register)", id="nickname")
            with Horizontal(id="login-buttons"):
                yield Button("Log in", id="login-button", variant="primary")
                yield Button("Register", id="register-button")
            yield Label(Content(self._error), id="login-error")

    def _values(self) -> tuple[str, str, str, str]:
        return tuple(  # type: ignore[return-value]
            self.query_one(f"#{name}", Input).value.strip()
            for name in ("server", "username", "password", "nickname")
        )

    @on(Button.Pressed, "#login-button")
    @on(Input.Submitted, "#password")
    def _login(self) -> None:
        server, username, password, _ = self._values()
        self.app_chat.begin(Account(server, username, password, self._account.device_id, self._account.home))

    @on(Button.Pressed, "#register-button")
    @on(Input.Submitted, "#nickname")
    def _register(self) -> None:
        server, username, password, nickname = self._values()
        account = Account(server, username, password, self._account.device_id, self._account.home)
        self.app_chat.begin(account, register_nickname=nickname or username)

    @property
    def app_chat(self) -> ChatApp:
        assert isinstance(self.app, ChatApp)
        return self.app

    def show_error(self, text: str) -> None:
        self.query_one("#login-error", Label).update(Content(text))


class RequestDialog(ModalScreen[bool | None]):
    """Accept or decline one friend or group join request."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Content(self._text), id="dialog-text")
            with Horizontal(id="dialog-buttons"):
                yield Button("Accept", id="accept", variant="success")
                yield Button("Decline", id="decline", variant="error")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss({"accept": True, "decline": False}.get(event.button.id or ""))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class ChatApp(App[int]):
    TITLE = "TinyIM"
    AUTO_FOCUS = "#input"  # typing goes to the input line; Tab reaches the lists
    CSS = """
    #sidebar { width: 36; border-right: solid $primary; }
    #convs { height: 2fr; border: none; }
    #requests { height: 1fr; border: none; }
    .section { background: $primary-background; width: 100%; text-style: bold; }
    #chat-title { background: $primary-background; width: 100%; text-style: bold; }
    #history { height: 1fr; }
    .line { width: 100%; }
    .mine { color: $text-muted; }
    .info { color: $warning; }
    #transfer-row { height: auto; display: none; }
    #transfer-row.active { display: block; }
    #status { height: 1; background: $panel; }
    #login { width: 60; height: auto; margin: 2 4; border: round $primary; padding: 1 2; }
    #login Input { margin-bottom: 1; }
    #login-buttons, #dialog-buttons { height: auto; }
    #login-error { color: $error; }
    RequestDialog { align: center middle; }
    #dialog { width: 60; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit"),
        Binding("ctrl+o", "load_older", "Older history"),
    ]

    def __init__(
        self,
        account: Account,
        *,
        register_nickname: str | None = None,
        download_dir: Path | None = None,
        history_page: int = 30,
        client_options: ClientOptions | None = None,
    ) -> None:
        super().__init__()
        self.account = account
        self.download_dir = download_dir or Path.home() / "Downloads"
        self.history_page = history_page
        self._client_options = client_options or ClientOptions()
        self._register_nickname = register_nickname
        self.client: Client | None = None
        self.book: ConversationBook | None = None
        self.users: dict[int, User] = {}
        self.group_names: dict[int, str] = {}
        self.current: ConvKey | None = None
        self.files: dict[str, Message] = {}  # task_id -> the FILE/IMAGE message that names it
        self.bells = 0
        self.notice = ""
        self.transfer_text = ""
        self._shown: set[int] = set()
        self._oldest = 0
        self._has_more = False
        self._loading_older = False
        self._last_state = ""
        self._pending_names: set[int] = set()
        self._pending_group = False

    def _alive(self) -> bool:
        """False once the app shuts down (timers, SDK callbacks and workers may still fire)."""
        return bool(self.screen_stack) and bool(self.main.query("#status"))

    @property
    def main(self) -> Screen[Any]:
        """The chat screen (under the login form or a dialog when those are open)."""
        return self.screen_stack[0]

    # ---------- layout ----------
    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with Horizontal(id="main"):
            with Vertical(id="sidebar"):
                yield Label("Conversations", classes="section")
                yield OptionList(id="convs")
                yield Label("Requests", classes="section")
                yield OptionList(id="requests")
            with Vertical(id="chat"):
                yield Label("no conversation open: pick one on the left, or /open USER", id="chat-title")
                yield History(id="history")
                with Vertical(id="transfer-row"):
                    yield Label("", id="transfer-label")
                    yield ProgressBar(id="transfer", show_eta=False)
                yield Input(placeholder="message, or /help", id="input")
        yield Static("", id="status")

    def on_mount(self) -> None:
        self.set_interval(0.25, self._show_state)
        if self.account.username and self.account.password and self.account.server:
            self.begin(self.account, register_nickname=self._register_nickname)
        else:
            self.push_screen(LoginScreen(self.account, nickname=self._register_nickname or ""))

    # ---------- session ----------
    def begin(self, account: Account, register_nickname: str | None = None) -> None:
        self.account = account
        self._session(register_nickname)

    @work(exclusive=True, group="session")
    async def _session(self, register_nickname: str | None) -> None:
        account = self.account
        self.set_notice(f"logging in as {account.username}…")

        def new_client() -> Client:
            return Client(
                account.server,
                account.username,
                account.password,
                account.device_id,
                seq_store=FileSeqStore(account.state_dir),
                on_read=self._on_read,
                options=self._client_options,
            )

        try:
            if register_nickname:
                await register(account.server, account.username, account.password, register_nickname)
            client = new_client()
            await client.login()  # wrong credentials (or no server) go back to the form
        except Exception as exc:
            self._login_failed(str(exc))
            return
        self.client = client
        self.book = ConversationBook.load(self._book_path(client), client.user_id)
        if isinstance(self.screen, LoginScreen):
            self.pop_screen()
        self.sub_title = f"{account.username} (#{client.user_id}) · {account.device_id}"
        delay = 0.5
        while True:
            try:
                await client.start()
                break
            except Kicked:
                return
            except Exception as exc:  # the server went away right after the login: start over
                await client.close()
                self.set_notice(f"cannot connect ({exc}); retrying")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
                client = self.client = new_client()
        for message in client.take_delivered():
            self._take(message, live=False)
        try:
            self.book.seed_unread(await client.unread())
        except Exception as exc:
            self.set_notice(f"unread counts unavailable: {exc}")
        await self._learn_names()
        self.refresh_lists()
        self._save_book()  # the seq store has moved on: the list must not fall behind it
        self.set_notice(f"logged in as {account.username} (#{client.user_id})")
        async for message in client.messages():
            self._want_names(message)
            if self._pending_names - set(self.users) or self._pending_group:
                await self._learn_names()  # so the notification names the sender
            self._take(message, live=True)

    def _login_failed(self, text: str) -> None:
        if isinstance(self.screen, LoginScreen):
            self.screen.show_error(text)
        else:
            self.push_screen(LoginScreen(self.account, text))

    def _book_path(self, client: Client) -> Path:
        return self.account.state_dir / f"conversations-{client.user_id}-{client.device_id}.json"

    def _save_book(self) -> None:
        if self.client is not None and self.book is not None:
            self.book.save(self._book_path(self.client))

    def _take(self, message: Message, *, live: bool) -> None:
        assert self.book is not None
        conv = self.book.add(message, count_unread=live)
        info = file_of(message)
        if info is not None:
            self.files[str(info["task_id"])] = message
        self._want_names(message)
        if not live:
            return
        if conv.key == self.current:
            self._append(message)
            if not message.is_mine:
                self._mark_read(message.seq_id)
        elif not message.is_mine:
            self.bells += 1
            self.bell()
            self.set_notice(f"new from {self.title_of(conv.key)}: {self.render_text(message)}")
        self.refresh_lists()
        self._save_book()

    def _on_read(self, peer_id: int, group_id: int, read_seq: int) -> None:
        if self.book is not None:
            self.book.mark_read((peer_id, group_id), read_seq)
            self.refresh_lists()
            self._save_book()

    # ---------- names ----------
    def _want_names(self, message: Message) -> None:
        ids = {message.sender_id, message.receiver_id}
        self._pending_names |= {i for i in ids if i and i not in self.users}
        if message.group_id and message.group_id not in self.group_names:
            self._pending_group = True

    async def _learn_names(self) -> None:
        client = self.client
        if client is None:
            return
        if self.book is not None:
            for peer, _ in self.book.conversations:
                if peer and peer not in self.users:
                    self._pending_names.add(peer)
            for user_id in self.book.friend_requests:
                self._pending_names.add(user_id)
            for _, user_id in self.book.join_requests:
                self._pending_names.add(user_id)
        missing = sorted(self._pending_names - set(self.users))
        want_groups = self._pending_group or not self.group_names
        self._pending_names.clear()
        self._pending_group = False
        try:
            for i in range(0, len(missing), 100):
                for user in await client.users(missing[i : i + 100]):
                    self.users[user.user_id] = user
            if want_groups:
                for group in await client.groups():
                    self.group_names[group.group_id] = group.name
        except Exception:
            return

    @work(exclusive=True, group="names")
    async def _refresh_names(self) -> None:
        await self._learn_names()
        self.refresh_lists()

    def user_name(self, user_id: int) -> str:
        user = self.users.get(user_id)
        if user is None:
            return f"#{user_id}"
        return f"{user.nickname} ({user.username})" if user.nickname else user.username

    def short_name(self, user_id: int) -> str:
        user = self.users.get(user_id)
        return (user.nickname or user.username) if user else f"#{user_id}"

    def title_of(self, key: ConvKey) -> str:
        peer, group = key
        if group:
            return f"group {self.group_names.get(group, '')} (g:{group})".replace("group  (", "group (")
        return self.user_name(peer)

    def render_text(self, message: Message) -> str:
        return describe(message, self.short_name)

    # ---------- lists ----------
    def refresh_lists(self) -> None:
        if self.book is None or not self._alive():
            return
        if self._pending_names - set(self.users):
            self._refresh_names()
        convs = self.main.query_one("#convs", OptionList)
        highlighted = convs.highlighted_option.id if convs.highlighted_option else None
        convs.clear_options()
        options = []
        for conv in self.book.ordered():
            badge = f" [{conv.unread}]" if conv.unread else ""
            preview = self.render_text(conv.last) if conv.last else ""
            prompt = f"{self.title_of(conv.key)}{badge}\n  {preview[:30]}"
            options.append(Option(Content(prompt), id=f"{conv.peer_id}:{conv.group_id}"))
        convs.add_options(options)
        if highlighted is not None:
            with_id = [o.id for o in options]
            if highlighted in with_id:
                convs.highlighted = with_id.index(highlighted)
        requests = self.main.query_one("#requests", OptionList)
        requests.clear_options()
        items = [
            Option(Content(f"friend: {self.user_name(r.user_id)} {r.reason}".strip()), id=f"f:{r.user_id}")
            for r in self.book.friend_requests.values()
        ] + [
            Option(
                Content(f"join g:{j.group_id}: {self.user_name(j.user_id)}"), id=f"j:{j.group_id}:{j.user_id}"
            )
            for j in self.book.join_requests.values()
        ]
        requests.add_options(items)
        total = self.book.total_unread
        self.title = f"TinyIM ({total} unread)" if total else "TinyIM"

    @on(OptionList.OptionSelected, "#convs")
    def _conv_selected(self, event: OptionList.OptionSelected) -> None:
        peer, group = (int(x) for x in (event.option.id or "0:0").split(":"))
        self.open_conversation((peer, group))

    @on(OptionList.OptionSelected, "#requests")
    def _request_selected(self, event: OptionList.OptionSelected) -> None:
        kind, *ids = (event.option.id or "").split(":")
        if kind == "f":
            user_id = int(ids[0])
            text = f"{self.user_name(user_id)} wants to be your friend."
            self.push_screen(RequestDialog(text), lambda agree: self._answer_friend(user_id, agree))
        elif kind == "j":
            group_id, user_id = int(ids[0]), int(ids[1])
            text = f"{self.user_name(user_id)} asks to join {self.title_of((0, group_id))}."
            self.push_screen(RequestDialog(text), lambda agree: self._answer_join(group_id, user_id, agree))

    def _answer_friend(self, user_id: int, agree: bool | None) -> None:
        if agree is None or self.client is None:
            return
        client = self.client

        async def answer() -> str:
            await client.handle_friend(user_id, agree)
            return f"{'accepted' if agree else 'declined'} {self.user_name(user_id)}'s friend request"

        self._run(answer, settle=lambda: self._settle(friend=user_id))

    def _answer_join(self, group_id: int, user_id: int, agree: bool | None) -> None:
        if agree is None or self.client is None:
            return
        client = self.client

        async def answer() -> str:
            await client.handle_join(group_id, user_id, agree)
            verdict = "approved" if agree else "declined"
            return f"{verdict} {self.user_name(user_id)}'s request to join g:{group_id}"

        self._run(answer, settle=lambda: self._settle(join=(group_id, user_id)))

    def _settle(self, friend: int = 0, join: tuple[int, int] | None = None) -> None:
        if self.book is not None:
            if friend:
                self.book.settle_friend(friend)
            if join is not None:
                self.book.settle_join(*join)

    # ---------- the open conversation ----------
    @work(exclusive=True, group="open")
    async def open_conversation(self, key: ConvKey) -> None:
        client = self.client
        if client is None or self.book is None:
            return
        self.current = key
        self._shown.clear()
        self._has_more = False
        self._oldest = 0
        history = self.main.query_one("#history", History)
        await history.remove_children()
        self.main.query_one("#chat-title", Label).update(Content(self.title_of(key)))
        try:
            messages, more = await client.history(peer_id=key[0], group_id=key[1], limit=self.history_page)
        except Exception as exc:
            self.info(f"history: {exc}")
            return
        if self.current != key:
            return
        for m in messages:
            self._want_names(m)
        if self._pending_names:
            await self._learn_names()
            self.main.query_one("#chat-title", Label).update(Content(self.title_of(key)))
        await self._prepend(messages)
        self._has_more = more
        history.scroll_end(animate=False)
        self.call_after_refresh(self._fill_view)
        conv = self.book.get(key)
        if conv.last is not None and (conv.unread or conv.read_seq < conv.last.seq_id):
            self._mark_read(conv.last.seq_id)
        self.main.query_one("#input", Input).focus()
        self.refresh_lists()

    async def _prepend(self, messages: list[Message]) -> Static | None:
        history = self.main.query_one("#history", History)
        lines = []
        for m in messages:
            if m.seq_id in self._shown:
                continue
            self._shown.add(m.seq_id)
            info = file_of(m)
            if info is not None:
                self.files[str(info["task_id"])] = m
            lines.append(self._line(m))
        if messages:
            self._oldest = (
                min(m.seq_id for m in messages)
                if not self._oldest
                else min(self._oldest, *(m.seq_id for m in messages))
            )
        if not lines:
            return None
        first = history.children[0] if history.children else None
        if first is not None:
            await history.mount_all(lines, before=first)
        else:
            await history.mount_all(lines)
        return lines[0]

    def _line(self, m: Message) -> Static:
        stamp = time.strftime("%H:%M", time.localtime(m.create_time / 1000))
        who = "me" if m.is_mine else self.short_name(m.sender_id)
        text = self.render_text(m)
        line = f"{stamp} {text}" if text.startswith("* ") else f"{stamp} {who}: {text}"
        return Static(
            Content(line),
            classes="line mine" if m.is_mine else "line",
        )

    def _append(self, message: Message) -> None:
        if message.seq_id in self._shown or not self._alive():
            return
        self._shown.add(message.seq_id)
        history = self.main.query_one("#history", History)
        history.mount(self._line(message))
        history.scroll_end(animate=False)

    def info(self, text: str) -> None:
        if not self._alive():
            return
        history = self.main.query_one("#history", History)
        history.mount(Static(Content(text), classes="line info"))
        history.scroll_end(animate=False)
        self.set_notice(text.splitlines()[0] if text else "")

    @on(History.ReachedTop)
    def _reached_top(self) -> None:
        self.action_load_older()

    def action_load_older(self) -> None:
        if self.current is not None and self._has_more and not self._loading_older:
            self._load_older(self.current)

    @work(exclusive=True, group="older")
    async def _load_older(self, key: ConvKey) -> None:
        client = self.client
        if client is None:
            return
        self._loading_older = True
        try:
            messages, more = await client.history(
                peer_id=key[0], group_id=key[1], before_seq=self._oldest, limit=self.history_page
            )
            if self.current != key:
                return
            history = self.main.query_one("#history", History)
            previous_top = history.children[0] if history.children else None
            filling = history.max_scroll_y <= 0  # the pane was not full: stay at the newest line
            await self._prepend(messages)
            self._has_more = more
            if filling:
                history.scroll_end(animate=False)
            elif previous_top is not None:
                # Keep the line that was at the top in view: loading is one page per scroll, not a cascade.
                self.call_after_refresh(self._keep_at_top, history, previous_top)
            self.call_after_refresh(self._fill_view)
        except Exception as exc:
            self.info(f"history: {exc}")
        finally:
            self._loading_older = False

    def _keep_at_top(self, history: History, line: Widget, tries: int = 20) -> None:
        """Scroll `line` back to the top once the page put above it is laid out. On a busy machine that
        can take more than one refresh: scrolled before, the view stays at the new page's first line."""
        if line.virtual_region.y > 0 or tries <= 0:
            history.scroll_to_widget(line, top=True, animate=False)
        else:
            self.call_after_refresh(self._keep_at_top, history, line, tries - 1)

    def _fill_view(self) -> None:
        """A page that does not fill the pane leaves nothing to scroll: fetch the next one at once."""
        history = self.main.query_one("#history", History)
        if history.max_scroll_y <= 0 and self._has_more and not self._loading_older:
            self.action_load_older()

    def _mark_read(self, seq: int) -> None:
        client, key = self.client, self.current
        if client is None or key is None or self.book is None:
            return
        self.book.mark_read(key, seq)
        self.refresh_lists()
        self._save_book()

        async def mark() -> None:
            try:
                await client.mark_read(peer_id=key[0], group_id=key[1], read_seq=seq)
            except Exception as exc:
                self.set_notice(f"could not mark read: {exc}")

        self.run_worker(mark(), group="read")

    # ---------- status ----------
    def set_notice(self, text: str) -> None:
        self.notice = text
        self._show_state()

    def _show_state(self) -> None:
        if not self._alive():
            return
        client = self.client
        state = client.connection_state if client is not None else "offline"
        if state != self._last_state:
            if state == "kicked":
                self.bells += 1
                self.bell()
                reason = client.kick_reason if client is not None else ""
                self.notice = f"this session ended: {reason or 'another login of this device type'}"
                self.main.query_one("#input", Input).disabled = True
            self._last_state = state
        who = f"{self.account.username} · {self.account.device_id}"
        status = Content.from_markup(STATE_TEXT[state]) + Content(f" {who} │ {self.notice}")
        self.main.query_one("#status", Static).update(status)

    # ---------- input ----------
    @on(Input.Submitted, "#input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        event.input.value = ""
        if not text.strip():
            return
        if text.startswith("/"):
            self.command(text)
        else:
            self.send_text(text)

    def send_text(self, text: str) -> None:
        client, key = self.client, self.current
        if client is None or key is None:
            self.info("open a conversation first (/open USER)")
            return

        if client.connection_state != "connected":
            self.set_notice("not connected: the message goes out once the connection is back")

        async def send() -> None:
            try:
                sent = await client.send(receiver_id=key[0], group_id=key[1], content=text)
            except Exception as exc:
                self.info(f"not sent: {exc}")
                return
            mine = Message(
                sent.seq_id, sent.msg_id, client.user_id, key[0], key[1], pb.TEXT, text,
                sent.send_time, sent.client_msg_id, True,
            )  # fmt: skip
            self._take(mine, live=True)

        self.run_worker(send(), group="send")

    def _run(
        self, action: Callable[[], Awaitable[str | None]], settle: Callable[[], object] | None = None
    ) -> None:
        async def go() -> None:
            try:
                result = await action()
            except ServerError as exc:
                if settle is not None and exc.code in ("not_found", pb.ERR_NOT_FOUND):
                    settle()
                    self.refresh_lists()
                self.info(f"error: {exc.message}")
                return
            except Exception as exc:
                self.info(f"error: {exc}")
                return
            if settle is not None:
                settle()
                self.refresh_lists()
                self._save_book()
            if result:
                self.info(result)

        self.run_worker(go(), group="command")

    def command(self, text: str) -> None:
        try:
            words = shlex.split(text[1:])  # quotes group words: /file "my notes.txt"
        except ValueError:
            words = text[1:].split()  # a lone apostrophe in free text: /add bob hi, it's me
        if not words:
            return
        name, args = words[0].lower(), words[1:]
        handler = getattr(self, f"cmd_{name.replace('-', '_')}", None)
        if handler is None:
            self.info(f"unknown command /{name}; /help lists them")
            return
        if self.client is None and name not in ("help", "quit", "dir"):
            self.info("not logged in yet")
            return
        handler(args)

    async def _user(self, who: str) -> User:
        assert self.client is not None
        user = await self.client.find_user(who)
        self.users[user.user_id] = user
        return user

    def _need(self, args: list[str], count: int, usage: str) -> bool:
        if len(args) < count:
            self.info(f"usage: {usage}")
            return False
        return True

    def cmd_help(self, args: list[str]) -> None:
        self.info(HELP)

    def cmd_quit(self, args: list[str]) -> None:
        self.exit(0)

    def cmd_open(self, args: list[str]) -> None:
        if not self._need(args, 1, "/open USER | g:GROUP_ID"):
            return
        target = args[0]
        if target.lower().startswith("g:"):
            self.open_conversation((0, int(target[2:])))
            return

        async def go() -> None:
            user = await self._user(target)
            self.open_conversation((user.user_id, 0))

        self._run(go)

    def cmd_add(self, args: list[str]) -> None:
        if not self._need(args, 1, "/add USER [reason]"):
            return
        assert self.client is not None
        client = self.client

        async def go() -> str:
            user = await self._user(args[0])
            now = await client.apply_friend(user.user_id, " ".join(args[1:]))
            return (
                f"{self.user_name(user.user_id)} is now your friend"
                if now
                else f"asked {self.user_name(user.user_id)}"
            )

        self._run(go)

    def _friend_answer(self, args: list[str], agree: bool) -> None:
        if not self._need(args, 1, "/accept USER" if agree else "/decline USER"):
            return

        async def resolve() -> None:
            user = await self._user(args[0])
            self._answer_friend(user.user_id, agree)

        self._run(resolve)

    def cmd_accept(self, args: list[str]) -> None:
        self._friend_answer(args, True)

    def cmd_decline(self, args: list[str]) -> None:
        self._friend_answer(args, False)

    def cmd_friends(self, args: list[str]) -> None:
        assert self.client is not None
        client = self.client

        async def go() -> str:
            friends = await client.friends()
            for u in friends:
                self.users[u.user_id] = u
            return "friends: " + (
                ", ".join(f"{self.user_name(u.user_id)} #{u.user_id}" for u in friends) or "none"
            )

        self._run(go)

    def _on_user(self, args: list[str], usage: str, act: Callable[[int], Awaitable[None]], done: str) -> None:
        if not self._need(args, 1, usage):
            return

        async def go() -> str:
            user = await self._user(args[0])
            await act(user.user_id)
            return f"{done} {self.user_name(user.user_id)}"

        self._run(go)

    def cmd_unfriend(self, args: list[str]) -> None:
        assert self.client is not None
        self._on_user(args, "/unfriend USER", self.client.delete_friend, "removed from your friends:")

    def cmd_block(self, args: list[str]) -> None:
        assert self.client is not None
        self._on_user(args, "/block USER", self.client.block, "blocked")

    def cmd_unblock(self, args: list[str]) -> None:
        assert self.client is not None
        self._on_user(args, "/unblock USER", self.client.unblock, "unblocked")

    def cmd_blacklist(self, args: list[str]) -> None:
        assert self.client is not None
        client = self.client

        async def go() -> str:
            users = await client.blacklist()
            return "blocked: " + (", ".join(f"{u.username} #{u.user_id}" for u in users) or "nobody")

        self._run(go)

    def cmd_groups(self, args: list[str]) -> None:
        assert self.client is not None
        client = self.client

        async def go() -> str:
            groups = await client.groups()
            for g in groups:
                self.group_names[g.group_id] = g.name
            self.refresh_lists()
            listed = ", ".join(f"{g.name} g:{g.group_id} ({g.member_count})" for g in groups)
            return "groups: " + (listed or "none")

        self._run(go)

    def cmd_group(self, args: list[str]) -> None:
        if not self._need(args, 1, "/group NAME USER…"):
            return
        assert self.client is not None
        client = self.client

        async def go() -> str:
            members = [(await self._user(who)).user_id for who in args[1:]]
            group_id = await client.create_group(args[0], members)
            self.group_names[group_id] = args[0]
            self.open_conversation((0, group_id))
            return f"created group {args[0]} g:{group_id}"

        self._run(go)

    def cmd_members(self, args: list[str]) -> None:
        group_id = self._group_arg(args)
        if not group_id:
            self.info("usage: /members GROUP_ID (or open a group)")
            return
        assert self.client is not None
        client = self.client

        async def go() -> str:
            members = await client.group_members(group_id)
            roles: dict[int, str] = {pb.ROLE_OWNER: " (owner)", pb.ROLE_ADMIN: " (admin)"}
            return "members: " + ", ".join(f"{u.username}{roles.get(role, '')}" for u, role in members)

        self._run(go)

    def _group_arg(self, args: list[str]) -> int:
        if args:
            return int(args[0].lower().removeprefix("g:"))
        return self.current[1] if self.current else 0

    def cmd_join(self, args: list[str]) -> None:
        if not self._need(args, 1, "/join GROUP_ID"):
            return
        assert self.client is not None
        client, group_id = self.client, self._group_arg(args)

        async def go() -> str:
            await client.join_group(group_id)
            return f"asked to join g:{group_id}; the owner decides"

        self._run(go)

    def _join_answer(self, args: list[str], agree: bool) -> None:
        if not self._need(args, 2, "/approve GROUP_ID USER" if agree else "/deny GROUP_ID USER"):
            return
        group_id = self._group_arg(args[:1])

        async def resolve() -> None:
            user = await self._user(args[1])
            self._answer_join(group_id, user.user_id, agree)

        self._run(resolve)

    def cmd_approve(self, args: list[str]) -> None:
        self._join_answer(args, True)

    def cmd_deny(self, args: list[str]) -> None:
        self._join_answer(args, False)

    def cmd_leave(self, args: list[str]) -> None:
        group_id = self._group_arg(args)
        assert self.client is not None
        client = self.client

        async def go() -> str:
            await client.leave_group(group_id)
            return f"left g:{group_id}"

        self._run(go)

    def cmd_remove(self, args: list[str]) -> None:
        if not self._need(args, 2, "/remove GROUP_ID USER"):
            return
        assert self.client is not None
        client, group_id = self.client, self._group_arg(args[:1])

        async def go() -> str:
            user = await self._user(args[1])
            await client.remove_member(group_id, user.user_id)
            return f"removed {self.user_name(user.user_id)} from g:{group_id}"

        self._run(go)

    def cmd_nick(self, args: list[str]) -> None:
        if not self._need(args, 1, "/nick NICKNAME"):
            return
        assert self.client is not None
        client = self.client

        async def go() -> str:
            await client.update_nickname(" ".join(args))
            return f"your nickname is now {' '.join(args)}"

        self._run(go)

    def cmd_dir(self, args: list[str]) -> None:
        if args:
            self.download_dir = Path(args[0]).expanduser()
        self.info(f"downloads go to {self.download_dir}")

    # ---------- files ----------
    def _progress(self, verb: str, name: str) -> Callable[[int, int], None]:
        row = self.main.query_one("#transfer-row")
        bar = self.main.query_one("#transfer", ProgressBar)
        label = self.main.query_one("#transfer-label", Label)
        row.add_class("active")
        bar.update(total=None, progress=0)

        def update(done: int, total: int) -> None:
            bar.update(total=max(total, 1), progress=done)
            percent = 100 * done // total if total else 0
            self.transfer_text = f"{verb} {name}: {done}/{total} bytes ({percent}%)"
            label.update(Content(self.transfer_text))

        return update

    def cmd_file(self, args: list[str], image: bool | None = None) -> None:
        if not self._need(args, 1, "/file PATH"):
            return
        client, key = self.client, self.current
        if client is None or key is None:
            self.info("open a conversation first (/open USER)")
            return
        path = Path(args[0]).expanduser()
        if not path.is_file():
            self.info(f"no such file: {path}")
            return
        progress = self._progress("sending", path.name)

        async def go() -> str:
            send_file = client.send_file
            await send_file(path, to=key[0], group=key[1], progress=progress, image=image)
            return f"sent {path.name}"

        self._run(go)

    def cmd_image(self, args: list[str]) -> None:
        self.cmd_file(args, image=True)

    def cmd_download(self, args: list[str]) -> None:
        """/download [TASK_ID] [FOLDER]: a FOLDER is an argument that looks like a path (/, ~ or .)."""
        client = self.client
        assert client is not None
        task_id = ""
        folder = self.download_dir
        for arg in args:
            if arg.startswith(("/", "~", ".")) or "/" in arg:
                folder = Path(arg).expanduser()
            else:
                task_id = arg
        message = self.files.get(task_id) if task_id else self._last_file()
        if message is None and not task_id:
            self.info("no file in this conversation; /download TASK_ID [FOLDER]")
            return
        info = file_of(message) if message is not None else None
        file_name = str(info.get("file_name", "")) if info else ""
        target: Message | str = message if message is not None else task_id
        progress = self._progress("downloading", file_name or f"task {task_id}")

        async def go() -> str:
            folder.mkdir(parents=True, exist_ok=True)
            download_file = client.download_file
            # A folder: the SDK names the file as it was stored (and never outside the folder).
            path = await download_file(target, folder, progress=progress)
            return f"downloaded {path.name} to {path}"

        self._run(go)

    def _last_file(self) -> Message | None:
        if self.current is None:
            return None
        found = [m for m in self.files.values() if conversation_key(m) == self.current]
        return max(found, key=lambda m: m.seq_id) if found else None

    def on_unmount(self) -> None:
        self._save_book()

    async def action_quit(self) -> None:
        self._save_book()
        if self.client is not None:
            await self.client.close()
        self.exit(0)


def run_chat(
    account: Account, *, register_nickname: str | None = None, download_dir: Path | None = None
) -> int:
    app = ChatApp(account, register_nickname=register_nickname, download_dir=download_dir)
    result = app.run()
    if app.client is not None:
        app._save_book()
    return int(result or 0)

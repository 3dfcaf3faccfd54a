import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import type { Bridge } from "../worker/bridge";
import {
  MsgType,
  noticeId,
  parseConvKey,
  parseNotice,
  type AppState,
  type ConvKey,
  type Msg,
  type OutboxItem,
  type User,
} from "../core/model";
import { fileBody } from "../core/files";
import { getLang, hasKey, onLangChange, setLang, t } from "./i18n";

type Tab = "chats" | "contacts" | "groups";

function useBridgeState(bridge: Bridge): AppState | null {
  const [state, setState] = useState<AppState | null>(bridge.state);
  useEffect(() => bridge.subscribe(setState), [bridge]);
  return state;
}

function useLang(): string {
  const [lang, setL] = useState(getLang());
  useEffect(() => onLangChange(() => setL(getLang())), []);
  return lang;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function userName(state: AppState, id: bigint): string {
  if (state.me && id === state.me.userId) return t("you");
  const u = state.users[String(id)];
  return u ? u.nickname || u.username : t("userOf", { id });
}

export function convName(state: AppState, key: ConvKey): string {
  const { peerId, groupId } = parseConvKey(key);
  if (groupId) {
    const g = state.groups.find((x) => x.groupId === groupId);
    return g ? g.name : t("groupOf", { id: groupId });
  }
  return userName(state, peerId);
}

function groupName(state: AppState, id: bigint): string {
  return convName(state, `g:${id}`);
}

/** One line for a timeline entry: notices rendered from their JSON, files by name. */
export function describe(state: AppState, m: { type: number; content: string; senderId?: bigint }): string {
  if (m.type === MsgType.SYSTEM || m.type === MsgType.FRIEND_REQ) {
    const n = parseNotice(m.content);
    if (!n) return m.content;
    const key = `ev_${n.event}`;
    const sender = m.senderId ?? 0n;
    const params = {
      user: userName(state, noticeId(n, "request_uid") || noticeId(n, "user_id") || sender),
      member: userName(state, noticeId(n, "user_id")),
      group: groupName(state, noticeId(n, "group_id")),
      name: String(n.name ?? ""),
      reason: n.reason ? `: ${String(n.reason)}` : "",
      event: n.event,
    };
    if (n.event === "group_created") params.user = userName(state, sender);
    return hasKey(key) ? t(key, params) : t("ev_unknown", params);
  }
  if (m.type === MsgType.IMAGE) return t("image");
  if (m.type === MsgType.FILE) return t("file", { name: fileBody(m.content)?.file_name ?? "" });
  return m.content;
}

function timeText(ms: number): string {
  if (!ms) return "";
  const d = new Date(ms);
  const now = new Date();
  const locale = getLang() === "zh" ? "zh-CN" : "en";
  return d.toDateString() === now.toDateString()
    ? d.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString(locale, { month: "short", day: "numeric" });
}

function Avatar({ name, group }: { name: string; group?: boolean }) {
  return <span class={`avatar${group ? " group" : ""}`}>{(name.trim()[0] ?? "?").toUpperCase()}</span>;
}

// ---------------------------------------------------------------- root
export function App({ bridge }: { bridge: Bridge }) {
  const state = useBridgeState(bridge);
  useLang();
  if (!state || state.status === "starting") return <div class="center">{t("loading")}</div>;
  if (state.status === "loggedOut") return <AuthScreen bridge={bridge} />;
  if (state.status === "kicked") return <KickedScreen bridge={bridge} reason={state.statusDetail} />;
  return <Main bridge={bridge} state={state} />;
}

function LangButton() {
  return (
    <button class="link" data-testid="lang" onClick={() => setLang(getLang() === "en" ? "zh" : "en")}>
      {t("language")}
    </button>
  );
}

function AuthScreen({ bridge }: { bridge: Bridge }) {
  const [mode, setMode] = useState<"login" | "register">("login");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [nickname, setNickname] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  async function submit(ev: Event) {
    ev.preventDefault();
    setBusy(true);
    setError("");
    try {
      if (mode === "login") await bridge.call("login", username, password);
      else await bridge.call("register", username, password, nickname || username);
    } catch (err) {
      setError(errText(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="auth">
      <form class="card" onSubmit={submit} data-testid="auth-form">
        <h1>{t("appName")}</h1>
        <input name="username" placeholder={t("username")} autocomplete="username" value={username}
          onInput={(e) => setUsername(e.currentTarget.value)} required />
        <input name="password" type="password" placeholder={t("password")} value={password}
          autocomplete={mode === "login" ? "current-password" : "new-password"}
          onInput={(e) => setPassword(e.currentTarget.value)} required />
        {mode === "register" && (
          <input name="nickname" placeholder={t("nickname")} value={nickname}
            onInput={(e) => setNickname(e.currentTarget.value)} />
        )}
        {error && <div class="error" data-testid="auth-error">{error}</div>}
        <button type="submit" class="primary" disabled={busy} data-testid="auth-submit">
          {mode === "login" ? t("login") : t("register")}
        </button>
        <button type="button" class="link" data-testid="auth-switch"
          onClick={() => setMode(mode === "login" ? "register" : "login")}>
          {mode === "login" ? t("noAccount") : t("haveAccount")}
        </button>
        <LangButton />
      </form>
    </div>
  );
}

function KickedScreen({ bridge, reason }: { bridge: Bridge; reason: string }) {
  return (
    <div class="auth">
      <div class="card" data-testid="kicked">
        <h1>{t("kickedTitle")}</h1>
        <p>{t("kickedBody", { reason })}</p>
        <button class="primary" onClick={() => void bridge.call("logout")}>{t("loginAgain")}</button>
      </div>
    </div>
  );
}

function StatusPill({ bridge, state }: { bridge: Bridge; state: AppState }) {
  const [, tick] = useState(0);
  useEffect(() => {
    if (state.status !== "offline") return;
    const id = setInterval(() => tick((n) => n + 1), 500);
    return () => clearInterval(id);
  }, [state.status]);
  const s = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
  return (
    <span class={`status ${state.status}`} data-testid="conn-status" data-status={state.status} title={state.statusDetail}>
      {t(`status_${state.status}`, { s })}
      {state.status === "offline" && (
        <button class="link" onClick={() => void bridge.call("reconnectNow")}>{t("reconnectNow")}</button>
      )}
    </span>
  );
}

// ---------------------------------------------------------------- main layout
function Main({ bridge, state }: { bridge: Bridge; state: AppState }) {
  const [tab, setTab] = useState<Tab>("chats");
  const [open, setOpen] = useState<ConvKey | null>(null);
  const [visible, setVisible] = useState(document.visibilityState === "visible");
  useEffect(() => {
    const on = () => setVisible(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", on);
    return () => document.removeEventListener("visibilitychange", on);
  }, []);
  useEffect(() => {
    bridge.viewing(open && visible ? [open] : []);
  }, [bridge, open, visible]);
  useEffect(() => {
    if (open) void bridge.call("openChat", open).catch(() => undefined);
  }, [bridge, open]);
  // A session never drops the window of a chat it opened: when that of the open chat vanishes, another session
  // took over (without SharedWorker: the leader tab went away and a tab resumed the stored session). It knows
  // nothing of this tab yet: what it views, which chat to load.
  const hasWindow = open !== null && state.chats[open] !== undefined;
  const seen = useRef<ConvKey | null>(null);
  useEffect(() => {
    if (open && !hasWindow && seen.current === open) {
      bridge.viewing(visible ? [open] : []);
      void bridge.call("openChat", open).catch(() => undefined);
    }
    seen.current = hasWindow ? open : null;
  }, [bridge, open, hasWindow]);
  const totalUnread = state.convs.reduce((n, c) => n + c.unread, 0);
  useEffect(() => {
    document.title = totalUnread ? `(${totalUnread}) ${t("appName")}` : t("appName");
  }, [totalUnread]);
  const openChat = (key: ConvKey) => {
    setOpen(key);
    setTab("chats");
  };
  return (
    <div class={`layout${open ? " has-chat" : ""}`}>
      <aside class="sidebar">
        <header class="topbar">
          <Avatar name={state.me?.nickname ?? "?"} />
          <div class="me">
            <strong data-testid="me-name" class="link-like" title={t("editNickname")} onClick={() => {
              const next = prompt(t("editNickname"), state.me?.nickname ?? "");
              if (next && next.trim() && next !== state.me?.nickname) void bridge.call("setNickname", next.trim());
            }}>{state.me?.nickname ?? ""}</strong>
            <small>{t("myId", { id: state.me?.userId ?? 0n })}</small>
          </div>
          <StatusPill bridge={bridge} state={state} />
        </header>
        <nav class="tabs">
          <button class={tab === "chats" ? "on" : ""} data-testid="tab-chats" onClick={() => setTab("chats")}>
            {t("chats")}
            {totalUnread > 0 && <span class="badge" data-testid="total-unread">{totalUnread}</span>}
          </button>
          <button class={tab === "contacts" ? "on" : ""} data-testid="tab-contacts" onClick={() => setTab("contacts")}>
            {t("contacts")}
            {state.friendRequests.length > 0 && <span class="badge">{state.friendRequests.length}</span>}
          </button>
          <button class={tab === "groups" ? "on" : ""} data-testid="tab-groups" onClick={() => setTab("groups")}>
            {t("groups")}
          </button>
        </nav>
        <div class="panel">
          {tab === "chats" && <ConvList state={state} open={open} onOpen={openChat} />}
          {tab === "contacts" && <Contacts bridge={bridge} state={state} onOpen={openChat} />}
          {tab === "groups" && <Groups bridge={bridge} state={state} onOpen={openChat} />}
        </div>
        <footer class="footer">
          <LangButton />
          <button class="link" data-testid="logout" onClick={() => void bridge.call("logout")}>{t("logout")}</button>
        </footer>
      </aside>
      <main class="chat">
        {open ? (
          <ChatPane key={open} bridge={bridge} state={state} convKey={open} onBack={() => setOpen(null)} />
        ) : (
          <div class="center muted">{t("pickChat")}</div>
        )}
      </main>
    </div>
  );
}

function ConvList({ state, open, onOpen }: { state: AppState; open: ConvKey | null; onOpen: (k: ConvKey) => void }) {
  if (!state.convs.length) return <p class="muted pad">{t("noChats")}</p>;
  return (
    <ul class="convs" data-testid="conv-list">
      {state.convs.map((c) => {
        const name = convName(state, c.key);
        const prefix = c.last.groupId && c.last.type === MsgType.TEXT && !c.last.isMine ? `${userName(state, c.last.senderId)}: ` : "";
        return (
          <li key={c.key} class={`conv${open === c.key ? " on" : ""}`} data-testid="conv" data-key={c.key}
            onClick={() => onOpen(c.key)}>
            <Avatar name={name} group={c.key.startsWith("g:")} />
            <div class="conv-main">
              <div class="row">
                <span class="name" data-testid="conv-name">{name}</span>
                <span class="time">{timeText(c.last.createTime)}</span>
              </div>
              <div class="row">
                <span class="preview" data-testid="conv-preview">{prefix + describe(state, c.last)}</span>
                {c.unread > 0 && <span class="badge" data-testid="unread">{c.unread}</span>}
              </div>
            </div>
          </li>
        );
      })}
    </ul>
  );
}

// ---------------------------------------------------------------- chat
type Row = { kind: "msg"; m: Msg } | { kind: "out"; o: OutboxItem };

function ChatPane(props: { bridge: Bridge; state: AppState; convKey: ConvKey; onBack: () => void }) {
  const { bridge, state, convKey } = props;
  const w = state.chats[convKey];
  const [text, setText] = useState("");
  const [showMembers, setShowMembers] = useState(false);
  const [dragging, setDragging] = useState(false);
  const [error, setError] = useState("");
  const list = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const prevHeight = useRef(0);
  const isGroup = convKey.startsWith("g:");
  const { groupId } = parseConvKey(convKey);

  const rows = useMemo<Row[]>(() => {
    const msgs = w?.msgs ?? [];
    const synced = new Set(msgs.filter((m) => m.isMine).map((m) => m.clientMsgId));
    const out = state.outbox.filter((o) => o.key === convKey && !synced.has(o.clientMsgId));
    return [...msgs.map((m) => ({ kind: "msg", m }) as Row), ...out.map((o) => ({ kind: "out", o }) as Row)];
  }, [w, state.outbox, convKey]);

  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    if (stick.current) el.scrollTop = el.scrollHeight;
    else if (prevHeight.current && el.scrollHeight > prevHeight.current && el.scrollTop < 40) {
      el.scrollTop += el.scrollHeight - prevHeight.current; // older page prepended: keep the view still
    }
    prevHeight.current = el.scrollHeight;
    // A page that does not fill the view leaves nothing to scroll: load older ones until it does.
    if (el.scrollHeight <= el.clientHeight && w?.hasMore && !w.loading && w.msgs.length) {
      void bridge.call("loadOlder", convKey);
    }
  }, [rows.length, w?.hasMore, w?.loading]);

  function onScroll() {
    const el = list.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 40 && w?.hasMore && !w.loading) void bridge.call("loadOlder", convKey);
  }

  function send(ev: Event) {
    ev.preventDefault();
    const body = text.trim();
    if (!body) return;
    stick.current = true;
    void bridge.call("send", convKey, body);
    setText("");
  }

  async function sendFiles(files: FileList | null) {
    if (!files) return;
    for (const file of Array.from(files)) {
      stick.current = true;
      await bridge.call("sendFile", convKey, file).catch((err) => setError(errText(err)));
    }
  }

  const uploads = state.uploads.filter((u) => u.key === convKey);
  return (
    <div class={`chat-pane${dragging ? " dragging" : ""}`} data-testid="chat" data-key={convKey}
      onDragOver={(e) => { e.preventDefault(); setDragging(true); }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => { e.preventDefault(); setDragging(false); void sendFiles(e.dataTransfer?.files ?? null); }}>
      <header class="chat-head">
        <button class="back" onClick={props.onBack} aria-label={t("back")}>‹</button>
        <strong data-testid="chat-title">{convName(state, convKey)}</strong>
        {isGroup && (
          <button class="link" data-testid="toggle-members" onClick={() => setShowMembers(!showMembers)}>
            {t("members")}
          </button>
        )}
      </header>
      <div class="chat-body">
        <div class="messages" ref={list} onScroll={onScroll} data-testid="messages">
          <div class="muted small center-text">
            {w?.loading ? t("loadingOlder") : w && !w.hasMore ? t("noOlder") : ""}
          </div>
          {rows.map((r) =>
            r.kind === "msg" ? (
              <MessageRow key={`m${r.m.seq}`} bridge={bridge} state={state} m={r.m} group={isGroup} />
            ) : (
              <OutboxRow key={`o${r.o.clientMsgId}`} bridge={bridge} o={r.o} />
            ),
          )}
          {uploads.map((u) => (
            <div key={u.id} class="upload" data-testid="upload" data-task={u.id}>
              <span>{u.status === "failed" ? t("uploadFailed", { name: u.name, error: u.error })
                : t(u.status === "hashing" ? "hashing" : "uploading", { name: u.name })}</span>
              <progress max={u.size || 1} value={u.done} />
            </div>
          ))}
        </div>
        {isGroup && showMembers && <MembersPanel bridge={bridge} state={state} groupId={groupId} />}
      </div>
      {error && <div class="error pad" onClick={() => setError("")}>{error}</div>}
      <form class="composer" onSubmit={send}>
        <label class="attach" title={t("attach")} aria-label={t("attach")}>
          <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
            <path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"
              d="M21 11.5l-8.6 8.6a5.5 5.5 0 01-7.8-7.8l8.6-8.6a3.7 3.7 0 015.2 5.2l-8.6 8.6a1.8 1.8 0 01-2.6-2.6l7.9-7.9" />
          </svg>
          <input type="file" multiple data-testid="file-input" onChange={(e) => {
            void sendFiles(e.currentTarget.files);
            e.currentTarget.value = "";
          }} />
        </label>
        <textarea data-testid="composer" placeholder={t("typeMessage")} value={text} rows={1}
          onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => { if (e.key === "Enter" && !e.shiftKey) send(e); }} />
        <button type="submit" class="primary" data-testid="send">{t("send")}</button>
      </form>
    </div>
  );
}

function MessageRow({ bridge, state, m, group }: { bridge: Bridge; state: AppState; m: Msg; group: boolean }) {
  if (m.type === MsgType.SYSTEM || m.type === MsgType.FRIEND_REQ) {
    const n = parseNotice(m.content);
    const from = n ? noticeId(n, "request_uid") || m.senderId : m.senderId;
    const pendingFriend = n?.event === "friend_request" && state.friendRequests.some((r) => r.userId === from);
    const gid = n ? noticeId(n, "group_id") : 0n;
    const uid = n ? noticeId(n, "user_id") || m.senderId : 0n;
    const pendingJoin = n?.event === "group_join_request" && state.joinRequests.some((r) => r.groupId === gid && r.userId === uid);
    return (
      <div class="notice" data-testid="notice" data-event={n?.event ?? ""}>
        <span>{describe(state, m)}</span>
        {pendingFriend && <RequestButtons onAnswer={(agree) => bridge.call("handleFriend", from, agree)} />}
        {pendingJoin && <RequestButtons onAnswer={(agree) => bridge.call("handleJoin", gid, uid, agree)} />}
      </div>
    );
  }
  return (
    <div class={`msg${m.isMine ? " mine" : ""}`} data-testid="message" data-seq={String(m.seq)}>
      {!m.isMine && <Avatar name={userName(state, m.senderId)} />}
      <div class="bubble-wrap">
        {group && !m.isMine && <div class="sender">{userName(state, m.senderId)}</div>}
        <div class="bubble" data-testid="bubble">
          {m.type === MsgType.IMAGE || m.type === MsgType.FILE ? <FileContent bridge={bridge} m={m} /> : m.content}
        </div>
        <div class="time">{timeText(m.createTime)}</div>
      </div>
    </div>
  );
}

function FileContent({ bridge, m }: { bridge: Bridge; m: Msg }) {
  const body = fileBody(m.content);
  const [url, setUrl] = useState("");
  useEffect(() => {
    if (body) void bridge.call<string>("downloadUrl", body.task_id).then(setUrl, () => undefined);
  }, [bridge, body?.task_id]);
  if (!body) return <span>{m.content}</span>;
  if (m.type === MsgType.IMAGE) {
    return url ? (
      <a href={url} target="_blank" rel="noreferrer"><img class="image" data-testid="image" src={url} alt={body.file_name} /></a>
    ) : <span>{t("image")}</span>;
  }
  return (
    <span class="file">
      {body.file_name} ({t("fileSize", { kib: Math.ceil(body.size / 1024) })}){" "}
      {url && (
        <a href={url} download={body.file_name} data-testid="download" onClick={(e) => {
          // the link carries a short-lived token: take a fresh one for every click
          e.preventDefault();
          void bridge.call<string>("downloadUrl", body.task_id).then((fresh) => {
            setUrl(fresh);
            const a = Object.assign(document.createElement("a"), { href: fresh, download: body.file_name });
            a.click();
          });
        }}>{t("download")}</a>
      )}
    </span>
  );
}

function OutboxRow({ bridge, o }: { bridge: Bridge; o: OutboxItem }) {
  return (
    <div class="msg mine pending" data-testid="outbox" data-status={o.status}>
      <div class="bubble-wrap">
        <div class="bubble">{o.type === MsgType.TEXT ? o.content : fileBody(o.content)?.file_name}</div>
        <div class="time">
          {o.status === "sending" ? t("sending") : (
            <>
              {t("failed", { error: o.error })}{" "}
              <button class="link" onClick={() => void bridge.call("retrySend", o.clientMsgId)}>{t("retry")}</button>
              <button class="link" onClick={() => void bridge.call("discardSend", o.clientMsgId)}>{t("discard")}</button>
            </>
          )}
        </div>
      </div>
    </div>
  );
}

function RequestButtons({ onAnswer, yes = t("accept") }: { onAnswer: (agree: boolean) => Promise<unknown>; yes?: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const go = (agree: boolean) => {
    setBusy(true);
    onAnswer(agree).catch((err) => setError(errText(err))).finally(() => setBusy(false));
  };
  return (
    <span class="actions">
      <button class="primary small" disabled={busy} data-testid="accept" onClick={() => go(true)}>{yes}</button>
      <button class="small" disabled={busy} data-testid="reject" onClick={() => go(false)}>{t("reject")}</button>
      {error && <span class="error">{error}</span>}
    </span>
  );
}

// ---------------------------------------------------------------- contacts
function Contacts({ bridge, state, onOpen }: { bridge: Bridge; state: AppState; onOpen: (k: ConvKey) => void }) {
  const [query, setQuery] = useState("");
  const [found, setFound] = useState<User[] | null>(null);
  const [reason, setReason] = useState("");
  const [note, setNote] = useState("");
  async function search(ev: Event) {
    ev.preventDefault();
    setNote("");
    try {
      setFound(await bridge.call<User[]>("searchUsers", query));
    } catch (err) {
      setNote(t("error", { message: errText(err) }));
    }
  }
  async function add(u: User) {
    try {
      const now = await bridge.call<boolean>("applyFriend", u.userId, reason);
      setNote(now ? t("nowFriends") : t("requestSent"));
    } catch (err) {
      setNote(t("error", { message: errText(err) }));
    }
  }
  const blocked = new Set(state.blacklist.map((u) => u.userId));
  return (
    <div class="pad" data-testid="contacts">
      <form class="inline" onSubmit={search}>
        <input data-testid="search-input" placeholder={t("searchHint")} value={query}
          onInput={(e) => setQuery(e.currentTarget.value)} />
        <button data-testid="search-button">{t("search")}</button>
      </form>
      {found && (
        <div class="results" data-testid="search-results">
          {!found.length && <p class="muted">{t("searchNone")}</p>}
          {found.map((u) => (
            <div class="person" key={String(u.userId)} data-testid="search-result">
              <Avatar name={u.nickname} />
              <span class="grow">{u.nickname} <small class="muted">@{u.username} · {String(u.userId)}</small></span>
              {u.userId !== state.me?.userId && !state.friends.some((f) => f.userId === u.userId) && (
                <button class="primary small" data-testid="add-friend" onClick={() => void add(u)}>{t("add")}</button>
              )}
            </div>
          ))}
          <input placeholder={t("reasonHint")} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        </div>
      )}
      {note && <p class="note" data-testid="contacts-note">{note}</p>}
      {state.friendRequests.length > 0 && (
        <section>
          <h3>{t("newFriends")}</h3>
          {state.friendRequests.map((r) => (
            <div class="person" key={String(r.userId)} data-testid="friend-request">
              <Avatar name={userName(state, r.userId)} />
              <span class="grow">{userName(state, r.userId)}{r.reason && <small class="muted"> “{r.reason}”</small>}</span>
              <RequestButtons onAnswer={(agree) => bridge.call("handleFriend", r.userId, agree)} />
            </div>
          ))}
        </section>
      )}
      <section>
        <h3>{t("friends")}</h3>
        {!state.friends.length && <p class="muted">{t("noFriends")}</p>}
        {state.friends.map((f) => (
          <div class="person" key={String(f.userId)} data-testid="friend" data-user={String(f.userId)}>
            <Avatar name={f.nickname} />
            <span class="grow link-like" onClick={() => onOpen(`u:${f.userId}`)}>
              {f.nickname} <small class="muted">@{f.username}</small>
            </span>
            <button class="small" data-testid="message-friend" onClick={() => onOpen(`u:${f.userId}`)}>{t("message")}</button>
            <button class="small" data-testid="delete-friend" onClick={() => {
              if (confirm(t("confirmDelete", { name: f.nickname }))) void bridge.call("deleteFriend", f.userId);
            }}>{t("deleteFriend")}</button>
            {!blocked.has(f.userId) && (
              <button class="small" data-testid="block" onClick={() => void bridge.call("block", f.userId)}>{t("block")}</button>
            )}
          </div>
        ))}
      </section>
      {state.blacklist.length > 0 && (
        <section>
          <h3>{t("blocked")}</h3>
          {state.blacklist.map((u) => (
            <div class="person" key={String(u.userId)} data-testid="blocked">
              <Avatar name={u.nickname} />
              <span class="grow">{u.nickname}</span>
              <button class="small" data-testid="unblock" onClick={() => void bridge.call("unblock", u.userId)}>{t("unblock")}</button>
            </div>
          ))}
        </section>
      )}
    </div>
  );
}

// ---------------------------------------------------------------- groups
function Groups({ bridge, state, onOpen }: { bridge: Bridge; state: AppState; onOpen: (k: ConvKey) => void }) {
  const [name, setName] = useState("");
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [joinId, setJoinId] = useState("");
  const [note, setNote] = useState("");
  async function create(ev: Event) {
    ev.preventDefault();
    try {
      const id = await bridge.call<bigint>("createGroup", name, [...picked].map(BigInt));
      setName("");
      setPicked(new Set());
      onOpen(`g:${id}`);
    } catch (err) {
      setNote(t("error", { message: errText(err) }));
    }
  }
  async function join(ev: Event) {
    ev.preventDefault();
    try {
      if (!/^\d+$/.test(joinId.trim())) throw new Error(t("groupIdHint"));
      const pending = await bridge.call<boolean>("joinGroup", BigInt(joinId.trim()));
      setNote(pending ? t("joinPending") : t("joinDone"));
    } catch (err) {
      setNote(t("error", { message: errText(err) }));
    }
  }
  const toggle = (id: string) => {
    const next = new Set(picked);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setPicked(next);
  };
  return (
    <div class="pad" data-testid="groups">
      <ul class="convs">
        {state.groups.map((g) => (
          <li key={String(g.groupId)} class="conv" data-testid="group" data-group={String(g.groupId)}
            onClick={() => onOpen(`g:${g.groupId}`)}>
            <Avatar name={g.name} group />
            <div class="conv-main">
              <span class="name">{g.name}</span>
              <small class="muted"> · {t("groupSummary", { count: g.memberCount, id: g.groupId })}</small>
            </div>
          </li>
        ))}
      </ul>
      <form class="stack" onSubmit={create} data-testid="create-group">
        <h3>{t("createGroup")}</h3>
        <input data-testid="group-name" placeholder={t("groupName")} value={name} required
          onInput={(e) => setName(e.currentTarget.value)} />
        <small class="muted">{t("pickMembers")}</small>
        {state.friends.map((f) => (
          <label key={String(f.userId)} class="check">
            <input type="checkbox" data-testid="pick-member" data-user={String(f.userId)}
              checked={picked.has(String(f.userId))} onChange={() => toggle(String(f.userId))} />
            {f.nickname}
          </label>
        ))}
        <button class="primary" data-testid="create-group-button">{t("createGroup")}</button>
      </form>
      <form class="inline" onSubmit={join}>
        <input data-testid="join-group-id" placeholder={t("groupIdHint")} value={joinId}
          onInput={(e) => setJoinId(e.currentTarget.value)} />
        <button data-testid="join-group-button">{t("join")}</button>
      </form>
      {note && <p class="note" data-testid="groups-note">{note}</p>}
    </div>
  );
}

function MembersPanel({ bridge, state, groupId }: { bridge: Bridge; state: AppState; groupId: bigint }) {
  const [error, setError] = useState("");
  useEffect(() => {
    void bridge.call("loadMembers", groupId).catch((err) => setError(errText(err)));
  }, [bridge, groupId]);
  const members = state.members[String(groupId)] ?? [];
  const myRole = members.find((m) => m.userId === state.me?.userId)?.role ?? 0;
  const requests = state.joinRequests.filter((r) => r.groupId === groupId);
  const act = (p: Promise<unknown>) => p.catch((err) => setError(errText(err)));
  return (
    <aside class="members" data-testid="members">
      <h3>{t("members")} ({members.length})</h3>
      {requests.length > 0 && (
        <section>
          <h4>{t("joinRequests")}</h4>
          {requests.map((r) => (
            <div class="person" key={String(r.userId)} data-testid="join-request">
              <span class="grow">{userName(state, r.userId)}</span>
              <RequestButtons yes={t("approve")} onAnswer={(agree) => bridge.call("handleJoin", groupId, r.userId, agree)} />
            </div>
          ))}
        </section>
      )}
      {members.map((m) => (
        <div class="person" key={String(m.userId)} data-testid="member" data-user={String(m.userId)}>
          <Avatar name={m.nickname} />
          <span class="grow">
            {m.nickname} {m.role === 3 && <small class="tag">{t("owner")}</small>}
            {m.role === 2 && <small class="tag">{t("admin")}</small>}
          </span>
          {myRole >= 2 && m.role < myRole && (
            <button class="small" data-testid="remove-member"
              onClick={() => void act(bridge.call("removeMember", groupId, m.userId))}>{t("remove")}</button>
          )}
        </div>
      ))}
      {myRole > 0 && myRole < 3 && (
        <button class="small danger" data-testid="leave-group" onClick={() => void act(bridge.call("leaveGroup", groupId))}>
          {t("leave")}
        </button>
      )}
      {error && <p class="error">{error}</p>}
    </aside>
  );
}

export type { JSX };

// The Web client in real headless Firefox (Debian's firefox-esr over WebDriver BiDi, puppeteer-core; never a
// downloaded browser) against a running server. Started by tests/e2e/test_web_firefox.py, which starts
// `tinyim run`; by hand: TINYIM_URL=http://127.0.0.1:8080 node e2e/firefox.mjs
//
// Two people, each in their own Firefox (own profile and storage, so own SharedWorker and session): register,
// befriend by username, chat both ways, an unread badge that opening the chat clears, reload and the history.
// Two browsers rather than two contexts of one: a context's page is a tab, only one tab of a window is
// visible, and puppeteer's clicks and waits on a hidden Firefox tab crawl (rendering is throttled there;
// a click took 27 s).
// The selectors are the data-testid ones tests/e2e/test_web.py uses in Chromium.
import { mkdirSync } from "node:fs";
import { randomUUID } from "node:crypto";
import puppeteer from "puppeteer-core";

const BASE = process.env.TINYIM_URL ?? "http://127.0.0.1:8080";
const FIREFOX = process.env.IM_TEST_FIREFOX ?? "/usr/bin/firefox-esr";
const SHOTS = process.env.TINYIM_SHOTS ?? "../test-artifacts/web/firefox";
const TIMEOUT_MS = 20_000;
const PASSWORD = "password1";
const DESKTOP = { width: 1100, height: 720 };
const PHONE = { width: 390, height: 780 };

const tid = (id) => `[data-testid="${id}"]`;
const unique = (name) => `${name}_${randomUUID().replaceAll("-", "").slice(0, 6)}`;
const started = Date.now();
const step = (what) => console.log(`[firefox ${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);

/** Wait until `check(selector, arg)` holds in the page (it runs there); on a timeout, say what was awaited. */
async function until(page, check, selector, arg, what) {
  try {
    await page.waitForFunction(check, { timeout: TIMEOUT_MS, polling: 100 }, selector, arg ?? null);
  } catch (err) {
    const seen = await page
      .$$eval(selector, (els) => els.map((e) => e.textContent).join(" | "))
      .catch(() => "?");
    throw new Error(`timed out: ${what} (${selector} shows: ${JSON.stringify(seen.slice(0, 300))})`, { cause: err });
  }
}

const hasText = (page, selector, text) =>
  until(page, (sel, t) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(t)),
    selector, text, `"${text}" in ${selector}`);
const hasExactText = (page, selector, text) =>
  until(page, (sel, t) => {
    const els = [...document.querySelectorAll(sel)];
    return els.length > 0 && els.every((e) => e.textContent === t);
  }, selector, text, `${selector} reads "${text}"`);
const count = (page, selector, n) =>
  until(page, (sel, want) => document.querySelectorAll(sel).length === want, selector, n, `${n} of ${selector}`);
const online = (page) =>
  until(page, (sel) => document.querySelector(sel)?.dataset.status === "online", tid("conn-status"), null,
    "connection online");
const titled = (page, title) =>
  until(page, (_sel, t) => document.title === t, "title", title, `the title "${title}"`);

async function click(page, selector) {
  await page.waitForSelector(selector, { visible: true, timeout: TIMEOUT_MS });
  await page.click(selector);
}

async function fill(page, selector, text) {
  const el = await page.waitForSelector(selector, { visible: true, timeout: TIMEOUT_MS });
  await el.click({ count: 3 }); // select what is there, so typing replaces it
  await page.keyboard.press("Backspace");
  await el.type(text);
}

class Person {
  constructor(name, browser, page) {
    Object.assign(this, { name, browser, page });
  }

  /** A headless Firefox of one's own: puppeteer gives it a fresh temporary profile and removes it on close. */
  static async open(name, viewport) {
    const browser = await puppeteer.launch({
      browser: "firefox",
      executablePath: FIREFOX,
      headless: true,
      protocolTimeout: 60_000,
    });
    try {
      const [page] = await browser.pages();
      await page.setViewport(viewport);
      await page.goto(BASE + "/");
      return new Person(name, browser, page);
    } catch (err) {
      await browser.close();
      throw err;
    }
  }

  async shot(name) {
    await this.page.screenshot({ path: `${SHOTS}/${name}-${this.name.split("_")[0]}.png` });
  }

  async register(nickname) {
    await click(this.page, tid("auth-switch"));
    await this.page.waitForSelector("input[name=nickname]", { timeout: TIMEOUT_MS });
    await fill(this.page, "input[name=username]", this.name);
    await fill(this.page, "input[name=password]", PASSWORD);
    await fill(this.page, "input[name=nickname]", nickname);
    await click(this.page, tid("auth-submit"));
    await online(this.page);
  }

  /** The id under the nickname ("ID 123…"): the last number in the me-name's parent. */
  async userId() {
    const text = await this.page.$eval(tid("me-name"), (el) => el.parentElement.textContent);
    const found = /(\d+)\s*$/.exec(text.trim());
    if (!found) throw new Error(`no user id in ${JSON.stringify(text)}`);
    return found[1];
  }

  conv(key) {
    return `${tid("conv")}[data-key="${key}"]`;
  }

  async chat(text) {
    await fill(this.page, tid("composer"), text);
    await click(this.page, tid("send"));
  }
}

async function scenario(alice, bob) {
  const people = [alice, bob];
  try {
    await alice.register("Alice");
    await bob.register("Bob");
    const shared = await alice.page.evaluate(() => window.tinyim.shared);
    if (shared !== true) throw new Error(`Firefox has SharedWorker: the session should live in one (${shared})`);
    await alice.shot("01-registered");
    const [aliceId, bobId] = [await alice.userId(), await bob.userId()];
    const withAlice = bob.conv(`u:${aliceId}`);
    const withBob = alice.conv(`u:${bobId}`);
    step("registered");

    // friends: search by username, request, accept
    await click(alice.page, tid("tab-contacts"));
    await fill(alice.page, tid("search-input"), bob.name);
    await click(alice.page, tid("search-button"));
    await hasText(alice.page, tid("search-result"), "Bob");
    await click(alice.page, tid("add-friend"));
    await hasText(alice.page, tid("contacts-note"), "Request sent");
    await click(bob.page, tid("tab-contacts"));
    await hasText(bob.page, tid("friend-request"), "Alice");
    await bob.shot("02-friend-request");
    await click(bob.page, `${tid("friend-request")} ${tid("accept")}`);
    await hasText(bob.page, tid("friend"), "Alice");
    await hasText(alice.page, tid("friend"), "Bob");
    step("friends");

    // both ways; the receiver sees an unread badge, opening the chat clears it
    await click(alice.page, tid("message-friend"));
    await alice.chat("hello bob");
    await hasText(alice.page, tid("messages"), "hello bob");
    await click(bob.page, tid("tab-chats"));
    await hasExactText(bob.page, `${withAlice} ${tid("unread")}`, "1");
    await hasExactText(bob.page, `${withAlice} ${tid("conv-preview")}`, "hello bob");
    await titled(bob.page, "(1) TinyIM");
    await bob.shot("03-unread-badge");
    await click(bob.page, withAlice);
    await hasText(bob.page, tid("messages"), "hello bob");
    await bob.chat("hi alice");
    await hasText(alice.page, `${tid("message")}:not(.mine)`, "hi alice");
    await count(alice.page, tid("unread"), 0); // Alice has the chat open: read at once
    await alice.shot("04-chat");
    await click(bob.page, 'button.back[aria-label="Back"]');
    await count(bob.page, tid("unread"), 0);
    await titled(bob.page, "TinyIM");
    await bob.shot("05-read");
    step("chatted, badge cleared");

    // reload: the conversation list and the history come back
    await alice.page.reload();
    await online(alice.page);
    await click(alice.page, withBob);
    await hasText(alice.page, tid("messages"), "hello bob");
    await hasText(alice.page, tid("messages"), "hi alice");
    await count(alice.page, tid("message"), 2);
    await alice.shot("06-after-reload");
    step("history after reload");
  } catch (err) {
    for (const p of people) await p.shot("failed").catch(() => {});
    throw err;
  }
}

mkdirSync(SHOTS, { recursive: true });
const opened = await Promise.allSettled([Person.open(unique("alice"), DESKTOP), Person.open(unique("bob"), PHONE)]);
const people = opened.filter((o) => o.status === "fulfilled").map((o) => o.value);
try {
  const failed = opened.find((o) => o.status === "rejected");
  if (failed) throw failed.reason;
  step(`launched ${await people[0].browser.version()} twice`);
  await scenario(...people);
  step("passed");
} finally {
  await Promise.all(people.map((p) => p.browser.close().catch(() => {})));
}

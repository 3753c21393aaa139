// The chat window: conversations, the timeline with its composer, people, files and status.
// Every string from the node (names, texts, file names, away texts) goes in as text.

import { el, fill, clock, bytes, km } from "./dom.js";

const $ = (id) => document.getElementById(id);


/** How often the panes are read again. */
const PANES_REFRESH_MS = 2000;

export class Chat {
  constructor(send, hello, token) {
    this.send = send;
    this.token = token;
    this.next = 1;
    this.pending = new Map();
    this.conversations = new Map();
    this.current = "lobby";
    this.snap = null;
    this.transfers = new Map();
    // Object URLs of the images received, by transfer: drawn inline in the timeline.
    this.previews = new Map();
    this.refreshTimer = null;
    this.me = hello.peer;
    $("chat").hidden = false;
    $("register").hidden = true;
    $("login").hidden = true;
    this.conversation("lobby");
    $("leave").hidden = true;
    this.wire();
    this.hello(hello);
    // Presence (away texts, rooms, distances) changes without an event of its own.
    setInterval(() => this.refresh(), PANES_REFRESH_MS);
    // A conversation counts as seen only while the page is in view.
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.shown(this.current, this.lastId(this.current));
    });
  }

  /** The node (re)connected: read everything again. */
  hello(hello) {
    this.emoji = hello.emoji || [];
    this.drawEmoji();
    this.refresh();
    this.load(this.current);
  }

  ask(value) {
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.send({ ...value, id });
    });
  }

  run(line) {
    return this.ask({ op: "run", line });
  }

  handle(value) {
    if (value.id !== undefined && value.id !== null && this.pending.has(value.id)) {
      const resolve = this.pending.get(value.id);
      this.pending.delete(value.id);
      resolve(value);
      return;
    }
    switch (value.event) {
      case "message":
        this.add(this.roomKey(value.room), value);
        break;
      case "direct":
        this.conversation(`@${value.peer}`, value.from);
        this.add(`@${value.peer}`, value);
        break;
      case "delivered":
        this.markDelivered(value);
        break;
      case "read":
        this.changeLine(`@${value.by}`, value.id, (line) => { line.state = "read"; });
        break;
      case "reaction":
        this.changeLine(this.keyOf(value), value.target, (line) => {
          line.reactions = { ...(line.reactions || {}) };
          line.reactions[value.emoji] = (line.reactions[value.emoji] || 0) + 1;
        });
        break;
      case "edited":
        this.changeLine(this.keyOf(value), value.target, (line) => {
          line.text = value.text;
          line.edited = true;
        });
        break;
      case "deleted":
        this.changeLine(this.keyOf(value), value.target, (line) => {
          line.text = "";
          line.deleted = true;
          line.edited = false;
          line.reactions = undefined;
        });
        break;
      case "file_offer":
      case "folder_offer":
      case "folder_received":
      case "file_progress":
      case "file_sending":
      case "file_received":
      case "file_failed":
        this.transfer(value);
        break;
      case "error":
        this.system(value.message);
        break;
      case "caught_up":
        if (value.count > 0) {
          const lines = value.count === 1 ? "1 line" : `${value.count} lines`;
          const text = value.first_visit ? `-- ${value.count} earlier ${value.count === 1 ? "line" : "lines"} --`
            : `-- ${lines} while you were away --`;
          this.add(this.roomKey(value.room), { event: "system", ts: value.ts, text });
        }
        break;
      case "joined":
      case "left":
      case "user_online":
      case "user_offline":
      case "connected":
      case "disconnected":
      case "registered":
      case "queued":
        this.refreshSoon();
        break;
      default:
        // Events this page does not know yet still show when they belong to a conversation.
        if (value.text !== undefined && (value.room || value.peer)) {
          this.add(value.room ? this.roomKey(value.room) : `@${value.peer}`, value);
        }
    }
  }

  /** The conversation a room's line belongs to: every cell of the location group is one. */
  roomKey(room) {
    if (room.startsWith("geo:") && this.snap?.me?.group) return "geo";
    return room;
  }

  conversation(key, title) {
    let c = this.conversations.get(key);
    if (!c) {
      c = { key, title: title || key, lines: [], unread: 0, loaded: false };
      this.conversations.set(key, c);
      this.drawConversations();
    } else if (title && c.title !== title) {
      c.title = title;
      this.drawConversations();
    }
    return c;
  }

  add(key, line) {
    const c = this.conversation(key);
    if (line.id && c.lines.some((l) => l.id === line.id && !l.outgoing === !line.outgoing)) return;
    c.lines.push(line);
    if (c.lines.length > 2000) c.lines.shift();
    if (key === this.current) {
      this.drawLine(line);
      this.shown(key, line.id);
    } else {
      c.unread += 1;
      this.drawConversations();
    }
  }

  system(text) {
    this.add(this.current, { event: "system", ts: Date.now(), text });
  }

  /** The conversation of a change: its room, else the private conversation with its peer. */
  keyOf(value) {
    return value.room ? this.roomKey(value.room) : `@${value.peer}`;
  }

  /** Applies `change` to the line `id` of conversation `key`, and redraws it if shown. */
  changeLine(key, id, change) {
    const c = this.conversations.get(key);
    const line = c?.lines.find((l) => l.id === id);
    if (!line) return;
    change(line);
    if (key === this.current) this.drawTimeline();
  }

  markDelivered(value) {
    const c = this.conversations.get(`@${value.to}`);
    if (!c) return;
    for (const line of c.lines) {
      if (line.outgoing && line.state === "queued" && (!line.id || line.id === value.id)) {
        line.state = "delivered";
      }
    }
    if (c.key === this.current) this.drawTimeline();
  }

  /** The id of the last line of conversation `key` that has one. */
  lastId(key) {
    const lines = this.conversations.get(key)?.lines ?? [];
    for (let i = lines.length - 1; i >= 0; i -= 1) {
      if (lines[i].id) return lines[i].id;
    }
    return undefined;
  }

  // -- the timeline --

  drawTimeline() {
    const c = this.conversation(this.current);
    fill($("timeline"), c.lines.map((l) => this.lineNode(l)));
    this.scroll();
  }

  drawLine(line) {
    $("timeline").append(this.lineNode(line));
    this.scroll();
  }

  scroll() {
    const t = $("timeline");
    t.scrollTop = t.scrollHeight;
  }

  lineNode(line) {
    if (line.event === "system") {
      return el("li", { class: "line system" }, el("span", { class: "text" }, line.text));
    }
    const quote = this.quoteOf(line);
    return el("li", {
      class: `line${line.outgoing ? " own" : ""}`,
      "data-id": line.id,
      "data-peer": line.peer,
      "data-transfer": line.transfer,
    },
    el("time", { class: "time", datetime: new Date(line.ts).toISOString() }, clock(line.ts)),
    el("span", { class: "from", title: line.peer }, line.from),
    line.distance_km !== undefined && line.distance_km !== null
      ? el("span", { class: "distance" }, `(${km(line.distance_km)})`) : null,
    quote ? el("span", { class: "quote", title: quote.text },
      `re ${quote.from}: "${quote.text}"`) : null,
    el("span", { class: `text${line.deleted ? " deleted" : ""}` }, line.deleted ? "(deleted)" : line.text),
    line.edited && !line.deleted ? el("span", { class: "state" }, "(edited)") : null,
    line.reactions
      ? el("span", { class: "reactions" },
        Object.entries(line.reactions).map(([emoji, n]) => `${emoji} ${n}`).join("  "))
      : null,
    line.state ? el("span", { class: `state state-${line.state}` }, line.state) : null,
    line.preview && this.previews.get(line.transfer)
      ? el("div", { class: "preview-box" },
        el("img", { class: "preview", src: this.previews.get(line.transfer), alt: line.name ?? "" }))
      : null);
  }

  /** What a line answers: the quote the node folded in, or the answered line when the
   * page holds it (a live reply carries only the answered line's id). */
  quoteOf(line) {
    const re = line.reply_to;
    if (!re) return null;
    if (typeof re === "object") return re;
    const lines = this.conversations.get(this.current)?.lines ?? [];
    const target = lines.find((l) => l.id === re);
    if (!target) return null;
    const text = target.deleted ? "(deleted)" : target.text;
    return { id: re, from: target.from, text: text.length > 40 ? `${text.slice(0, 40)}…` : text };
  }

  async load(key) {
    const c = this.conversation(key);
    if (c.loaded) {
      this.drawTimeline();
      return;
    }
    const conversation = key === "geo" ? this.snap?.me?.group?.room : key;
    if (!conversation) {
      this.drawTimeline();
      return;
    }
    const answer = await this.ask({ op: "history", conversation, count: 200 });
    if (answer.lines) {
      const old = answer.lines;
      const known = new Set(old.map((l) => l.id));
      c.lines = old.concat(c.lines.filter((l) => !known.has(l.id)));
      c.loaded = true;
    }
    if (key === this.current) this.drawTimeline();
  }

  async select(key) {
    this.current = key;
    const c = this.conversation(key);
    c.unread = 0;
    this.drawConversations();
    $("conversation-title").textContent = c.title;
    $("leave").hidden = key === "lobby" || key.startsWith("@");
    this.drawInfo();
    // The node sends plain lines to its current room: make it this one.
    if (key === "geo") {
      const radius = this.snap?.me?.group?.radius_km ?? 10;
      await this.run(`/join-geo ${radius}`);
    } else if (!key.startsWith("@")) {
      await this.run(`/join ${key}`);
    }
    await this.load(key);
    this.shown(key, this.lastId(key));
  }

  /** Tells the node the page shows `key` up to line `id`: unread counts and receipts
   * follow. Nothing counts as shown while the page is out of view; it is told again when
   * the page comes back. */
  shown(key, id) {
    if (key === "geo" || (id && !/^[0-9a-f]{32}$/.test(id)) || document.hidden) return;
    this.ask({ op: "shown", conversation: key, line: id || null });
  }

  drawInfo() {
    let info = "";
    if (this.current === "geo" && this.snap?.me?.group) {
      const g = this.snap.me.group;
      info = `${g.room}, ${km(g.radius_km)} around you`;
    } else if (this.current.startsWith("@")) {
      info = "private conversation";
    } else if (this.snap) {
      const room = this.snap.status.rooms.find((r) => r.room === this.current);
      if (room) info = `${room.members.length} other${room.members.length === 1 ? "" : "s"} here`;
    }
    $("conversation-info").textContent = info;
  }

  async submit() {
    const input = $("line");
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    const direct = this.current.startsWith("@") ? this.current.slice(1) : null;
    if (text.startsWith("/") && !text.startsWith("//")) {
      const answer = await this.run(text);
      if (answer.output) this.system(answer.output);
      this.refreshSoon();
      return;
    }
    const line = direct ? `/msg ${direct} ${text}` : text;
    const key = this.current;
    const answer = await this.run(line);
    if (!answer.ok) {
      this.add(key, { event: "system", ts: Date.now(), text: answer.output });
      return;
    }
    const o = answer.outcome || {};
    if (o.kind === "sent") {
      this.add(key, { event: "message", ts: answer.ts, id: o.id, from: o.from, peer: this.me,
        text: o.text, outgoing: true });
    } else if (o.kind === "direct") {
      const shown = text.startsWith("//") ? text.slice(1) : text;
      this.add(key, { event: "direct", ts: answer.ts, id: o.id, from: this.snap?.me?.name ?? "me",
        peer: this.me, text: expand(shown, this.emoji), outgoing: true,
        state: o.delivered ? "delivered" : "queued" });
    } else if (answer.output) {
      this.system(answer.output);
    }
  }

  // -- emoji --

  drawEmoji() {
    // One button per emoji, however many shortcodes it has (:+1: and :thumbsup:).
    const unique = this.emoji.filter(([, glyph], i, all) => all.findIndex(([, g]) => g === glyph) === i);
    fill($("emoji-picker"), unique.map(([code, glyph]) => el("button", {
      type: "button",
      title: `:${code}:`,
      onclick: () => {
        const input = $("line");
        input.value += glyph;
        input.focus();
      },
    }, glyph)));
  }

  // -- conversations, people, files, status --

  refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), 250);
  }

  async refresh() {
    const snap = await this.ask({ op: "snapshot" });
    if (snap.event !== "snapshot") return;
    this.snap = snap;
    for (const r of snap.status.rooms) {
      if (r.room.startsWith("geo:") && snap.me.group) continue;
      this.conversation(r.room);
    }
    if (snap.me.group) this.conversation("geo", `location group (${km(snap.me.group.radius_km)})`);
    // Every kept conversation, private ones included, with its unread count the first time.
    for (const kept of snap.conversations ?? []) {
      if (kept.key.startsWith("geo:") && snap.me.group) continue;
      const known = this.conversations.has(kept.key);
      const c = this.conversation(kept.key, kept.key.startsWith("@") ? kept.title : undefined);
      if (!known && kept.key !== this.current) c.unread = kept.unread;
    }
    for (const t of snap.transfers) {
      const known = this.transfers.get(t.transfer);
      const merged = { ...known, ...t };
      // The node's table has no sender-side progress: the live reports stand.
      if (known?.sending && t.state === "offered") {
        Object.assign(merged, { bytes: known.bytes, state: known.state });
      }
      this.transfers.set(t.transfer, merged);
    }
    $("me-name").textContent = snap.me.name;
    $("me-claim").textContent = snap.me.claim === "registered" ? "" : `(${snap.me.claim})`;
    this.drawConversations();
    this.drawPeople();
    this.drawTransfers();
    this.drawStatus();
    this.drawInfo();
  }

  joined(room) {
    return room === "lobby" || room === "geo" || room.startsWith("@")
      || (this.snap?.status.rooms ?? []).some((r) => r.room === room);
  }

  drawConversations() {
    const items = [...this.conversations.values()]
      .filter((c) => this.joined(c.key) || c.lines.length > 0)
      .map((c) => el("li", {
        class: `conversation${c.key === this.current ? " current" : ""}`,
        "data-key": c.key,
        onclick: () => this.select(c.key),
      },
      el("span", { class: "title" }, c.title),
      c.unread ? el("span", { class: "unread" }, String(c.unread)) : null));
    fill($("conversation-list"), items);
  }

  drawPeople() {
    const snap = this.snap;
    fill($("people"), snap.users.map((u) => el("li", {
      class: `user${u.blocked ? " blocked" : ""}`,
      "data-peer": u.peer,
      ondragover: (e) => e.preventDefault(),
      ondrop: (e) => this.drop(e, u.peer),
    },
    el("span", { class: "name", title: u.peer }, u.name),
    u.distance_km !== null && u.distance_km !== undefined ? el("span", { class: "distance" }, km(u.distance_km)) : null,
    u.via_bootstrap ? el("span", { class: "muted" }, "via bootstrap") : null,
    u.away ? el("span", { class: "away" }, `away: ${u.away}`) : null,
    el("span", { class: "rooms muted" }, u.rooms.join(" ")),
    el("span", { class: "actions" },
      el("button", { type: "button", class: "message", onclick: () => this.openDirect(u.peer, u.name) }, "message"),
      el("button", { type: "button", class: "send-file", onclick: () => this.pickFile(u.peer) }, "file"),
      el("button", { type: "button", class: u.blocked ? "unblock" : "block",
        onclick: () => this.command(`/${u.blocked ? "unblock" : "block"} ${u.peer}`) }, u.blocked ? "unblock" : "block"),
      el("button", { type: "button", class: "add-contact",
        onclick: () => this.command(`/contacts add ${u.name.replace(/#.*/, "")} ${u.peer}`) }, "contact")))));
    fill($("contacts"), snap.contacts.map((c) => el("li", { class: "contact", "data-peer": c.peer },
      el("span", { class: "name" }, c.name),
      el("span", { class: "muted" }, c.online ? "online" : "offline"),
      el("button", { type: "button", onclick: () => this.openDirect(c.peer, c.name) }, "message"),
      el("button", { type: "button", onclick: () => this.command(`/contacts remove ${c.name}`) }, "remove"))));
    fill($("blocked"), snap.blocked.map((b) => el("li", { class: "blocked-user", "data-peer": b.peer },
      el("span", { class: "name" }, b.name),
      el("button", { type: "button", class: "unblock", onclick: () => this.command(`/unblock ${b.peer}`) }, "unblock"))));
  }

  async command(line) {
    const answer = await this.run(line);
    if (answer.output) this.system(answer.output);
    this.refresh();
  }

  openDirect(peer, name) {
    this.conversation(`@${peer}`, name);
    this.select(`@${peer}`);
  }

  // -- files --

  pickFile(peer) {
    this.fileTarget = peer;
    $("file-input").click();
  }

  async drop(e, peer) {
    e.preventDefault();
    e.stopPropagation();
    for (const file of e.dataTransfer.files) await this.sendFile(file, peer);
  }

  /** Uploads `file` to the node, then offers it to `peer`, or to the current conversation. */
  async sendFile(file, peer) {
    const target = peer ?? (this.current.startsWith("@") ? this.current.slice(1) : null);
    const response = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      headers: { "x-ipm-token": this.token },
      body: file,
    });
    if (!response.ok) {
      this.system(await response.text());
      return;
    }
    const { path } = await response.json();
    if (!target && this.current === "geo") {
      this.system("Files are shared in rooms; pick a room or a person.");
      return;
    }
    if (!target && !this.current.startsWith("@")) await this.run(`/join ${this.current}`);
    const answer = await this.run(target ? `/send-file ${target} ${path}` : `/share ${path}`);
    if (answer.output) this.system(answer.output);
    this.refresh();
  }

  transfer(value) {
    const known = this.transfers.get(value.transfer) ?? { transfer: value.transfer };
    const t = { ...known };
    if (value.event === "file_offer") {
      Object.assign(t, { direction: "incoming", with: value.from, name: value.name, size: value.size,
        bytes: 0, state: "offered", room: value.room, peer: value.peer });
      this.add(value.room ? this.roomKey(value.room) : `@${value.peer}`, {
        event: "file_offer", ts: value.ts, from: value.from, peer: value.peer,
        text: `offers ${value.name} (${bytes(value.size)})` });
    } else if (value.event === "folder_offer") {
      const files = value.files === 1 ? "1 file" : `${value.files} files`;
      Object.assign(t, { direction: "incoming", with: value.from, name: `${value.name}/`, size: value.size,
        bytes: 0, state: "offered", room: value.room, peer: value.peer });
      this.add(value.room ? this.roomKey(value.room) : `@${value.peer}`, {
        event: "file_offer", ts: value.ts, from: value.from, peer: value.peer,
        text: `offers folder ${value.name}/ (${files}, ${bytes(value.size)})` });
    } else if (value.event === "folder_received") {
      Object.assign(t, { bytes: value.size, size: value.size, state: "done", path: value.path });
      const key = t.room ? this.roomKey(t.room) : t.peer ? `@${t.peer}` : null;
      if (key) {
        this.add(key, { event: "file", ts: value.ts, from: t.with, peer: t.peer, transfer: value.transfer,
          name: t.name, text: `${t.name} (${value.files} files, ${bytes(value.size)}), every sha256 verified` });
      }
    } else if (value.event === "file_progress") {
      Object.assign(t, { bytes: value.bytes, size: value.size, state: "downloading" });
    } else if (value.event === "file_sending") {
      // One report per stream: a share fetched by several members shows the latest.
      Object.assign(t, { bytes: value.bytes, size: value.size, sending: true,
        state: value.bytes >= value.size ? "sent" : "sending" });
    } else if (value.event === "file_received") {
      Object.assign(t, { bytes: value.size, size: value.size, state: "done", path: value.path, sha256: value.sha256 });
      this.received(t, value);
    } else if (value.event === "file_failed") {
      Object.assign(t, { state: "failed", reason: value.reason });
    }
    this.transfers.set(value.transfer, t);
    this.drawTransfers();
  }

  /** A verified download: a line in its conversation, with the image inline when the node
   * says it is one (it serves PNG, JPEG, GIF and WebP only, typed by their bytes). */
  async received(t, value) {
    const key = t.room ? this.roomKey(t.room) : t.peer ? `@${t.peer}` : null;
    if (!key) return;
    const line = { event: "file", ts: value.ts, from: t.with, peer: t.peer, transfer: value.transfer,
      name: t.name, text: `${t.name} (${bytes(value.size)}), sha256 verified`, preview: true };
    this.add(key, line);
    const response = await fetch(`/api/preview/${encodeURIComponent(value.transfer)}`, {
      headers: { "x-ipm-token": this.token },
    });
    const type = response.headers.get("content-type") ?? "";
    if (!response.ok || !/^image\/(png|jpeg|gif|webp)$/.test(type)) {
      line.preview = false;
      return;
    }
    this.previews.set(value.transfer, URL.createObjectURL(await response.blob()));
    if (key === this.current) this.drawTimeline();
  }

  drawTransfers() {
    const list = [...this.transfers.values()].reverse();
    fill($("transfers"), list.map((t) => el("li", {
      class: `transfer ${t.direction ?? ""} state-${t.state}`,
      "data-transfer": t.transfer,
      "data-state": t.state,
    },
    el("span", { class: "file-name" }, t.name ?? t.transfer),
    el("span", { class: "muted" }, `${t.direction === "outgoing" ? "to" : "from"} ${t.with ?? "?"}, ${bytes(t.size ?? 0)}`),
    el("progress", { max: t.size || 1, value: t.bytes ?? 0 }),
    el("span", { class: "transfer-state" }, t.state + (t.reason ? `: ${t.reason}` : "")),
    t.sha256 ? el("code", { class: "sha256" }, t.sha256) : null,
    t.direction === "incoming" && t.state === "offered"
      ? [el("button", { type: "button", class: "accept", onclick: () => this.command(`/accept ${t.transfer}`) }, "accept"),
        el("button", { type: "button", class: "reject", onclick: () => this.command(`/reject ${t.transfer}`) }, "reject")]
      : null)));
  }

  drawStatus() {
    const s = this.snap.status;
    const row = (name, ...values) => [el("dt", {}, name), ...values.flat().map((v) => el("dd", {}, v))];
    const kinds = s.connections.by_kind.map((k) => `${k.kind} ${k.count}`).join(", ");
    const bootstraps = s.peers.filter((p) => p.kind === "bootstrap").map((p) => `${p.name} ${p.peer}`);
    fill($("status-list"),
      row("name", s.name),
      row("peer id", s.peer),
      row("listening on", s.listen),
      row("seen by others at", s.external.length ? s.external : ["none yet"]),
      row("reachability (NAT)", s.nat),
      row("relayed addresses", s.relayed.length ? s.relayed : ["none"]),
      row("connections", `${s.peers.length} peers (${kinds}); keeps ${s.connections.low}–${s.connections.high}`),
      row("bootstraps", bootstraps.length ? bootstraps : ["none connected"]),
      row("peers", s.peers.map((p) => `${p.name} (${p.kind}) ${p.addrs.join(" ")}`)));
  }

  // -- wiring --

  wire() {
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    $("emoji-toggle").addEventListener("click", () => {
      $("emoji-picker").hidden = !$("emoji-picker").hidden;
    });
    $("file-button").addEventListener("click", () => this.pickFile(null));
    $("file-input").addEventListener("change", async () => {
      const input = $("file-input");
      const target = this.fileTarget;
      this.fileTarget = null;
      for (const file of input.files) await this.sendFile(file, target);
      input.value = "";
    });
    const pane = $("timeline-pane");
    pane.addEventListener("dragover", (e) => {
      e.preventDefault();
      pane.classList.add("dropping");
    });
    pane.addEventListener("dragleave", () => pane.classList.remove("dropping"));
    pane.addEventListener("drop", (e) => {
      pane.classList.remove("dropping");
      this.drop(e, null);
    });
    $("join-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const room = $("join-room").value.trim();
      if (!room) return;
      const answer = await this.run(`/join ${room}`);
      if (!answer.ok) {
        this.system(answer.output);
        return;
      }
      $("join-room").value = "";
      await this.refresh();
      this.select(answer.current);
    });
    $("geo-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const answer = await this.run(`/join-geo ${$("geo-radius").value}`);
      if (!answer.ok) {
        this.system(answer.output);
        return;
      }
      this.conversations.delete("geo");
      await this.refresh();
      this.select("geo");
    });
    $("join-interests").addEventListener("click", () => this.command("/join-interest"));
    $("leave").addEventListener("click", async () => {
      const key = this.current;
      const answer = await this.run(key === "geo" ? "/leave geo" : `/leave ${key}`);
      if (!answer.ok) {
        this.system(answer.output);
        return;
      }
      await this.refresh();
      this.select("lobby");
    });
    $("away-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.command(`/away ${$("away-text").value}`);
    });
    $("back").addEventListener("click", () => this.command("/back"));
    $("status-toggle").addEventListener("click", () => {
      $("status").hidden = !$("status").hidden;
      this.refresh();
    });
    $("status-close").addEventListener("click", () => {
      $("status").hidden = true;
    });
  }
}

/** `:code:` shortcodes as the node expands them, for lines shown before the node echoes. */
function expand(text, table) {
  return text.replace(/:([a-z0-9_+-]+):/g, (all, code) => {
    const hit = table.find(([c]) => c === code);
    return hit ? hit[1] : all;
  });
}

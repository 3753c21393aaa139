// The page's entry: reads the token from the URL fragment, opens the socket, and shows the
// registration, login or chat window as the node says.

import { showSetup } from "./setup.js";
import { Chat } from "./chat.js";

const banner = document.getElementById("banner");

function token() {
  const match = /(?:^|[#&])token=([0-9a-fA-F]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("ipm-token", match[1]);
    history.replaceState(null, "", location.pathname);
    return match[1];
  }
  return sessionStorage.getItem("ipm-token");
}

function say(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

const secret = token();
if (!secret) {
  say("No token: open the URL ipm printed (it ends in #token=...).");
} else {
  connect(secret, 0);
}

function connect(secret, attempt) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws?token=${secret}`);
  let chat = null;
  let phase = null;
  const send = (value) => socket.send(JSON.stringify(value));
  socket.addEventListener("open", () => say(""));
  socket.addEventListener("message", (message) => {
    let value;
    try {
      value = JSON.parse(message.data);
    } catch {
      return;
    }
    if (value.event === "phase") {
      if (value.phase === "running") {
        document.body.dataset.phase = "running";
        say("");
        if (!chat) chat = new Chat(send, value, secret);
        else chat.hello(value);
      } else if (value.phase !== phase) {
        document.body.dataset.phase = value.phase;
        showSetup(value, send);
      }
      phase = value.phase;
      return;
    }
    if (value.event === "setup_reply") {
      showSetup(value, send);
      return;
    }
    if (chat) chat.handle(value);
  });
  socket.addEventListener("close", () => {
    say("The connection to ipm is closed; trying again…");
    const pause = Math.min(5000, 500 * 2 ** attempt);
    setTimeout(() => connect(secret, attempt + 1), pause);
  });
}

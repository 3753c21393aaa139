// The first pages: registration (first run) and login (a sealed identity).

const register = document.getElementById("register");
const login = document.getElementById("login");
let sender = null;
let wired = false;

function wire() {
  if (wired) return;
  wired = true;
  document.getElementById("register-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const error = document.getElementById("register-error");
    const pass = document.getElementById("reg-pass").value;
    if (pass !== document.getElementById("reg-pass2").value) {
      error.textContent = "The two passphrases differ.";
      return;
    }
    error.textContent = "Checking the name…";
    document.getElementById("register-submit").disabled = true;
    sender({
      op: "register",
      name: document.getElementById("reg-name").value,
      geo: document.getElementById("reg-geo").value,
      interests: document.getElementById("reg-interests").value,
      passphrase: pass,
    });
  });
  document.getElementById("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    document.getElementById("login-error").textContent = "Opening the identity…";
    document.getElementById("login-submit").disabled = true;
    sender({ op: "login", passphrase: document.getElementById("login-pass").value });
  });
}

/** Shows the form of a `phase` message, or the answer of a `setup_reply`. */
export function showSetup(value, send) {
  sender = send;
  wire();
  if (value.event === "phase") {
    document.getElementById("chat").hidden = true;
    register.hidden = value.phase !== "register";
    login.hidden = value.phase !== "login";
    document.getElementById("register-bootstrap").hidden = !value.bootstrap;
    document.getElementById("login-name").textContent = value.name ? ` (${value.name})` : "";
    const banner = document.getElementById("banner");
    if (value.phase === "starting") {
      banner.textContent = "The node is starting…";
      banner.hidden = false;
    }
    return;
  }
  const form = register.hidden ? "login" : "register";
  document.getElementById(`${form}-submit`).disabled = false;
  const error = document.getElementById(`${form}-error`);
  if (value.ok) {
    error.textContent = "Starting the node…";
  } else {
    error.textContent = value.message;
  }
}

// The judging service's two interactive pages, in plain JavaScript (no framework, no build):
// /signup solves the proof of work and signs a team up; /team shows a team's submissions and
// uploads a new one. The proof of work is SHA-256 over "challenge:nonce" with `bits` leading
// zero bits (prizenet/judge/client.py's pow_ok); SHA-256 is written out here because the
// browser's crypto.subtle is asynchronous (too slow for a million hashes) and exists only on
// https or localhost pages.
"use strict";

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W = new Uint32Array(64);

// SHA-256 of a Uint8Array, as eight 32-bit words (FIPS 180-4).
function sha256(msg) {
  const n = msg.length;
  const blocks = (n + 9 + 63) >>> 6;
  const m = new Uint32Array(blocks * 16);
  for (let i = 0; i < n; i++) m[i >>> 2] |= msg[i] << (24 - (i & 3) * 8);
  m[n >>> 2] |= 0x80 << (24 - (n & 3) * 8);
  m[blocks * 16 - 2] = Math.floor(n / 0x20000000);  // the length in bits, high word
  m[blocks * 16 - 1] = (n * 8) >>> 0;
  let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
  let h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  for (let b = 0; b < blocks; b++) {
    for (let t = 0; t < 16; t++) W[t] = m[b * 16 + t];
    for (let t = 16; t < 64; t++) {
      const x = W[t - 15], y = W[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
    }
    let a = h0, c1 = h1, c2 = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[t] + W[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & c1) ^ (a & c2) ^ (c1 & c2))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c2; c2 = c1; c1 = a; a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0; h1 = (h1 + c1) | 0; h2 = (h2 + c2) | 0; h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
  }
  return [h0, h1, h2, h3, h4, h5, h6, h7].map((x) => x >>> 0);
}

function hex(words) {
  return words.map((x) => x.toString(16).padStart(8, "0")).join("");
}

const utf8 = new TextEncoder();

function powOk(challenge, nonce, bits) {
  if (bits === 0) return true;
  const h0 = sha256(utf8.encode(challenge + ":" + nonce))[0];
  if (bits <= 32) return (bits === 32 ? h0 : h0 >>> (32 - bits)) === 0;
  return false;
}

// The first decimal nonce that solves the challenge, in slices so the page stays responsive.
function solve(challenge, bits, progress) {
  return new Promise((resolve) => {
    let n = 0;
    const slice = () => {
      for (const end = n + 20000; n < end; n++) {
        if (powOk(challenge, String(n), bits)) return resolve(String(n));
      }
      if (progress) progress(n);
      setTimeout(slice, 0);
    };
    slice();
  });
}

async function api(path, options) {
  const resp = await fetch(path, options);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    throw new Error(`${resp.status}: ${detail}`);
  }
  return body;
}

function show(id, text, isError) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.className = isError ? "error" : "note";
}

async function signUp(form) {
  const members = form.members.value.split("\n").map((s) => s.trim()).filter(Boolean).map((name) => ({ name }));
  show("message", "Solving the proof of work…");
  const ch = await api("/api/signup/challenge");
  const nonce = await solve(ch.challenge, ch.bits, (n) => show("message", `Solving the proof of work… ${n.toLocaleString()} tries`));
  show("message", "Signing up…");
  const made = await api("/api/teams", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: form.name.value, contact: form.contact.value, accept_rules: form.accept.checked,
                           members, challenge: ch.challenge, nonce }),
  });
  show("message", `Team ${made.team} signed up. Its token is shown this once: copy it now; only its hash is kept.`);
  document.getElementById("token").textContent = made.token;
  document.getElementById("done").hidden = false;
  form.hidden = true;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

async function loadTeam(token) {
  const view = await api("/api/team", { headers: { Authorization: `Bearer ${token}` } });
  document.getElementById("team-name").textContent = view.team;
  document.getElementById("left").textContent = `${view.left_today} of ${view.daily_limit} scored submission(s) left today (UTC)`;
  const body = document.querySelector("#submissions tbody");
  body.replaceChildren();
  for (const s of view.submissions) {
    const row = document.createElement("tr");
    cell(row, String(s.id));
    cell(row, s.received_at.replace("T", " ").replace("Z", ""));
    cell(row, s.quiz_rmse.toFixed(4));
    if (view.final) cell(row, s.test_rmse.toFixed(4));
    cell(row, s.note || "");
    cell(row, s.sha256.slice(0, 12));
    body.appendChild(row);
  }
  document.getElementById("test-head").hidden = !view.final;
  document.getElementById("team").hidden = false;
}

async function upload(form, token) {
  const file = form.file.files[0];
  if (!file) throw new Error("choose a submission file first");
  show("message", `Sending ${file.name} (${file.size.toLocaleString()} bytes)…`);
  const data = new Uint8Array(await file.arrayBuffer());
  const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/octet-stream",
                    "X-Submission-SHA256": hex(sha256(data)) };
  if (form.note.value) headers["X-Note"] = encodeURIComponent(form.note.value);  // headers are Latin-1
  const r = await api("/api/submissions", { method: "POST", headers, body: data });
  const imp = r.improvement_pct === null ? "" : ` (${r.improvement_pct >= 0 ? "+" : ""}${r.improvement_pct.toFixed(2)}% over ${r.reference_rmse.toFixed(4)})`;
  show("message", `Submission #${r.id}: quiz RMSE ${r.quiz_rmse.toFixed(4)}${imp}`);
  await loadTeam(token);
}

function guard(fn) {
  return (event) => {
    event.preventDefault();
    fn().catch((e) => show("message", e.message, true));
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const signup = document.getElementById("signup");
  if (signup) signup.addEventListener("submit", guard(() => signUp(signup)));
  const login = document.getElementById("login");
  if (login) {
    const saved = sessionStorage.getItem("prizenet-token");
    const token = () => login.token.value.trim();
    if (saved) { login.token.value = saved; guard(() => loadTeam(saved))(new Event("load")); }
    login.addEventListener("submit", guard(async () => {
      sessionStorage.setItem("prizenet-token", token());
      await loadTeam(token());
      show("message", "");
    }));
    const send = document.getElementById("upload");
    send.addEventListener("submit", guard(() => upload(send, token())));
  }
});

// For the tests: the same hash and proof of work as the server's.
window.prizenetJudge = { sha256: (text) => hex(sha256(utf8.encode(text))), powOk, solve };

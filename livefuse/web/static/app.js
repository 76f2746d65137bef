// livefuse preview page: WebRTC to the daemon, preset and parameter controls, stats, snapshots.
// Plain script, no build step. `window.livefuse` exposes counters for tests and curious users.
"use strict";

const $ = (id) => document.getElementById(id);
const video = $("video");
const params = new URLSearchParams(location.search);
if (params.has("token")) {  // the cookie set with this page carries it now: keep it off the address bar and history
  const shown = new URLSearchParams(params);
  shown.delete("token");
  history.replaceState(null, "", location.pathname + (shown.size ? `?${shown}` : "") + location.hash);
}

const lf = (window.livefuse = {
  mode: null, state: "idle", peer: null, error: null, status: null, disabled: [],
  resource: null,     // the WHIP session (camera) or WHEP viewer (preview) this page holds: DELETE ends it
  session: null,      // camera mode: the id of this page's session (its own preset and parameters)
  frames: 0,          // video frames presented since the current connection started
  times: [],          // performance.now() of the last frames presented (for rate and gaps)
  fps(windowMs = 2000) {
    const now = performance.now();
    const recent = this.times.filter((t) => now - t <= windowMs);
    return recent.length > 1 ? ((recent.length - 1) * 1000) / (recent[recent.length - 1] - recent[0]) : 0;
  },
  maxGapMs(sinceMs) {
    const ts = this.times.filter((t) => t >= sinceMs);
    let gap = 0;
    for (let i = 1; i < ts.length; i++) gap = Math.max(gap, ts[i] - ts[i - 1]);
    return gap;
  },
  grab(type = "image/png") { return grabFrame().toDataURL(type); },
  audio: false,       // whether the stream received has a sound track (played muted: no echo)
  async audioPackets() {  // RTP packets of sound received so far on this connection
    if (!pc) return 0;
    let packets = 0;
    (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "audio") packets += r.packetsReceived; });
    return packets;
  },
});

let pc = null;
let camera = null;
let statusTimer = null;

function showMessage(text) {
  $("message").textContent = text || "";
  $("message").hidden = !text;
  lf.error = text || null;
}

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${method} ${path}: HTTP ${response.status}`);
  return data;
}

// -- frames ----------------------------------------------------------------------------------------

function onFrame() {
  lf.frames += 1;
  lf.times.push(performance.now());
  if (lf.times.length > 600) lf.times.splice(0, lf.times.length - 600);
  video.requestVideoFrameCallback(onFrame);
}
video.requestVideoFrameCallback(onFrame);

function grabFrame() {
  const canvas = $("grab");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas;
}

// -- WebRTC: WHIP (camera, a session of our own) and WHEP (preview, the daemon's stream) -----------------

// POST an SDP offer to a WHIP/WHEP endpoint: the answer and the resource it created (201 Created).
async function exchange(path, sdp) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: sdp, credentials: "same-origin",
  });
  if (response.status !== 201) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error || `POST ${path}: HTTP ${response.status}`);
  }
  return { sdp: await response.text(), resource: response.headers.get("Location") };
}

// The API path that controls what this page shows: its own session's in camera mode, else the daemon's.
function controlled(path) {
  return lf.session ? `/api/sessions/${lf.session}${path}` : `/api${path}`;
}

function waitForIce(conn) {
  if (conn.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (conn.iceGatheringState === "complete") {
        conn.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    conn.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000); // send what we have; host candidates come first
  });
}

async function disconnect() {
  if (lf.resource) api("DELETE", lf.resource).catch(() => {});
  if (pc) pc.close();
  if (camera) camera.getTracks().forEach((t) => t.stop());
  pc = camera = null;
  lf.peer = lf.resource = lf.session = null;
  lf.state = "idle";
}

// The daemon ending this stream (its session deleted, the daemon stopped) closes DTLS at once; the connection
// state would say so only when ICE consent runs out, seconds later.
function watchForEnd(conn) {
  const transport = conn.getTransceivers().map((t) => t.receiver.transport).find(Boolean);
  if (!transport) return;
  transport.addEventListener("statechange", () => {
    if (pc !== conn || (transport.state !== "closed" && transport.state !== "failed")) return;
    lf.state = "ended";
    lf.peer = lf.resource = lf.session = null;  // gone on the daemon: no DELETE, and status shows the daemon's
    showMessage("The stream ended: the daemon closed it. Pick a mode above to connect again.");
  });
}

async function connect(mode) {
  await disconnect();
  showMessage("");
  lf.mode = mode;
  lf.state = "connecting";
  lf.frames = 0;
  lf.times = [];
  const conn = (pc = new RTCPeerConnection());
  const remote = new MediaStream();  // video, and sound when the stream has some (kept muted: no echo)
  lf.audio = false;
  conn.addEventListener("track", (event) => {
    remote.addTrack(event.track);
    video.srcObject = remote;
    lf.audio = remote.getAudioTracks().length > 0;
    $("stat-sound").textContent = lf.audio ? "yes (muted)" : "none";
  });
  conn.addEventListener("connectionstatechange", () => { if (lf.state !== "ended") lf.state = conn.connectionState; });
  try {
    if (mode === "camera") {
      const size = (lf.status && lf.status.size) || [640, 360];
      const wanted = { width: { ideal: size[0] }, height: { ideal: size[1] } };
      camera = await navigator.mediaDevices.getUserMedia({ audio: true, video: wanted })
        .catch(() => navigator.mediaDevices.getUserMedia({ audio: false, video: wanted }));  // no microphone
      camera.getTracks().forEach((track) => conn.addTrack(track, camera));
    } else {
      conn.addTransceiver("video", { direction: "recvonly" });
      conn.addTransceiver("audio", { direction: "recvonly" });
    }
    await conn.setLocalDescription(await conn.createOffer());
    await waitForIce(conn);
    const answer = await exchange(mode === "camera" ? "/whip" : "/whep/main", conn.localDescription.sdp);
    lf.resource = answer.resource;
    lf.peer = answer.resource.split("/").pop();
    lf.session = mode === "camera" ? lf.peer : null;
    await conn.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    watchForEnd(conn);
    refresh();
  } catch (err) {
    lf.state = "failed";
    showMessage(`Could not connect: ${err.message}`);
  }
}

// -- presets and parameters -----------------------------------------------------------------------

function renderPresets(status, active) {
  const select = $("preset");
  const names = status.presets.join("\n");
  if (select.dataset.names !== names) {
    select.replaceChildren(...status.presets.map((n) => new Option(n, n)));
    select.dataset.names = names;
  }
  if (document.activeElement !== select) select.value = active;
}

// A list parameter: a checkbox per name it may hold (swap's keep_regions), a number box per place where it
// has a fixed length (mask_padding), else its JSON in a text box; `send` gets each new value.
function listControl(spec, value, send) {
  const group = document.createElement("span");
  group.className = "list";
  let boxes;
  if (spec.items) {
    boxes = spec.items.map((item) => {
      const box = Object.assign(document.createElement("input"), { type: "checkbox", value: item,
        checked: (value || []).includes(item) });
      const label = document.createElement("label");
      label.append(box, String(item));
      group.append(label);
      return box;
    });
    const read = () => spec.items.filter((item, i) => boxes[i].checked);
    boxes.forEach((box) => box.addEventListener("change", () => send(read())));
  } else if (spec.length) {
    boxes = Array.from({ length: spec.length }, (_, i) => Object.assign(document.createElement("input"), {
      type: "number", value: (value || [])[i] ?? 0, min: spec.min ?? "", max: spec.max ?? "", step: "any" }));
    group.append(...boxes);
    const read = () => boxes.map((box) => parseFloat(box.value));
    boxes.forEach((box) => box.addEventListener("input", () => {
      const v = read();
      if (v.every(Number.isFinite)) send(v);
      else showMessage(`${spec.name}: enter ${spec.length} numbers`);
    }));
  } else {
    const box = Object.assign(document.createElement("input"), { type: "text", value: JSON.stringify(value ?? []) });
    group.append(box);
    box.addEventListener("input", () => { try { send(JSON.parse(box.value)); } catch { /* typing */ } });
  }
  return group;
}

function control(stage, spec, value) {
  const row = document.createElement("label");
  row.className = "param";
  row.title = spec.help || "";
  row.append(spec.name);
  let input;
  const out = document.createElement("output");
  let timer = null;
  const send = (v) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      api("PATCH", controlled(lf.session ? "/params" : "/preset/params"), { stage, params: { [spec.name]: v } })
        .then(() => showMessage(""), (err) => showMessage(err.message));
    }, 60);
  };
  if (spec.type === "list") {
    const group = listControl(spec, value, send);
    group.dataset.name = `${stage}.${spec.name}`;
    const row = document.createElement("div");
    row.className = "param";
    row.title = spec.help || "";
    row.append(spec.name, group);
    return row;
  }
  if (spec.choices) {
    input = document.createElement("select");
    spec.choices.forEach((c) => input.add(new Option(String(c), JSON.stringify(c))));
    input.value = JSON.stringify(value);
  } else if (spec.type === "bool") {
    input = Object.assign(document.createElement("input"), { type: "checkbox", checked: !!value });
  } else if ((spec.type === "float" || spec.type === "int") && spec.min !== null && spec.max !== null) {
    input = Object.assign(document.createElement("input"), {
      type: "range", min: spec.min, max: spec.max, step: spec.type === "int" ? 1 : (spec.max - spec.min) / 100,
      value,
    });
    out.textContent = value;
  } else if (spec.type === "float" || spec.type === "int") {
    input = Object.assign(document.createElement("input"), { type: "number", value, step: "any" });
    if (spec.min !== null) input.min = spec.min;
    if (spec.max !== null) input.max = spec.max;
  } else {
    input = Object.assign(document.createElement("input"), { type: "text", value: String(value ?? "") });
    if (spec.max_length) input.maxLength = spec.max_length;
    if (spec.kind === "file") input.placeholder = "a file in the preset's folder";
  }
  input.name = `${stage}.${spec.name}`;
  input.addEventListener("input", () => {
    let v;
    if (spec.choices) v = JSON.parse(input.value);
    else if (spec.type === "bool") v = input.checked;
    else if (spec.type === "int") v = parseInt(input.value, 10);
    else if (spec.type === "float") v = parseFloat(input.value);
    else v = input.value;
    if ((spec.type === "int" || spec.type === "float") && !Number.isFinite(v)) {
      showMessage(`${stage}.${spec.name}: enter a number`); // never send NaN (JSON would carry null)
      return;
    }
    out.textContent = input.type === "range" ? v : "";
    send(v);
  });
  row.append(input, out);
  return row;
}

function renderParams(info) {
  const form = $("params");
  const key = JSON.stringify(info.stages.map((s) => [s.label, s.specs.map((p) => p.name)])) + info.name;
  if (form.dataset.key === key) return; // keep the controls the user is touching
  form.dataset.key = key;
  const sets = info.stages.map((stage) => {
    const set = document.createElement("fieldset");
    set.dataset.stage = stage.label;
    set.append(Object.assign(document.createElement("legend"), { textContent: stage.label }));
    set.append(Object.assign(document.createElement("p"), { className: "stage-off", hidden: true }));
    stage.specs.filter((s) => s.live).forEach((spec) => set.append(control(stage.label, spec, stage.params[spec.name])));
    return set;
  });
  form.replaceChildren(...(sets.length ? sets : [document.createTextNode("This preset has no parameters.")]));
}

// A stage switched off after failures says so, with its last error, until it is back on.
function renderHealth(status) {
  const off = status.stages.filter((s) => s.disabled);
  lf.disabled = off.map((s) => s.label);
  const alert = $("stage-alerts");
  const hung = status.stats && status.stats.stalled;
  alert.hidden = off.length === 0 && !hung;
  alert.textContent = off.map((s) => {
    const retry = s.retry_in_s === null ? "" : `; retried in ${Math.ceil(s.retry_in_s)} s`;
    const what = s.guards_privacy ? "the picture is covered" : "frames pass through unfiltered";
    return `${s.label} is switched off after errors (${s.last_error})${retry}: ${what}.`;
  }).concat(hung ? [`Stage ${hung} has not returned: frames go on past it until it does.`] : []).join(" ");
  document.querySelectorAll("#params fieldset").forEach((set) => {
    const stage = status.stages.find((s) => s.label === set.dataset.stage);
    const note = set.querySelector(".stage-off");
    if (!note) return;
    note.hidden = !(stage && stage.disabled);
    note.textContent = stage && stage.disabled ? `off: ${stage.last_error}` : "";
  });
}

function renderStats(status) {
  const mine = status.peers.find((p) => p.id === lf.peer && p.mode === "camera");
  const stats = mine || { fps: status.stats.fps, latency_ms: status.stats.latency_ms, dropped: status.stats.dropped };
  $("stat-fps").textContent = Number(stats.fps).toFixed(1);
  $("stat-latency").textContent = `${Number(stats.latency_ms.p50).toFixed(1)} ms`;
  $("stat-dropped").textContent = stats.dropped;
  $("stat-provider").textContent = status.provider;
  $("stat-received").textContent = `${lf.fps().toFixed(1)} fps`;
  // awake, sleeping (nobody watches: no inference, camera released) or always on (--always-on)
  const sleep = status.stats.sleep || {};
  $("stat-sleep").textContent = sleep.state === "sleeping" ? "sleeping: nobody is watching" : (sleep.state || "–");
  // pushes connect in the background: each one's state (connecting, connected, retrying: why)
  const pushes = Object.entries(status.stats.outputs || {}).filter(([, o]) => o.state);
  $("stat-pushes").hidden = $("stat-pushes-label").hidden = pushes.length === 0;
  $("stat-pushes").textContent = pushes.map(([name, o]) => `${name}: ${o.state}`).join("; ");
}

// The daemon's sound filter (none, denoise), where it has sound: sessions carry the browser's own.
function renderAudioFilter(status) {
  const audio = status.stats && status.stats.audio;
  const select = $("audio-filter");
  $("audio-filter-label").hidden = !audio || audio.input === "none" || !!lf.session;
  if (!select.options.length) select.replaceChildren(...(status.audio_filters || []).map((n) => new Option(n, n)));
  if (audio && document.activeElement !== select) select.value = audio.filter;
}

async function refresh() {
  const session = lf.session;  // what this refresh asks about: the page may drop it before the answers come
  try {
    const status = (lf.status = await api("GET", "/api/status"));
    const shown = session ? await api("GET", `/api/sessions/${session}`) : status;  // what this page shows
    if (lf.session !== session) return;  // its session ended meanwhile: the next refresh shows what is
    renderPresets(status, shown.preset);
    renderParams(shown.preset_info);
    renderHealth(shown);
    renderStats(status);
    renderAudioFilter(status);
  } catch (err) {
    if (lf.session === session) showMessage(err.message);  // not about a session the page no longer holds
  }
}

// -- wiring --------------------------------------------------------------------------------------------

$("preset").addEventListener("change", async (event) => {
  try {
    await api("PUT", controlled("/preset"), { name: event.target.value });
    showMessage("");
  } catch (err) {
    showMessage(err.message);
  }
  refresh();
});

$("audio-filter").addEventListener("change", async (event) => {
  try {
    await api("PUT", "/api/audio-filter", { filter: event.target.value });
    showMessage("");
  } catch (err) {
    showMessage(err.message);
  }
  refresh();
});

$("snapshot").addEventListener("click", () => {
  if (!video.videoWidth) return;
  const url = grabFrame().toDataURL("image/png");
  const link = Object.assign(document.createElement("a"), { href: url, download: `livefuse-${Date.now()}.png` });
  link.append(Object.assign(document.createElement("img"), { src: url, alt: "snapshot" }));
  $("snapshots").prepend(link);
  link.click();
});

document.querySelectorAll('input[name="mode"]').forEach((radio) => {
  radio.addEventListener("change", () => { if (radio.checked) connect(radio.value); });
});
window.addEventListener("pagehide", () => { disconnect(); });

(async () => {
  await refresh();
  statusTimer = setInterval(refresh, 1000);
  const mode = params.get("mode") === "camera" ? "camera" : "preview";
  document.querySelector(`input[name="mode"][value="${mode}"]`).checked = true;
  connect(mode);
})();

// Vocalis web client: microphone -> /v1/ws -> speaker, with live transcripts and latency.
// Plain browser JavaScript, no build step. Protocol: the AssemblyAI Voice Agent API events.
"use strict";

const RATE = 24000; // audio/pcm both ways
const CHUNK_MS = 40;
const START_DELAY_S = 0.05; // jitter buffer before the first chunk of a reply plays
const FINAL_CLOSE_CODES = [1000, 1001, 1008, 1011, 1013];
const RESUME_DELAYS_MS = [200, 500, 1000, 2000, 4000];
// ?device-rate: run audio at the device's rate and resample in the worklet (as some browsers must)
const DEVICE_RATE = new URLSearchParams(location.search).has("device-rate");

// Counters for people debugging audio, and for the end-to-end test.
const stats = (window.vocalisStats = {
  state: "idle", sessionId: null, contextRate: null,
  chunksSent: 0, chunksReceived: 0, chunksPlayed: 0, chunksEnded: 0, secondsPlayed: 0,
  flushes: 0, resumes: 0,
  userTranscripts: [], agentTranscripts: [], toolCalls: [], latenciesMs: [], errors: [],
  typed: [],
});

const HINTS = {
  unauthorized: "The server rejected the credential.",
  invalid_value: "A setting has an invalid value.",
  agent_not_found: "No stored agent has this id.",
  invalid_config: "The stored agent's configuration is no longer valid.",
  session_not_found: "The session ended or could not be resumed.",
  at_capacity: "The server is at capacity; try again later.",
  internal_error: "The server hit an internal error.",
  audio_rate_violation: "Audio was sent faster than real time.",
};

const $ = (id) => document.getElementById(id);
let ws = null;
let ready = false;
let ending = false;
let sessionId = null;
let resumeToken = null;
let resumeAttempt = 0;
let audioCtx = null;
let micStream = null;
let micNode = null;
let playHead = 0;
const playing = new Set();
let speechStoppedAt = null;
let userBubble = null;
const agentBubbles = new Map();
let lastLatencyMs = null;
let typing = false; // a text-input session (§6.8): no microphone

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + (kind || "");
  stats.state = text;
}

function addMessage(kind, text) {
  const div = document.createElement("div");
  div.className = "msg " + kind;
  div.textContent = text;
  $("log").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function fail(message) {
  stats.errors.push(message);
  addMessage("error", message);
  setStatus("error", "error");
  cleanup();
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.message || response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

// ------------------------------------------------------------------ credentials
async function fetchToken() {
  const apiKey = $("api-key").value.trim();
  const response = apiKey
    ? await fetch("/v1/tokens", {
        method: "POST",
        headers: { Authorization: "Bearer " + apiKey, "Content-Type": "application/json" },
        body: JSON.stringify({ expires_in_seconds: 60 }),
      })
    : await fetch("/v1/browser-token", { method: "POST" });
  if (!response.ok) throw new Error("Cannot get a session token: " + (await errorText(response)));
  return (await response.json()).token;
}

function sessionConfig() {
  const agentId = $("agent-id").value.trim();
  if (agentId) return { agent_id: agentId };
  const session = {};
  const voice = $("voice").value;
  const prompt = $("system-prompt").value.trim();
  const greeting = $("greeting").value.trim();
  if (typing) session.input = { type: "text" };
  if ($("text-replies").checked) session.output = { type: "text" };
  else if (voice) session.output = { voice };
  if (prompt) session.system_prompt = prompt;
  if (greeting) session.greeting = greeting;
  return session;
}

// ------------------------------------------------------------------ audio in
async function startAudio() {
  micStream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  let source;
  try {
    if (DEVICE_RATE) throw new Error("device rate requested");
    audioCtx = new AudioContext({ sampleRate: RATE });
    source = audioCtx.createMediaStreamSource(micStream);
  } catch (e) {
    // some browsers cannot mix rates: run at the device rate, the worklet resamples
    if (audioCtx) audioCtx.close();
    audioCtx = new AudioContext();
    source = audioCtx.createMediaStreamSource(micStream);
  }
  stats.contextRate = audioCtx.sampleRate;
  await audioCtx.audioWorklet.addModule("/static/capture-worklet.js");
  micNode = new AudioWorkletNode(audioCtx, "vocalis-capture", {
    processorOptions: { chunkMs: CHUNK_MS },
  });
  micNode.port.onmessage = (event) => sendAudio(event.data);
  const mute = audioCtx.createGain(); // keeps the worklet pulled by the graph, silently
  mute.gain.value = 0;
  source.connect(micNode);
  micNode.connect(mute).connect(audioCtx.destination);
  await audioCtx.resume();
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function sendAudio(buffer) {
  if (!ws || ws.readyState !== WebSocket.OPEN || !ready) return;
  ws.send(JSON.stringify({ type: "input.audio", audio: toBase64(buffer) }));
  stats.chunksSent++;
}

// ------------------------------------------------------------------ audio out
function play(b64) {
  const binary = atob(b64);
  const count = binary.length >> 1;
  if (!audioCtx || count === 0) return;
  const buffer = audioCtx.createBuffer(1, count, RATE);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < count; i++) {
    let v = binary.charCodeAt(2 * i) | (binary.charCodeAt(2 * i + 1) << 8);
    if (v >= 0x8000) v -= 0x10000;
    channel[i] = v / 32768;
  }
  const node = audioCtx.createBufferSource();
  node.buffer = buffer;
  node.connect(audioCtx.destination);
  const now = audioCtx.currentTime;
  if (playHead < now) playHead = now + START_DELAY_S; // one timeline: chunks play back to back
  node.start(playHead);
  playHead += buffer.duration;
  playing.add(node);
  node.onended = () => {
    playing.delete(node);
    stats.chunksEnded++;
  };
  stats.chunksPlayed++;
  stats.secondsPlayed += buffer.duration;
}

function flushPlayback() {
  if (playing.size === 0) return;
  for (const node of playing) {
    node.onended = null;
    try { node.stop(); } catch (e) { /* already stopped */ }
  }
  playing.clear();
  playHead = audioCtx ? audioCtx.currentTime : 0;
  stats.flushes++;
}

// ------------------------------------------------------------------ socket
function socketUrl(credential) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return proto + "//" + location.host + "/v1/ws?token=" + encodeURIComponent(credential);
}

function openSocket(credential, firstMessage) {
  ready = false;
  ws = new WebSocket(socketUrl(credential));
  ws.onopen = () => ws.send(JSON.stringify(firstMessage));
  ws.onmessage = (event) => handle(JSON.parse(event.data));
  ws.onclose = (event) => onClose(event);
}

function onClose(event) {
  ready = false;
  if (ending || !sessionId || FINAL_CLOSE_CODES.includes(event.code)) {
    if (!ending && stats.state !== "error") setStatus("disconnected");
    cleanup();
    return;
  }
  if (resumeAttempt >= RESUME_DELAYS_MS.length) {
    fail("Connection lost and the session could not be resumed.");
    return;
  }
  setStatus("reconnecting");
  const delay = RESUME_DELAYS_MS[resumeAttempt++];
  setTimeout(() => openSocket(resumeToken, { type: "session.resume", session_id: sessionId }), delay);
}

function handle(ev) {
  switch (ev.type) {
    case "session.ready":
      if (sessionId === ev.session_id) {
        stats.resumes++;
        addMessage("note", "Reconnected.");
      }
      ready = true;
      resumeAttempt = 0;
      sessionId = stats.sessionId = ev.session_id;
      resumeToken = ev.resume_token;
      $("session-id").textContent = ev.session_id;
      $("stop").disabled = false;
      $("compose").hidden = false;
      setStatus(typing ? "ready" : "listening", "live");
      break;
    case "session.error":
      stats.errors.push(ev.code);
      addMessage("error", (HINTS[ev.code] ? HINTS[ev.code] + " " : "") + ev.message);
      break;
    case "session.ended":
      ending = true;
      addMessage("note", "Session ended (" + ev.reason + ").");
      break;
    case "input.speech.started":
      flushPlayback(); // barge-in: stop the agent at once
      userBubble = addMessage("user partial", "…");
      break;
    case "transcript.user.delta":
      if (!userBubble) userBubble = addMessage("user partial", "");
      userBubble.textContent = ev.text;
      break;
    case "input.speech.stopped":
      speechStoppedAt = performance.now();
      if (userBubble && userBubble.textContent === "…") {
        userBubble.remove(); // nothing recognised: no transcript will follow
        userBubble = null;
      }
      break;
    case "transcript.user": {
      const bubble = userBubble || addMessage("user", "");
      bubble.className = "msg user";
      bubble.textContent = ev.text;
      stats.userTranscripts.push(ev.text);
      userBubble = null;
      break;
    }
    case "reply.started":
      agentBubbles.set(ev.reply_id, addMessage("agent", ""));
      lastLatencyMs = null;
      break;
    case "reply.audio":
      stats.chunksReceived++;
      if (speechStoppedAt !== null) {
        lastLatencyMs = Math.round(performance.now() - speechStoppedAt);
        stats.latenciesMs.push(lastLatencyMs);
        $("latency").textContent = lastLatencyMs + " ms";
        speechStoppedAt = null;
      }
      play(ev.data);
      break;
    case "transcript.agent.delta": {
      const bubble = agentBubbles.get(ev.reply_id);
      if (bubble) bubble.textContent += ev.delta;
      break;
    }
    case "transcript.agent": {
      const bubble = agentBubbles.get(ev.reply_id);
      stats.agentTranscripts.push(ev.text);
      if (!bubble) break;
      if (!ev.text && !ev.interrupted) {
        bubble.remove();
        break;
      }
      bubble.textContent = ev.text;
      if (ev.interrupted) bubble.classList.add("interrupted");
      if (lastLatencyMs !== null) {
        const meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = "first audio " + lastLatencyMs + " ms after the turn ended";
        bubble.appendChild(meta);
      }
      break;
    }
    case "reply.done":
      agentBubbles.delete(ev.reply_id);
      break;
    case "reply.error":
      addMessage("error", "Agent error: " + ev.message);
      break;
    case "tool.call":
      stats.toolCalls.push(ev.name);
      addMessage("tool", ev.name + "(" + JSON.stringify(ev.arguments) + ")");
      break;
  }
}

// ------------------------------------------------------------------ controls
async function start(withText) {
  typing = withText === true;
  $("start").disabled = $("start-text").disabled = true;
  ending = false;
  sessionId = null;
  resumeAttempt = 0;
  setStatus("connecting");
  try {
    if (typing) audioCtx = audioCtx || new AudioContext({ sampleRate: RATE }); // replies only
    else await startAudio();
    const token = await fetchToken();
    openSocket(token, { type: "session.update", session: sessionConfig() });
  } catch (e) {
    fail(e.message || String(e));
  }
}

// A typed turn: the message enters the history as the user's, then a reply is asked for (§6.8).
function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || !ready) return;
  ws.send(JSON.stringify({ type: "conversation.message", role: "user", content: text }));
  ws.send(JSON.stringify({ type: "reply.create" }));
  addMessage("user", text);
  stats.typed.push(text);
  $("message").value = "";
}

function stop() {
  ending = true;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "session.end" }));
  else cleanup();
  setStatus("ended");
}

function cleanup() {
  ready = false;
  if (micStream) micStream.getTracks().forEach((track) => track.stop());
  micStream = null;
  if (micNode) micNode.disconnect();
  micNode = null;
  $("start").disabled = $("start-text").disabled = false;
  $("stop").disabled = true;
  $("compose").hidden = true;
}

async function loadVoices() {
  try {
    const response = await fetch("/v1/voices");
    if (!response.ok) return;
    const body = await response.json();
    for (const voice of body.voices || []) {
      const option = document.createElement("option");
      option.value = voice.voice_id;
      option.textContent = voice.name + " (" + voice.description + ")";
      $("voice").appendChild(option);
    }
  } catch (e) {
    /* voices need an API key on servers with keys: the default voice is used */
  }
}

$("start").addEventListener("click", () => start(false));
$("start-text").addEventListener("click", () => start(true));
$("compose").addEventListener("submit", send);
$("stop").addEventListener("click", stop);
loadVoices();

// Live video over WHEP with the browser's own RTCPeerConnection, and a player that keeps it
// going: a new session (with backoff) when the connection fails or the video stalls.
//
// WHEP (draft-ietf-wish-whep): POST the SDP offer as application/sdp to /<stream>/whep with
// the bearer token; 201 carries the answer and, in Location, the session's URL, which DELETE
// ends. ICE candidates are gathered before the offer is sent (on a LAN or loopback that takes
// milliseconds), so no trickle PATCH is needed.

import { ApiError, errorOf, request, streamPath, withToken } from "./api.js";
import { backoff } from "./bus.js";

const GATHERING_TIMEOUT_MS = 3000; // send what was gathered by then
const ANSWER_TIMEOUT_MS = 15000; // a POST unanswered this long is given up (and its connection freed)
const FIRST_FRAME_TIMEOUT_MS = 10000;
const STALL_MS = 6000; // no new decoded frame for this long: the session is dead
const DISCONNECTED_GRACE_MS = 4000; // "disconnected" often recovers by itself
const HEALTHY_MS = 30000; // playing this long resets the backoff
const CHECK_MS = 1000;

export function whepUrl(stream) {
  return `/${streamPath(stream)}/whep`;
}

// STUN/TURN servers Vigil offers in its answers' Link headers; used from the next session on
// (a TURN relay may be what gets a session through where the first one failed).
let iceServers = [];

const LINK = /<([^>]*)>((?:\s*;\s*[\w-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))*)/g;
const PARAM = /;\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*))/g;

/** RTCIceServer entries from `Link: <turn:…>; rel="ice-server"; username=…` (WHEP draft). */
export function iceServersFromLinks(header) {
  const servers = [];
  for (const [, url, text] of (header || "").matchAll(LINK)) {
    const params = {};
    for (const [, key, quoted, plain] of text.matchAll(PARAM)) {
      params[key.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, "$1") : plain.trim();
    }
    if (params.rel !== "ice-server") continue;
    const server = { urls: url };
    if (params.username) {
      server.username = params.username;
      server.credential = params.credential ?? "";
    }
    servers.push(server);
  }
  return servers;
}

/** One WHEP session: one RTCPeerConnection receiving one stream's video into `video`. */
export class WhepSession {
  constructor(stream, video) {
    this.stream = stream;
    this.video = video;
    this.pc = null;
    this.location = null;
    this.stopped = false;
    this.signalling = new AbortController();
  }

  async start() {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (event) => {
      this.video.srcObject = event.streams[0] || new MediaStream([event.track]);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, GATHERING_TIMEOUT_MS);
    if (this.stopped) return;
    const url = whepUrl(this.stream);
    const timer = setTimeout(() => this.signalling.abort(new Error("no answer from Vigil")), ANSWER_TIMEOUT_MS);
    let response;
    try {
      response = await request(url, {
        method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
        signal: this.signalling.signal,
      });
    } finally {
      clearTimeout(timer);
    }
    if (response.status !== 201) {
      const error = await errorOf(response);
      error.retryAfter = Number(response.headers.get("Retry-After")) || 0;
      throw error;
    }
    iceServers = iceServersFromLinks(response.headers.get("Link"));
    const location = response.headers.get("Location");
    this.location = location ? new URL(location, new URL(url, window.location.href)).href : null;
    const answer = await response.text();
    if (this.stopped) {
      this.stop();
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  }

  /** Frames decoded so far (inbound-rtp `framesDecoded`), or null before there is a track. */
  async framesDecoded() {
    if (!this.pc) return null;
    const stats = await this.pc.getStats();
    for (const report of stats.values()) {
      if (report.type === "inbound-rtp" && report.kind === "video") return report.framesDecoded ?? 0;
    }
    return null;
  }

  get connectionState() {
    return this.pc ? this.pc.connectionState : "new";
  }

  /** Close the connection and end the session on the server (best effort, also on unload). */
  stop() {
    this.stopped = true;
    this.signalling.abort(new Error("stopped"));
    this.pc?.close();
    this.pc = null;
    if (this.location) {
      const location = this.location;
      this.location = null;
      fetch(location, { method: "DELETE", headers: withToken(), keepalive: true }).catch(() => {});
    }
  }
}

function gathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => {
    clearTimeout(timer);
    resolve();
  }, { once: true });
});

/**
 * Plays a stream live into `video` for as long as it is started, reconnecting by itself.
 * `onChange(state, detail)` hears: "connecting", "live" (detail: the session's URL),
 * "retrying" (detail: why, and when the next try is), "stopped".
 */
export class LivePlayer {
  constructor(stream, video, onChange = () => {}) {
    this.stream = stream;
    this.video = video;
    this.onChange = onChange;
    this.state = "stopped";
    this.controller = null;
    this.wake = null;
    this.session = null;
  }

  start() {
    if (this.controller) return;
    this.controller = new AbortController();
    this.run(this.controller.signal);
  }

  stop() {
    if (!this.controller) return;
    this.controller.abort();
    this.wake?.abort();
    this.controller = null;
    this.session?.stop();
    this.session = null;
    this.video.srcObject = null;
    this.set("stopped");
  }

  /** Try again now rather than after the backoff (the stream came back, say). */
  retryNow() {
    this.wake?.abort();
  }

  set(state, detail = "") {
    this.state = state;
    this.onChange(state, detail);
  }

  async run(signal) {
    let attempts = 0;
    while (!signal.aborted) {
      this.set("connecting");
      const session = new WhepSession(this.stream, this.video);
      this.session = session;
      let why;
      let playedMs = 0;
      let notBefore = 0;
      try {
        await session.start();
        playedMs = await this.watch(session, signal);
        why = "the video stopped";
      } catch (error) {
        why = error instanceof ApiError ? describe(error) : `no connection (${error.message})`;
        notBefore = (error.retryAfter || 0) * 1000;
      }
      session.stop();
      if (this.session === session) this.session = null;
      if (signal.aborted) return;
      if (playedMs >= HEALTHY_MS) attempts = 0;
      const delay = Math.max(backoff(attempts++), notBefore);
      this.set("retrying", { why, at: Date.now() + delay });
      this.wake = new AbortController();
      await sleep(delay, this.wake.signal); // stop() aborts it too
    }
  }

  /** Resolves (with how long it played) once the session is no use: failed or stalled. */
  async watch(session, signal) {
    const started = performance.now();
    let frames = 0;
    let lastProgress = performance.now();
    let disconnectedSince = null;
    let live = false;
    this.video.play().catch(() => {}); // muted: autoplay is allowed
    while (!signal.aborted) {
      await sleep(CHECK_MS, signal);
      if (signal.aborted) break;
      const now = performance.now();
      const state = session.connectionState;
      if (state === "failed" || state === "closed") break;
      if (state === "disconnected") {
        disconnectedSince ??= now;
        if (now - disconnectedSince > DISCONNECTED_GRACE_MS) break;
      } else {
        disconnectedSince = null;
      }
      const decoded = (await session.framesDecoded()) ?? 0;
      if (decoded > frames) {
        frames = decoded;
        lastProgress = now;
        if (!live) {
          live = true;
          this.set("live", { session: session.location });
        }
      }
      const limit = live ? STALL_MS : FIRST_FRAME_TIMEOUT_MS;
      if (now - lastProgress > limit) break;
    }
    return live ? performance.now() - started : 0;
  }
}

function describe(error) {
  if (error.status === 404 || error.status === 405) return "live video is not available";
  if (error.status === 403) return "this token may not watch live video";
  return error.message;
}

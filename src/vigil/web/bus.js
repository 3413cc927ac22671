// Vigil's live events (WS /api/v1/events) and the list of streams, shared by every view.
//
// One WebSocket for the whole page, reconnected with backoff; the stream list is polled every
// few seconds (fps and bitrate change without events) and at once when a stream changes state.

import { API, askForToken, getJson, storedToken } from "./api.js";

const POLL_MS = 4000;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30000;

/** Delay before attempt `n` (0, 1, 2…): doubling from `minMs`, capped, ±25 % jitter. */
export function backoff(n, minMs = RECONNECT_MIN_MS, maxMs = RECONNECT_MAX_MS) {
  const base = Math.min(maxMs, minMs * 2 ** n);
  return base * (0.75 + Math.random() * 0.5);
}

class EventBus extends EventTarget {
  constructor() {
    super();
    this.socket = null;
    this.attempts = 0;
    this.connected = false;
    this.timer = null;
  }

  start() {
    if (!this.socket && !this.timer) this.connect();
  }

  connect() {
    this.timer = null;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}${API}/events`;
    const token = storedToken();
    // Browsers cannot set headers on a WebSocket: the token travels as a subprotocol.
    const socket = token ? new WebSocket(url, ["vigil", `bearer.${token}`]) : new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempts = 0;
      this.setConnected(true);
    });
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.type !== "heartbeat") this.dispatchEvent(new CustomEvent("event", { detail: event }));
    });
    socket.addEventListener("close", async (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.setConnected(false);
      if (close.code === 4401) {
        await askForToken(token ? "That token was refused. Try another." : "");
        if (this.socket || this.timer) return; // the new token already reconnected it
      }
      this.timer = setTimeout(() => this.connect(), backoff(this.attempts++));
    });
  }

  /** Reconnect now (the token changed). */
  restart() {
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    clearTimeout(this.timer);
    this.attempts = 0;
    this.connect();
  }

  setConnected(connected) {
    if (connected === this.connected) return;
    this.connected = connected;
    this.dispatchEvent(new CustomEvent("connection", { detail: connected }));
  }

  /** Call `listener(event)` for each event matching `filter`; returns the unsubscribe. */
  on(filter, listener) {
    const handler = (message) => {
      if (filter(message.detail)) listener(message.detail);
    };
    this.addEventListener("event", handler);
    return () => this.removeEventListener("event", handler);
  }
}

export const bus = new EventBus();

/**
 * The streams (GET /api/v1/streams) for whoever watches them: polled while watched, refreshed
 * early on a stream.state event.
 */
class StreamsFeed extends EventTarget {
  constructor() {
    super();
    this.streams = null;
    this.error = null;
    this.watchers = 0;
    this.timer = null;
    this.loading = null;
    this.unsubscribe = null;
  }

  watch(listener) {
    const handler = () => listener(this.streams, this.error);
    this.addEventListener("change", handler);
    if (this.watchers++ === 0) {
      this.unsubscribe = bus.on((e) => e.type === "stream.state" || e.type.startsWith("config."),
        () => this.refresh());
      this.refresh();
    } else if (this.streams) {
      handler();
    }
    return () => {
      this.removeEventListener("change", handler);
      if (--this.watchers === 0) {
        clearTimeout(this.timer);
        this.timer = null;
        this.unsubscribe();
      }
    };
  }

  refresh() {
    if (this.loading) return this.loading;
    clearTimeout(this.timer);
    this.loading = getJson(`${API}/streams`)
      .then((streams) => {
        this.streams = streams;
        this.error = null;
      })
      .catch((error) => {
        this.error = error;
      })
      .finally(() => {
        this.loading = null;
        if (this.watchers > 0) {
          this.timer = setTimeout(() => this.refresh(), POLL_MS);
          this.dispatchEvent(new Event("change"));
        }
      });
    return this.loading;
  }
}

export const streamsFeed = new StreamsFeed();

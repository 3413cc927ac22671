// A stream's events, newest first: the history (GET /api/v1/events?stream=…) with older pages
// on demand, and new ones as they happen (the WebSocket).

import { apiPath, getJson } from "./api.js";
import { bus } from "./bus.js";
import { el, formatBytes, formatDateTime, formatTime } from "./format.js";

const PAGE = 50;
// Without "segments too": the families worth reading (a segment every minute would bury them).
const NOTEWORTHY = "stream,gap,recording,detection";
const KEEP = 500; // live events beyond this many drop off the end of the list
const PLAY_BEFORE_MS = 5000; // "play" starts a little before the event

/** One line saying what an event means (docs/API.md lists the types and fields). */
export function describeEvent(event) {
  switch (event.type) {
    case "stream.state":
      return `${event.old} → ${event.new}${event.reason ? `: ${event.reason}` : ""}`;
    case "segment.opened":
      return "segment started";
    case "segment.closed":
      return `segment finished: ${Math.round(event.duration_s ?? 0)} s, ${formatBytes(event.size_bytes ?? 0)}`;
    case "gap.opened":
      return `recording stopped: ${event.reason ?? ""}`;
    case "gap.closed":
      return "recording resumed";
    case "recording.blocked":
      return `cannot record: ${event.reason ?? ""}`;
    case "recording.resumed":
      return "recording again";
    default: {
      const { type, at, stream, id, ...rest } = event;
      return Object.entries(rest).map(([key, value]) => `${key}: ${JSON.stringify(value)}`).join(", ");
    }
  }
}

export class EventList {
  /** `onPlay(ms)`: the user wants to see the recording at that time. */
  constructor(stream, onPlay) {
    this.stream = stream;
    this.onPlay = onPlay;
    this.next = null;
    this.seen = new Set();
    this.generation = 0;
    this.list = el("ol", { class: "events-list", "aria-label": `Events of ${stream}, newest first` });
    this.status = el("p", { class: "status", role: "status" });
    this.more = el("button", { type: "button", hidden: true, onclick: () => this.load() }, "Older events");
    this.segments = el("input", { type: "checkbox", id: "events-segments", onchange: () => this.reload() });
    this.root = el("div", {},
      el("p", { class: "options" }, this.segments, " ", el("label", { for: "events-segments" }, "Segments too")),
      this.status, this.list, this.more);
    this.unsubscribe = bus.on((event) => event.stream === stream, (event) => this.prepend(event));
    this.load();
  }

  reload() {
    this.generation += 1;
    this.next = null;
    this.seen.clear();
    this.list.replaceChildren();
    this.load();
  }

  async load() {
    this.more.disabled = true;
    const type = this.segments.checked ? null : NOTEWORTHY;
    const generation = this.generation;
    try {
      const page = await getJson(this.next ?? apiPath("/events", { stream: this.stream, type, limit: PAGE }));
      if (generation !== this.generation) return; // reloaded meanwhile
      this.list.append(...page.events.filter((e) => this.fresh(e)).map((e) => this.item(e)));
      this.next = page.next;
      this.status.textContent = this.list.children.length ? "" : "No events yet.";
    } catch (error) {
      this.status.textContent = `Cannot load the events: ${error.message}`;
    }
    this.more.hidden = !this.next;
    this.more.disabled = false;
  }

  /** False for an event already listed (it may come from the WebSocket and the history). */
  fresh(event) {
    const key = `${event.type} ${event.at}`; // live events have no id yet
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    return true;
  }

  prepend(event) {
    if ((event.type.startsWith("segment.") && !this.segments.checked) || !this.fresh(event)) return;
    this.list.prepend(this.item(event));
    while (this.list.children.length > KEEP) this.list.lastElementChild.remove();
    this.status.textContent = "";
  }

  item(event) {
    const at = new Date(event.at);
    const play = el("button", {
      type: "button", class: "quiet small",
      "aria-label": `Play the recording at ${formatTime(at)}`,
      onclick: () => this.onPlay(at.getTime() - PLAY_BEFORE_MS),
    }, "▶");
    return el("li", { class: `event event-${event.type.replace(".", "-")}` },
      el("time", { datetime: event.at, title: formatDateTime(at) }, formatTime(at)), " ",
      el("span", { class: "event-type" }, event.type), " ",
      play, el("span", { class: "event-text" }, describeEvent(event)));
  }

  destroy() {
    this.unsubscribe();
  }
}

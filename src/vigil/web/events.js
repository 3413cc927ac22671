// A stream's events, newest first: the history (GET /api/v1/events?stream=…) with older pages
// on demand, and new ones as they happen (the WebSocket). Object events show their snapshot
// (fetched with the token when scrolled into view: <img> cannot send one) and a clip link.

import { apiPath, errorOf, getJson, request } from "./api.js";
import { bus } from "./bus.js";
import { el, formatBytes, formatDateTime, formatDuration, formatTime } from "./format.js";

const PAGE = 50;
// Without "segments too": the families worth reading (a segment every minute would bury them).
const NOTEWORTHY = "stream,gap,recording,detection,object";
const KEEP = 500; // live events beyond this many drop off the end of the list
const PLAY_BEFORE_MS = 5000; // "play" starts a little before the event
// A live event has no id (so no snapshot or clip link) until the history has stored it, about
// a second later: look it up then.
const STORED_AFTER_MS = 2000;

const isObjectEvent = (event) => event.type.startsWith("object.");
const percent = (score) => `${Math.round((score ?? 0) * 100)}%`;
const zonesText = (zones) => (zones?.length ? ` in ${zones.join(", ")}` : "");

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
    case "object.entered":
      return `${event.label} ${percent(event.score)}${zonesText(event.zones)}`;
    case "object.left": {
      const seen = (Date.parse(event.last_seen) - Date.parse(event.first_seen)) / 1000;
      const how = event.reason === "stopped" ? "tracked until detection stopped," : "left after";
      return `${event.label} ${how} ${formatDuration(seen)} (best ${percent(event.score)})${zonesText(event.zones)}`;
    }
    case "object.zone_entered":
      return `${event.label} came into ${event.zone}`;
    case "object.zone_left":
      return `${event.label} went out of ${event.zone}`;
    case "detection.state":
      return `detection ${event.state}${event.reason ? `: ${event.reason}` : ""}`;
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
    this.timers = new Set();
    // Snapshots are fetched when their event scrolls into view, not 50 at a time.
    this.thumbnails = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        this.thumbnails.unobserve(entry.target);
        this.loadThumbnail(entry.target);
      }
    }, { root: this.list, rootMargin: "200px" });
    this.load();
  }

  reload() {
    this.generation += 1;
    this.next = null;
    this.seen.clear();
    for (const item of this.list.children) this.release(item);
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
    // Live events have no id yet; objects seen in one frame share their time, not their id.
    const key = `${event.type} ${event.at} ${event.object_id ?? ""}`;
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    return true;
  }

  prepend(event) {
    if ((event.type.startsWith("segment.") && !this.segments.checked) || !this.fresh(event)) return;
    const item = this.item(event);
    this.list.prepend(item);
    while (this.list.children.length > KEEP) {
      this.release(this.list.lastElementChild);
      this.list.lastElementChild.remove();
    }
    this.status.textContent = "";
    if (isObjectEvent(event) && event.id === undefined) this.findStored(event, item);
  }

  item(event) {
    const at = new Date(event.at);
    // An object is worth seeing from when it was first seen, not from when it left.
    const from = new Date(event.first_seen ?? event.at);
    const play = el("button", {
      type: "button", class: "quiet small",
      "aria-label": `Play the recording at ${formatTime(from)}`,
      onclick: () => this.onPlay(from.getTime() - PLAY_BEFORE_MS),
    }, "▶");
    const item = el("li", { class: `event event-${event.type.replace(".", "-")}` },
      el("time", { datetime: event.at, title: formatDateTime(at) }, formatTime(at)), " ",
      el("span", { class: "event-type" }, event.type), " ",
      play, el("span", { class: "event-text" }, describeEvent(event)));
    if (isObjectEvent(event)) this.addMedia(item, event);
    return item;
  }

  /** The snapshot thumbnail (loaded when in view) and the clip link of an object event. */
  addMedia(item, event) {
    if (item.querySelector(".event-media")) return;
    if (!event.snapshot_url && !event.clip_url) return;
    const media = el("span", { class: "event-media" });
    if (event.snapshot_url) {
      const thumbnail = el("img", {
        class: "event-thumbnail", alt: `${event.label} ${percent(event.score)}`,
        width: 96, height: 54, dataset: { src: event.snapshot_url },
      });
      media.append(thumbnail);
      this.thumbnails.observe(thumbnail);
    }
    if (event.clip_url) {
      media.append(el("a", {
        href: event.clip_url, class: "event-clip",
        "aria-label": `Clip of the ${event.label} at ${formatTime(new Date(event.at))}`,
        onclick: (click) => this.openClip(click, event.clip_url),
      }, "clip"));
    }
    item.append(media);
  }

  async loadThumbnail(image) {
    try {
      const response = await request(image.dataset.src);
      if (!response.ok) throw await errorOf(response);
      const url = URL.createObjectURL(await response.blob());
      if (!image.isConnected) {
        URL.revokeObjectURL(url);
        return;
      }
      image.src = url;
    } catch (error) {
      // Pruned (snapshots are kept for a while only) or unreachable: say so in place.
      image.replaceWith(el("span", { class: "event-thumbnail missing", title: error.message }, "no snapshot"));
    }
  }

  /** Clips need the token too: fetch, then show the blob in a tab opened at the click (a tab
   * opened after an await would be blocked as a pop-up), or download it if none opened. */
  async openClip(click, path) {
    click.preventDefault();
    const tab = window.open("", "_blank");
    if (tab) tab.document.title = "Loading the clip…";
    try {
      const response = await request(path);
      if (!response.ok) throw await errorOf(response);
      // Not revoked: the other tab plays from it for as long as it stays open.
      const url = URL.createObjectURL(await response.blob());
      if (tab && !tab.closed) {
        tab.location.href = url;
      } else {
        el("a", { href: url, download: path.split("/").slice(-2).join("-") }).click();
      }
    } catch (error) {
      tab?.close();
      this.status.textContent = `Cannot load the clip: ${error.message}`;
    }
  }

  /** Give a live object event its snapshot and clip once the history has it (it has an id
   * there, and links). */
  findStored(event, item) {
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      if (!item.isConnected) return;
      try {
        const page = await getJson(apiPath("/events", {
          stream: this.stream, type: event.type, since: event.at, limit: 20,
        }));
        const stored = page.events.find((e) => e.at === event.at && e.object_id === event.object_id);
        if (stored && item.isConnected) this.addMedia(item, stored);
      } catch {
        // No links for this one: the history shows them on the next load.
      }
    }, STORED_AFTER_MS);
    this.timers.add(timer);
  }

  /** Free what an item holds (its thumbnail's blob) before it leaves the list. */
  release(item) {
    for (const image of item.querySelectorAll("img.event-thumbnail")) {
      this.thumbnails.unobserve(image);
      if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    }
  }

  destroy() {
    this.unsubscribe();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const item of this.list.children) this.release(item);
    this.thumbnails.disconnect();
  }
}

// A stream's page (#/stream/<name>?day=YYYY-MM-DD): live view, the recordings timeline of a
// day with playback, and the stream's events.

import { apiPath, getJson, streamPath } from "./api.js";
import { bus, streamsFeed } from "./bus.js";
import { DetectionOverlay } from "./detections.js";
import { EventList } from "./events.js";
import { dayBounds, el, localDay } from "./format.js";
import { RecordingPlayer } from "./playback.js";
import { Tile } from "./tile.js";
import { gapsOf, runsOf, Timeline } from "./timeline.js";

const REFRESH_MS = 30000; // today's timeline grows: reload it this often (and on segment events)
const SOON_MS = 3000;
const PAGE = 1000;
const SHOW_DETECTIONS = "vigil.showDetections"; // localStorage: "no" when turned off

export class StreamView {
  constructor(main, name, params) {
    this.name = name;
    this.day = /^\d{4}-\d{2}-\d{2}$/.test(params.get("day") || "") ? params.get("day") : localDay(new Date());
    this.tile = null;
    this.soonTimer = null;
    this.destroyed = false;
    this.segments = { day: null, list: [] }; // the day's segments loaded so far
    this.refreshTimer = null;

    this.heading = el("h1", { tabindex: "-1", text: name });
    this.status = el("p", { class: "status", role: "status" });
    this.liveSlot = el("div", { class: "live-slot" });
    this.overlay = null; // the detector's boxes and zones over the live picture
    this.showDetections = el("input", { type: "checkbox", id: "show-detections",
      checked: localStorage.getItem(SHOW_DETECTIONS) !== "no",
      onchange: () => this.toggleDetections() });
    this.detectControls = el("div", { class: "detect-controls", hidden: true },
      this.showDetections, el("label", { for: "show-detections" }, "Show detections"));

    this.dayInput = el("input", { type: "date", id: "day", value: this.day, max: localDay(new Date()),
      onchange: () => this.dayInput.value && this.setDay(this.dayInput.value) });
    this.timeInput = el("input", { type: "time", id: "play-time", step: "1" });
    this.timeline = new Timeline((time) => this.play(time));
    this.timelineStatus = el("p", { class: "status", role: "status" });
    this.playbackVideo = el("video", { controls: true, playsinline: true, hidden: true,
      class: "playback", "aria-label": `Recording of ${name}` });
    this.playbackStatus = el("p", { class: "status", role: "status", "aria-live": "polite" });
    this.player = new RecordingPlayer(name, this.playbackVideo, this.playbackStatus,
      (time) => this.timeline.setCursor(time));
    this.events = new EventList(name, (time) => this.play(time));

    main.replaceChildren(
      el("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" },
        el("a", { href: "#/" }, "Cameras"), " › ", el("span", { "aria-current": "page" }, name)),
      el("div", { class: "page-head" }, this.heading, this.status),
      el("div", { class: "stream-layout" },
        el("div", { class: "side" },
          el("section", { class: "panel live", "aria-labelledby": "live-title" },
            el("h2", { id: "live-title" }, "Live"), this.liveSlot, this.detectControls),
          el("section", { class: "panel events", "aria-labelledby": "events-title" },
            el("h2", { id: "events-title" }, "Events"), this.events.root)),
        el("section", { class: "panel recordings", "aria-labelledby": "recordings-title" },
          el("h2", { id: "recordings-title" }, "Recordings"),
          el("form", { class: "day-controls", onsubmit: (event) => this.playTyped(event) },
            el("button", { type: "button", onclick: () => this.shiftDay(-1), "aria-label": "Previous day" }, "‹"),
            el("label", { for: "day" }, "Day"), this.dayInput,
            el("button", { type: "button", onclick: () => this.shiftDay(1), "aria-label": "Next day" }, "›"),
            el("label", { for: "play-time" }, "Play from"), this.timeInput,
            el("button", { type: "submit" }, "Play")),
          this.timeline.root, this.timelineStatus, this.playbackVideo, this.playbackStatus)));
    document.title = `${name} · Vigil`;

    this.onVisibility = () => this.tile?.sync();
    document.addEventListener("visibilitychange", this.onVisibility);
    this.unwatch = streamsFeed.watch((streams, error) => this.renderStream(streams, error));
    this.unsubscribe = bus.on(
      (event) => event.stream === name && /^(segment|gap)\./.test(event.type),
      () => this.refreshSoon());
    bus.start();
    this.loadDay();
  }

  focus() {
    this.heading.focus();
  }

  renderStream(streams, error) {
    if (error) {
      this.status.textContent = `Cannot read the stream: ${error.message}`;
      this.status.className = "status error";
      return;
    }
    const stream = streams.find((s) => s.name === this.name);
    this.status.className = "status";
    if (!stream) {
      this.status.textContent = "This stream is not configured (any recordings of it are below).";
      this.overlay?.destroy();
      this.overlay = null;
      this.tile?.destroy();
      this.tile = null;
      return;
    }
    const recording = stream.config?.record ? "recording" : "not recording";
    this.status.textContent = `${stream.state} · ${recording} · ${stream.reason || ""}`;
    if (!this.tile) {
      this.tile = new Tile(stream, { link: false, headingLevel: 3 });
      this.liveSlot.replaceChildren(this.tile.root);
      this.tile.setVisible(true);
    } else {
      this.tile.update(stream);
    }
    this.renderDetection(stream);
  }

  /** The detector's view over the live picture, when the stream has detection on. */
  renderDetection(stream) {
    const detect = stream.config?.detect;
    const enabled = Boolean(detect?.enabled);
    this.detectControls.hidden = !enabled;
    if (enabled && !this.overlay) {
      this.overlay = new DetectionOverlay(this.name, this.tile.media);
      this.detectControls.append(this.overlay.summary);
    }
    if (!this.overlay) return;
    this.overlay.setZones(detect?.zones || []);
    const wanted = enabled && this.showDetections.checked;
    if (wanted !== Boolean(this.overlay.timer)) this.overlay.show(wanted);
  }

  toggleDetections() {
    localStorage.setItem(SHOW_DETECTIONS, this.showDetections.checked ? "yes" : "no");
    this.overlay?.show(this.showDetections.checked);
  }

  setDay(day) {
    if (day === this.day) return;
    this.day = day;
    this.dayInput.value = day;
    history.replaceState(null, "", `#/stream/${encodeURIComponent(this.name)}?day=${day}`);
    this.loadDay();
  }

  shiftDay(days) {
    const [start] = dayBounds(this.day);
    start.setDate(start.getDate() + days);
    if (localDay(start) > localDay(new Date())) return;
    this.setDay(localDay(start));
  }

  playTyped(event) {
    event.preventDefault();
    const [hours, minutes, seconds = 0] = (this.timeInput.value || "").split(":").map(Number);
    if (Number.isNaN(hours) || Number.isNaN(minutes)) return;
    const [start] = dayBounds(this.day);
    start.setHours(hours, minutes, seconds);
    this.play(start.getTime());
  }

  play(time) {
    this.timeline.setCursor(time);
    this.player.playFrom(time);
  }

  scheduleRefresh(ms) {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.loadDay(), ms);
  }

  /** A segment opened or closed, or a gap: show it within a few seconds (not per event). */
  refreshSoon() {
    if (localDay(new Date()) !== this.day || this.soonTimer) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      this.loadDay();
    }, SOON_MS);
  }

  async loadDay() {
    clearTimeout(this.refreshTimer);
    const day = this.day;
    const [start, end] = dayBounds(day);
    const range = { start: start.toISOString(), end: end.toISOString() };
    try {
      // Once a day is loaded, a refresh asks only from its last segment on (that one may
      // still be open) rather than for the whole day again.
      const known = this.segments.day === day ? this.segments.list : [];
      const from = known.length ? known.at(-1).start : range.start;
      const fresh = [];
      let path = apiPath(`/streams/${streamPath(this.name)}/segments`, { ...range, start: from, limit: PAGE });
      while (path) {
        const page = await getJson(path);
        fresh.push(...page.segments);
        path = page.next;
      }
      const gaps = await getJson(apiPath(`/streams/${streamPath(this.name)}/gaps`, range));
      if (day !== this.day) return;
      const byId = new Map([...known, ...fresh].map((segment) => [segment.id, segment]));
      const segments = [...byId.values()].sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
      this.segments = { day, list: segments };
      const now = Date.now();
      this.timeline.setData(start.getTime(), end.getTime(), runsOf(segments, now), gapsOf(gaps.gaps, now));
      this.timelineStatus.textContent = gaps.truncated ? "Too many gaps to show them all." : "";
    } catch (error) {
      if (day !== this.day) return;
      this.timeline.setData(start.getTime(), end.getTime(), [], []);
      this.timelineStatus.textContent = error.status === 404
        ? "Nothing recorded for this stream."
        : `Cannot load the recordings: ${error.message}`;
    }
    if (!this.destroyed && localDay(new Date()) === day) this.scheduleRefresh(REFRESH_MS);
  }

  destroy() {
    this.destroyed = true;
    document.removeEventListener("visibilitychange", this.onVisibility);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.soonTimer);
    this.unwatch();
    this.unsubscribe();
    this.overlay?.destroy();
    this.tile?.destroy();
    this.player.destroy();
    this.events.destroy();
  }
}

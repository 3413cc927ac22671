// The recordings timeline of one day: recorded video (segments joined into runs) and gaps,
// drawn as a bar; a click plays from that time. Zoom and pan move a window over the day.

import { el, formatDuration, formatShortTime, formatTime } from "./format.js";

export const ZOOMS = [
  { label: "Whole day", seconds: 24 * 3600 },
  { label: "6 hours", seconds: 6 * 3600 },
  { label: "1 hour", seconds: 3600 },
  { label: "10 minutes", seconds: 600 },
];
const TICK_STEPS_S = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
const JOIN_MS = 2000; // segments closer than this are one run of video
const TAIL_MS = 60000; // a click past the end of a short run plays its last minute

/**
 * Runs of continuous video from the API's segments (oldest first): [{start, end, missing}] in
 * ms since the epoch. An open segment lasts until `now`; `missing` segments (their file is
 * gone) make runs of their own, drawn but not playable.
 */
export function runsOf(segments, now) {
  const runs = [];
  for (const segment of segments) {
    const start = Date.parse(segment.start);
    const end = segment.end ? Date.parse(segment.end) : now;
    const missing = segment.status === "missing";
    const last = runs.at(-1);
    if (last && last.missing === missing && start - last.end <= JOIN_MS) last.end = Math.max(last.end, end);
    else runs.push({ start, end, missing });
  }
  return runs;
}

/** The API's gaps as [{start, end, reason}] in ms; a gap still open lasts until `now`. */
export function gapsOf(gaps, now) {
  return gaps.map((gap) => ({
    start: Date.parse(gap.start), end: gap.end ? Date.parse(gap.end) : now, reason: gap.reason,
  }));
}

/** Where to play from when `time` was clicked on `run` (its drawn box may be wider than it). */
export function playTimeIn(run, time) {
  if (time <= run.start) return run.start;
  if (time < run.end - 1000) return time;
  return Math.max(run.start, run.end - TAIL_MS);
}

function tickStep(spanMs) {
  const wanted = spanMs / 1000 / 6;
  return (TICK_STEPS_S.find((step) => step >= wanted) ?? TICK_STEPS_S.at(-1)) * 1000;
}

export class Timeline {
  /** `onPlay(ms)`: the user asked to play from that time. */
  constructor(onPlay) {
    this.onPlay = onPlay;
    this.dayStart = 0;
    this.dayEnd = 0;
    this.from = 0;
    this.span = ZOOMS[0].seconds * 1000;
    this.runs = [];
    this.gaps = [];
    this.cursor = null;

    this.zoom = el("select", { id: "timeline-zoom", onchange: () => this.setZoom(Number(this.zoom.value)) },
      ...ZOOMS.map((zoom) => el("option", { value: zoom.seconds * 1000, text: zoom.label })));
    this.earlier = el("button", { type: "button", onclick: () => this.pan(-0.5), "aria-label": "Earlier" }, "◀");
    this.later = el("button", { type: "button", onclick: () => this.pan(0.5), "aria-label": "Later" }, "▶");
    this.windowLabel = el("span", { class: "window-label" });
    this.track = el("div", { class: "track", role: "group" });
    this.track.addEventListener("click", (event) => this.clicked(event));
    this.axis = el("div", { class: "axis", "aria-hidden": "true" });
    this.summary = el("p", { class: "summary" });
    this.root = el("div", { class: "timeline" },
      el("div", { class: "timeline-controls" },
        el("label", { for: "timeline-zoom" }, "Zoom"), this.zoom, this.earlier, this.later,
        this.windowLabel),
      this.track, this.axis, this.summary);
  }

  /** The day shown and what was recorded in it (runs and gaps as from runsOf / gapsOf). */
  setData(dayStart, dayEnd, runs, gaps) {
    const dayChanged = dayStart !== this.dayStart;
    this.dayStart = dayStart;
    this.dayEnd = dayEnd;
    this.runs = runs;
    this.gaps = gaps;
    if (dayChanged) {
      this.span = Math.min(this.span, dayEnd - dayStart);
      this.from = dayStart;
      this.setZoom(this.span);
    } else {
      this.render();
    }
  }

  setZoom(spanMs) {
    const day = this.dayEnd - this.dayStart;
    const center = this.cursor ?? this.runs.at(-1)?.end ?? this.from + this.span / 2;
    this.span = Math.min(spanMs, day);
    this.zoom.value = String(spanMs);
    this.moveTo(center - this.span / 2);
  }

  pan(fraction) {
    this.moveTo(this.from + fraction * this.span);
  }

  moveTo(from) {
    this.from = Math.min(Math.max(from, this.dayStart), this.dayEnd - this.span);
    this.render();
  }

  setCursor(time) {
    this.cursor = time;
    if (time !== null && (time < this.from || time >= this.from + this.span)
        && time >= this.dayStart && time < this.dayEnd) {
      this.moveTo(time - this.span / 2);
    } else {
      this.placeCursor();
    }
  }

  percent(time) {
    return ((time - this.from) / this.span) * 100;
  }

  render() {
    // Redrawing replaces the buttons: keep the keyboard focus on the same recording.
    const focused = this.track.contains(document.activeElement) ? document.activeElement.dataset.start : null;
    const to = this.from + this.span;
    const inside = (item) => item.end > this.from && item.start < to;
    const box = (item) => {
      const left = Math.max(0, this.percent(item.start));
      const right = Math.min(100, this.percent(item.end));
      return { left: `${left}%`, width: `${Math.max(0, right - left)}%` };
    };
    const children = [];
    for (const gap of this.gaps.filter(inside)) {
      children.push(el("span", {
        class: "gap", style: box(gap),
        title: `Not recorded ${formatTime(gap.start)}–${formatTime(gap.end)}: ${gap.reason}`,
      }));
    }
    for (const run of this.runs.filter(inside)) {
      const span = `${formatTime(run.start)} to ${formatTime(run.end)}`;
      if (run.missing) {
        children.push(el("span", { class: "run missing", style: box(run), title: `Files missing ${span}` }));
        continue;
      }
      const button = el("button", {
        type: "button", class: "run", style: box(run),
        "aria-label": `Play the recording from ${formatTime(run.start)} (recorded ${span})`,
        dataset: { start: new Date(run.start).toISOString(), end: new Date(run.end).toISOString() },
      });
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        // A keyboard "click" has no position: play the run from its start.
        const time = event.detail === 0 ? run.start : this.timeAt(event.clientX);
        this.onPlay(playTimeIn(run, time));
      });
      children.push(button);
    }
    this.cursorMark = el("span", { class: "cursor", hidden: true });
    const now = Date.now();
    if (now > this.from && now < to) {
      children.push(el("span", { class: "now", style: { left: `${this.percent(now)}%` }, title: "Now" }));
    }
    children.push(this.cursorMark);
    this.track.replaceChildren(...children);
    // The end of a day is 24:00, not the next day's 00:00.
    const end = to >= this.dayEnd ? "24:00" : formatShortTime(to);
    this.track.setAttribute("aria-label",
      `Recordings from ${formatShortTime(this.from)} to ${end}; each bar is recorded video`);
    this.windowLabel.textContent = `${formatShortTime(this.from)}–${end}`;
    this.earlier.disabled = this.from <= this.dayStart;
    this.later.disabled = to >= this.dayEnd;
    this.renderAxis(to);
    this.renderSummary();
    this.placeCursor();
    if (focused) [...this.track.querySelectorAll("button.run")].find((b) => b.dataset.start === focused)?.focus();
  }

  renderAxis(to) {
    const step = tickStep(this.span);
    const ticks = [];
    for (let time = this.dayStart + Math.ceil((this.from - this.dayStart) / step) * step; time <= to; time += step) {
      const last = time >= this.dayEnd;
      ticks.push(el("span", { class: last ? "tick last" : "tick", style: { left: `${this.percent(time)}%` } },
        last ? "24:00" : formatShortTime(time)));
    }
    this.axis.replaceChildren(...ticks);
  }

  renderSummary() {
    const recorded = this.runs.filter((run) => !run.missing)
      .reduce((total, run) => total + (run.end - run.start), 0);
    const gapTime = this.gaps.reduce((total, gap) => total + (gap.end - gap.start), 0);
    this.summary.textContent = this.runs.length
      ? `${formatDuration(recorded / 1000)} recorded this day`
        + (this.gaps.length ? `, ${this.gaps.length} gap${this.gaps.length > 1 ? "s" : ""} (${formatDuration(gapTime / 1000)})` : "")
        + ". Click the bar to play from that time."
      : "Nothing recorded this day.";
  }

  placeCursor() {
    if (!this.cursorMark) return;
    const visible = this.cursor !== null && this.cursor >= this.from && this.cursor < this.from + this.span;
    this.cursorMark.hidden = !visible;
    if (visible) this.cursorMark.style.left = `${this.percent(this.cursor)}%`;
  }

  timeAt(clientX) {
    const rect = this.track.getBoundingClientRect();
    return this.from + ((clientX - rect.left) / rect.width) * this.span;
  }

  clicked(event) {
    if (event.target !== this.track && !event.target.classList.contains("gap")) return;
    this.onPlay(this.timeAt(event.clientX));
  }
}

// One camera: its live video (WHEP), or its latest snapshot while live video is not playing,
// with its name, state and frame rate.

import { API, request, streamPath } from "./api.js";
import { el, formatFps } from "./format.js";
import { LivePlayer } from "./live.js";

const SNAPSHOT_MS = 5000;

export class Tile {
  /** `link`: the name links to the stream's page (in the grid). */
  constructor(stream, { link = true, headingLevel = 2 } = {}) {
    this.name = stream.name;
    this.stream = stream;
    this.visible = false;
    this.snapshotTimer = null;
    this.snapshotUrl = null;
    this.playerState = "stopped";

    const id = `tile-${this.name}`;
    this.video = el("video", {
      muted: true, autoplay: true, playsinline: true, "aria-label": `Live video of ${this.name}`,
    });
    this.video.muted = true; // the attribute alone does not mute a video created by script
    this.image = el("img", { alt: `Latest picture of ${this.name}`, hidden: true });
    this.overlay = el("p", { class: "overlay", "aria-live": "polite" });
    this.stateBadge = el("span", { class: "state" });
    this.fps = el("span", { class: "fps" });
    this.objects = el("span", { class: "objects", hidden: true }); // what is in view now
    this.reason = el("p", { class: "reason" });
    const title = link
      ? el("a", { href: `#/stream/${encodeURIComponent(this.name)}`, text: this.name })
      : this.name;
    this.media = el("div", { class: "media" }, this.video, this.image, this.overlay);
    this.root = el("article", { class: "tile", "aria-labelledby": id, dataset: { stream: this.name } },
      this.media,
      el("div", { class: "caption" },
        el(`h${headingLevel}`, { id, class: "name" }, title), this.objects, this.stateBadge, this.fps),
      this.reason);
    this.player = new LivePlayer(this.name, this.video, (state, detail) => this.onPlayer(state, detail));
    this.update(stream);
  }

  /** New data for this stream from the API. */
  update(stream) {
    const wasStreaming = this.stream.state === "streaming";
    this.stream = stream;
    this.stateBadge.textContent = stream.state;
    this.stateBadge.className = `state state-${stream.state}`;
    this.fps.textContent = stream.state === "streaming" ? formatFps(stream.fps) : "";
    const inView = Object.entries(stream.detection?.in_view || {})
      .sort(([a, m], [b, n]) => n - m || a.localeCompare(b)); // most first
    this.objects.textContent = inView.map(([label, n]) => `${n} ${label}`).join(", ");
    this.objects.title = inView.length ? "Tracked objects in view now" : "";
    this.objects.hidden = !inView.length;
    this.reason.textContent = stream.recording_blocked || stream.reason || "";
    this.root.dataset.state = stream.state;
    if (!wasStreaming && stream.state === "streaming" && this.player.state === "retrying") {
      this.player.retryNow();
    }
    this.sync();
  }

  /** Whether the tile is on screen: live video only plays for tiles that are. */
  setVisible(visible) {
    this.visible = visible;
    this.sync();
  }

  sync() {
    const wanted = this.visible && !document.hidden && this.stream.state !== "stopped";
    if (wanted) this.player.start();
    else this.player.stop();
    const snapshots = this.visible && this.playerState !== "live" && this.stream.state === "streaming";
    if (snapshots && !this.snapshotTimer) {
      this.loadSnapshot();
      this.snapshotTimer = setInterval(() => this.loadSnapshot(), SNAPSHOT_MS);
    } else if (!snapshots && this.snapshotTimer) {
      clearInterval(this.snapshotTimer);
      this.snapshotTimer = null;
    }
    this.image.classList.toggle("stale", this.stream.state !== "streaming");
    this.showOverlay();
  }

  onPlayer(state, detail) {
    this.playerState = state;
    this.root.dataset.live = state;
    // Which WHEP session plays here (the end of its URL): what GET /api/v1/sessions lists.
    this.root.dataset.session = state === "live" ? (detail.session || "").split("/").pop() : "";
    this.retry = state === "retrying" ? detail : null;
    const live = state === "live";
    this.video.hidden = !live;
    this.image.hidden = live || !this.snapshotUrl;
    this.sync();
  }

  showOverlay() {
    let text = "";
    if (this.stream.state !== "streaming") text = `${this.stream.state}: ${this.stream.reason || ""}`;
    else if (this.playerState === "connecting") text = "Connecting…";
    else if (this.playerState === "retrying" && this.retry) {
      const seconds = Math.max(1, Math.round((this.retry.at - Date.now()) / 1000));
      text = `Live: ${this.retry.why}; trying again in ${seconds} s`;
    }
    this.overlay.textContent = text;
    this.overlay.hidden = !text;
  }

  async loadSnapshot() {
    try {
      const response = await request(`${API}/streams/${streamPath(this.name)}/snapshot.jpg`);
      if (!response.ok) return; // not streaming after all: keep the last picture
      const url = URL.createObjectURL(await response.blob());
      if (this.snapshotUrl) URL.revokeObjectURL(this.snapshotUrl);
      this.snapshotUrl = url;
      this.image.src = url;
      this.image.hidden = this.playerState === "live";
    } catch {
      // offline for a moment: the next tick tries again
    }
  }

  destroy() {
    this.player.stop();
    clearInterval(this.snapshotTimer);
    this.snapshotTimer = null;
    if (this.snapshotUrl) URL.revokeObjectURL(this.snapshotUrl);
    this.root.remove();
  }
}

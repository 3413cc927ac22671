// What the detector sees on a stream, drawn over its live picture: the boxes of its latest
// detections (label, score, object id) and the stream's zones, so that zones and min_score can
// be tuned by looking. Polls GET …/detections/latest while shown. Boxes come from the
// detector's frames (1–5 a second), not from the video's: they lag moving objects a little.

import { API, request, streamPath } from "./api.js";
import { el } from "./format.js";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";

/** Where a picture of pictureWidth x pictureHeight shows inside a box of boxWidth x boxHeight
 * with `object-fit: contain`: {left, top, width, height} as fractions of the box. */
export function containedRect(boxWidth, boxHeight, pictureWidth, pictureHeight) {
  if (!(boxWidth > 0 && boxHeight > 0 && pictureWidth > 0 && pictureHeight > 0)) {
    return { left: 0, top: 0, width: 1, height: 1 };
  }
  const scale = Math.min(boxWidth / pictureWidth, boxHeight / pictureHeight);
  const width = (pictureWidth * scale) / boxWidth;
  const height = (pictureHeight * scale) / boxHeight;
  return { left: (1 - width) / 2, top: (1 - height) / 2, width, height };
}

/** How long boxes stay up when no newer result comes: three of the detector's frame
 * intervals, at least 2 s (measured on the browser's clock: the server's may differ). */
export function staleAfterMs(fps) {
  return Math.max(2000, 3000 / Math.max(fps || 1, 0.01));
}

/** A detection's caption: "person 82 % #a3f9" (the start of its object id once tracked). */
export function caption(detection) {
  const score = `${Math.round((detection.score || 0) * 100)} %`;
  const id = detection.object_id ? ` #${String(detection.object_id).slice(0, 4)}` : "";
  return `${detection.label} ${score}${id}`;
}

/** One line on the detector's state: "Detection running · 2 person, 1 car". */
export function summary(latest) {
  if (!latest) return "Detection is off for this stream.";
  if (latest.state !== "running") {
    return `Detection ${latest.state}${latest.reason ? `: ${latest.reason}` : ""}`;
  }
  const counts = new Map();
  for (const d of latest.detections || []) counts.set(d.label, (counts.get(d.label) || 0) + 1);
  const seen = [...counts].map(([label, n]) => `${n} ${label}`).join(", ");
  return `Detection running · ${seen || "nothing in view"}`;
}

export class DetectionOverlay {
  /** `media`: the element holding the live <video> and the snapshot <img>. */
  constructor(name, media) {
    this.name = name;
    this.media = media;
    this.timer = null;
    this.lastAt = null; // the latest result's time, to notice when none newer comes
    this.lastChange = 0;
    this.zones = [];
    this.zonesKey = null; // the zones drawn, as JSON
    this.zoneLayer = document.createElementNS(SVG, "svg");
    this.zoneLayer.setAttribute("viewBox", "0 0 1 1");
    this.zoneLayer.setAttribute("preserveAspectRatio", "none");
    this.zoneLayer.classList.add("zones");
    this.boxLayer = el("div", { class: "boxes" });
    this.layer = el("div", { class: "detections", hidden: true, "aria-hidden": "true" },
      this.boxLayer);
    this.layer.prepend(this.zoneLayer);
    this.summary = el("p", { class: "detect-summary" });
    media.append(this.layer);
    this.resize = new ResizeObserver(() => this.place());
    this.resize.observe(media);
  }

  /** Show (and poll) or hide the overlay. */
  show(on) {
    this.layer.hidden = !on;
    this.summary.hidden = !on;
    clearInterval(this.timer);
    this.timer = null;
    if (!on) return;
    this.poll();
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  /** The stream's zones, from its config (`detect.zones`); redrawn only when they change
   * (the stream list that carries them is read every few seconds). */
  setZones(zones) {
    const key = JSON.stringify(zones || []);
    if (key === this.zonesKey) return;
    this.zonesKey = key;
    this.zones = zones || [];
    const drawn = this.zones.map((zone) => {
      const polygon = document.createElementNS(SVG, "polygon");
      polygon.setAttribute("points", zone.polygon.map(([x, y]) => `${x},${y}`).join(" "));
      polygon.setAttribute("vector-effect", "non-scaling-stroke");
      polygon.classList.add("zone", `zone-${zone.mode || "include"}`);
      polygon.dataset.zone = zone.name;
      return polygon;
    });
    this.zoneLayer.replaceChildren(...drawn);
    this.layer.querySelectorAll(".zone-name").forEach((node) => node.remove());
    for (const zone of this.zones) {
      const [x, y] = zone.polygon[0];
      this.layer.append(el("span", { class: `zone-name zone-${zone.mode || "include"}`,
        text: zone.name, style: { left: `${x * 100}%`, top: `${y * 100}%` } }));
    }
  }

  async poll() {
    let latest = null;
    try {
      const response = await request(`${API}/streams/${streamPath(this.name)}/detections/latest`);
      if (response.ok) latest = await response.json();
      else if (response.status !== 404) return; // a passing error: keep what is shown
    } catch {
      return; // offline for a moment: the next tick tries again
    }
    if (!this.timer) return; // hidden meanwhile
    this.draw(latest);
  }

  /** Draw a `…/detections/latest` answer (null: detection off). */
  draw(latest) {
    this.place();
    this.summary.textContent = summary(latest);
    this.layer.dataset.state = latest?.state || "off";
    const now = Date.now();
    if (latest?.at !== this.lastAt) {
      this.lastAt = latest?.at ?? null;
      this.lastChange = now;
    }
    const fresh = latest?.state === "running" && now - this.lastChange <= staleAfterMs(latest.fps);
    const boxes = (fresh ? latest.detections || [] : []).map((d) => {
      const [x1, y1, x2, y2] = d.box;
      return el("div", {
        // A box at the top keeps its caption inside (above it would be cut off).
        class: y1 < 0.08 ? "box label-inside" : "box",
        dataset: { label: d.label, object: d.object_id || "" },
        style: { left: `${x1 * 100}%`, top: `${y1 * 100}%`, width: `${(x2 - x1) * 100}%`,
          height: `${(y2 - y1) * 100}%` },
      }, el("span", { class: "box-label", text: caption(d) }));
    });
    this.boxLayer.replaceChildren(...boxes);
  }

  /** Lay the overlay over the picture itself (the video is letterboxed in its frame). */
  place() {
    const video = this.media.querySelector("video");
    const image = this.media.querySelector("img");
    const [width, height] = video && !video.hidden && video.videoWidth
      ? [video.videoWidth, video.videoHeight]
      : [image?.naturalWidth || 0, image?.naturalHeight || 0];
    const rect = containedRect(this.media.clientWidth, this.media.clientHeight, width, height);
    Object.assign(this.layer.style, {
      left: `${rect.left * 100}%`, top: `${rect.top * 100}%`,
      width: `${rect.width * 100}%`, height: `${rect.height * 100}%`,
    });
  }

  destroy() {
    clearInterval(this.timer);
    this.timer = null;
    this.resize.disconnect();
    this.layer.remove();
    this.summary.remove();
  }
}

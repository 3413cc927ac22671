// Playback of recordings through the export API: a clip of a few minutes from the chosen
// time, fetched with the token and played from a blob; when it ends, the next clip follows.

import { API, errorOf, request, streamPath } from "./api.js";
import { formatTime } from "./format.js";

export const CLIP_MS = 2 * 60 * 1000;

export class RecordingPlayer {
  /** `onPosition(ms)`: the wall-clock time being shown (approximate across skipped gaps). */
  constructor(stream, video, status, onPosition = () => {}) {
    this.stream = stream;
    this.video = video;
    this.status = status;
    this.onPosition = onPosition;
    this.clip = null; // {url, start, end} of the clip playing
    this.controller = null;
    video.addEventListener("timeupdate", () => {
      if (this.clip) this.onPosition(this.clip.start + video.currentTime * 1000);
    });
    video.addEventListener("ended", () => {
      // Continue with what follows, unless this clip reached the present.
      if (this.clip && this.clip.end < Date.now() - 2000) this.playFrom(this.clip.end, { continuing: true });
    });
  }

  /** Play the recording from `time` (ms since the epoch). */
  async playFrom(time, { continuing = false } = {}) {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.say(`Loading the recording from ${formatTime(time)}…`);
    try {
      let response = await this.fetchClip(time, controller.signal);
      if (response.status === 404) {
        const error = await errorOf(response);
        const after = error.code === "no_video" && error.details?.after;
        if (!after || continuing) {
          this.say(continuing ? "End of the recordings." : error.message, !continuing);
          return;
        }
        // A click on a gap: play from the first video after it.
        response = await this.fetchClip(Date.parse(after), controller.signal);
      }
      if (!response.ok) throw await errorOf(response);
      const blob = await response.blob();
      if (controller.signal.aborted) return;
      const start = Date.parse(response.headers.get("X-Vigil-Start")) || time;
      const end = Date.parse(response.headers.get("X-Vigil-End")) || time + CLIP_MS;
      this.show({ url: URL.createObjectURL(blob), start, end });
      const skipped = Number(response.headers.get("X-Vigil-Skipped-Seconds") || 0);
      this.say(`Playing ${formatTime(start)}–${formatTime(end)}`
        + (skipped ? ` (${Math.round(skipped)} s not recorded, skipped)` : ""));
      await this.video.play();
    } catch (error) {
      if (controller.signal.aborted || error.name === "AbortError") return;
      this.say(`Cannot play the recording: ${error.message}`, true);
    }
  }

  fetchClip(time, signal) {
    const start = new Date(time).toISOString();
    const end = new Date(time + CLIP_MS).toISOString();
    const query = new URLSearchParams({ start, end });
    return request(`${API}/streams/${streamPath(this.stream)}/export.mp4?${query}`, { signal });
  }

  show(clip) {
    if (this.clip) URL.revokeObjectURL(this.clip.url);
    this.clip = clip;
    this.video.src = clip.url;
    this.video.hidden = false;
    this.video.dataset.clipStart = new Date(clip.start).toISOString();
  }

  say(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("error", isError);
  }

  destroy() {
    this.controller?.abort();
    this.video.removeAttribute("src");
    this.video.load();
    if (this.clip) URL.revokeObjectURL(this.clip.url);
    this.clip = null;
  }
}

// The grid of live cameras: every stream as a tile. Tiles play live only while on screen.

import { bus, streamsFeed } from "./bus.js";
import { el } from "./format.js";
import { Tile } from "./tile.js";

export class GridView {
  constructor(main) {
    this.tiles = new Map();
    this.heading = el("h1", { tabindex: "-1", text: "Cameras" });
    this.status = el("p", { class: "status", role: "status" });
    this.list = el("ul", { class: "grid", "aria-label": "Cameras" });
    main.replaceChildren(el("div", { class: "page-head" }, this.heading, this.status), this.list);
    document.title = "Cameras · Vigil";
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        this.tiles.get(entry.target.dataset.stream)?.setVisible(entry.isIntersecting);
      }
    }, { rootMargin: "100px" });
    this.onVisibility = () => this.tiles.forEach((tile) => tile.sync());
    document.addEventListener("visibilitychange", this.onVisibility);
    this.unwatch = streamsFeed.watch((streams, error) => this.render(streams, error));
    bus.start();
  }

  focus() {
    this.heading.focus();
  }

  render(streams, error) {
    if (error) {
      this.status.textContent = `Cannot list the streams: ${error.message}`;
      this.status.className = "status error";
    } else {
      this.status.className = "status";
      this.status.textContent = streams.length
        ? `${streams.filter((s) => s.state === "streaming").length} of ${streams.length} streaming`
        : "No streams are configured. Add one in the configuration file or with POST /api/v1/streams.";
    }
    if (!streams) return;
    const names = new Set(streams.map((s) => s.name));
    for (const [name, tile] of this.tiles) {
      if (!names.has(name)) {
        this.observer.unobserve(tile.root);
        tile.root.parentElement.remove();
        tile.destroy();
        this.tiles.delete(name);
      }
    }
    let previous = null;
    for (const stream of streams) {
      let tile = this.tiles.get(stream.name);
      if (tile) {
        tile.update(stream);
      } else {
        tile = new Tile(stream);
        this.tiles.set(stream.name, tile);
        const item = el("li", {}, tile.root);
        if (previous) previous.after(item);
        else this.list.prepend(item);
        this.observer.observe(tile.root);
      }
      previous = tile.root.parentElement;
    }
  }

  destroy() {
    this.unwatch();
    this.observer.disconnect();
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.tiles.forEach((tile) => tile.destroy());
    this.tiles.clear();
  }
}

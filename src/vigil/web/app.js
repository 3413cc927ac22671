// Vigil's browser UI: the page's frame (header, token, live-updates indicator) and the views,
// chosen by the URL's hash: #/ the camera grid, #/stream/<name> a stream's page.

import { forgetToken, storedToken } from "./api.js";
import { bus } from "./bus.js";
import { GridView } from "./grid.js";
import { StreamView } from "./stream.js";

const main = document.getElementById("main");
const connection = document.getElementById("connection");
const forgetButton = document.getElementById("forget-token");
let view = null;

function route() {
  view?.destroy();
  const [path, query = ""] = (location.hash.slice(1) || "/").split("?");
  const match = path.match(/^\/stream\/([^/]+)$/);
  const hadView = view !== null;
  view = match
    ? new StreamView(main, decodeURIComponent(match[1]), new URLSearchParams(query))
    : new GridView(main);
  const cameras = document.getElementById("nav-cameras");
  if (match) cameras.removeAttribute("aria-current");
  else cameras.setAttribute("aria-current", "page");
  // Focus follows the page (screen readers announce the new heading), but not on first load.
  if (hadView) view.focus();
}

function showToken() {
  forgetButton.hidden = !storedToken();
}

bus.addEventListener("connection", (event) => {
  connection.textContent = event.detail ? "Live updates on" : "Live updates reconnecting…";
  connection.classList.toggle("offline", !event.detail);
});
window.addEventListener("vigil-token", () => {
  showToken();
  if (storedToken()) bus.restart();
});
forgetButton.addEventListener("click", () => {
  forgetToken();
  location.reload();
});
window.addEventListener("hashchange", route);
// Live sessions end with the page: the server is told (DELETE), not left to time them out.
window.addEventListener("pagehide", () => view?.destroy());
window.addEventListener("pageshow", (event) => {
  if (event.persisted) route(); // back from the back/forward cache: start again
});

showToken();
route();

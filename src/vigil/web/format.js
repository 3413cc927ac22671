// How times, durations and sizes are shown. Times are the browser's local time; the API's
// are UTC (ISO 8601 with a zone), converted here.

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});
const shortTimeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

export const formatTime = (date) => timeFormat.format(date);
export const formatShortTime = (date) => shortTimeFormat.format(date);
export const formatDateTime = (date) => dateTimeFormat.format(date);

/** 3725 → "1 h 2 min", 42.5 → "42 s". */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min ${s % 60 ? `${s % 60} s` : ""}`.trim();
  const hours = Math.floor(minutes / 60);
  return `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ""}`;
}

export function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit && value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatFps(fps) {
  return `${(fps ?? 0).toFixed(fps >= 10 || !fps ? 0 : 1)} fps`;
}

/** "YYYY-MM-DD" of a date in local time (the value of <input type="date">). */
export function localDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** [start, end) of a local day given as "YYYY-MM-DD" (23 or 25 h around DST changes). */
export function dayBounds(day) {
  const [year, month, date] = day.split("-").map(Number);
  return [new Date(year, month - 1, date), new Date(year, month - 1, date + 1)];
}

/** Build an element: el("li", {class: "x", dataset: {...}}, "text", child…). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

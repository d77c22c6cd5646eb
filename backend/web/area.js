// Asking for an area instead of a file: draw a box on the map (or type it), pick a date and a source, and
// the job is followed like an upload (app.js's follow), its stages (searching, fetching) shown in the label.
"use strict";

let areaMap = null; // {map, box: L.Rectangle | null, drawing: boolean}

function areaLabel(status) {
  const area = status.area || {};
  if (status.state === "searching" || (status.state === "queued" && !status.total)) return "searching the catalogue…";
  if (status.state === "fetching") {
    const found = area.scenes_found ?? 0;
    const read = area.bytes_read == null ? "" : `, ${formatBytes(area.bytes_read)} read`;
    const land = area.scenes_on_land ? ` (${area.scenes_on_land} more on land, not read)` : "";
    return `fetching: ${area.scenes_fetched} of ${plural(found, "scene")}${land}${read}`;
  }
  if (!status.total) return area.reason || "no window to segment";
  return `${status.done + status.failed} of ${plural(status.total, "window")}`;
}

function parseBbox(text) {
  const values = text.split(",").map((v) => Number(v.trim()));
  return values.length === 4 && values.every(Number.isFinite) ? values : null;
}

function setBox(bounds) {
  const edges = [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()];
  $("area-bbox").value = edges.map((v) => v.toFixed(4)).join(",");
}

function drawBox(bbox) {
  if (!areaMap) return;
  const bounds = L.latLngBounds([bbox[1], bbox[0]], [bbox[3], bbox[2]]);
  if (areaMap.box) areaMap.box.setBounds(bounds);
  else areaMap.box = L.rectangle(bounds, { color: "#0b6bcb", weight: 2, fillOpacity: 0.1 }).addTo(areaMap.map);
}

// Draw mode: the next drag on the map draws the box instead of panning.
function startDrawing() {
  const { map } = areaMap;
  areaMap.drawing = true;
  map.dragging.disable();
  $("area-draw").setAttribute("aria-pressed", "true");
  map.getContainer().classList.add("drawing");
  let start = null;
  const move = (event) => {
    if (!start) return;
    const bounds = L.latLngBounds(start, event.latlng);
    drawBox([bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()]);
    setBox(bounds);
  };
  const down = (event) => {
    start = event.latlng;
  };
  const up = (event) => {
    if (!start) return;
    move(event);
    start = null;
    map.off("mousedown", down).off("mousemove", move).off("mouseup", up);
    map.dragging.enable();
    map.getContainer().classList.remove("drawing");
    areaMap.drawing = false;
    $("area-draw").setAttribute("aria-pressed", "false");
  };
  map.on("mousedown", down).on("mousemove", move).on("mouseup", up);
}

async function loadSources() {
  let sources;
  try {
    sources = await getJson("/api/area-jobs/sources");
  } catch (_) {
    return; // the request itself will say what is wrong
  }
  $("area-source").replaceChildren(
    ...sources.map((s) => {
      const option = document.createElement("option");
      option.value = s.name;
      option.textContent = s.description ? `${s.name} · ${s.description}` : s.name;
      return option;
    }),
  );
}

async function askArea(event) {
  event.preventDefault();
  clearError();
  const bbox = parseBbox($("area-bbox").value);
  if (!bbox) {
    showError("Draw a box on the map, or type it as min_lon,min_lat,max_lon,max_lat.");
    return;
  }
  const body = {
    bboxes: [bbox],
    date: $("area-date").value,
    temporal_tolerance: Number($("area-tolerance").value || 0),
    data_source: $("area-source").value,
    max_scenes: Number($("area-max-scenes").value || 5),
  };
  let response;
  try {
    response = await fetch("/api/area-jobs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (_) {
    showError(NETWORK_ERROR);
    return;
  }
  const text = await response.text();
  if (response.status !== 202) {
    if (response.status === 401) askForKey(); // auth.js: the API needs a key, as for an upload
    showError(detailOf(response.status, text));
    return;
  }
  resetJob();
  history.replaceState(null, "", location.pathname);
  follow({ ...JSON.parse(text), images: 0, skipped: [] });
}

function initArea() {
  if (typeof L === "undefined") return;
  const map = L.map("area-map", { minZoom: 1, attributionControl: false, worldCopyJump: true });
  map.setView([25, 0], 2);
  areaMap = { map, box: null, drawing: false };
  getJson("/api/map/config")
    .then((config) => config.tile_url && L.tileLayer(config.tile_url, { crossOrigin: false }).addTo(map))
    .catch(() => {});
  $("area-draw").addEventListener("click", startDrawing);
  $("area-bbox").addEventListener("change", () => {
    const bbox = parseBbox($("area-bbox").value);
    if (bbox) drawBox(bbox);
  });
  $("area-form").addEventListener("submit", askArea);
  $("area-date").value ||= new Date().toISOString().slice(0, 10);
  loadSources();
}

document.addEventListener("DOMContentLoaded", initArea);

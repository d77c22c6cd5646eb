// The map: each georeferenced image's footprint, its slick polygons coloured by confidence, and the list of
// slicks by area (click a row to zoom, click a polygon to find its row). Leaflet is vendored (vendor/leaflet);
// loaded before app.js, whose globals ($, job, getJson, plural, showExpired) it calls.
// Strings from the API reach the page through textContent only: tooltips and controls get DOM elements,
// never HTML strings. The basemap is drawn only when the operator set MAP_TILE_URL (GET /api/map/config).
"use strict";

const SLICKS_EVERY_MS = 3000; // while a job runs, its slicks are fetched at most this often (and at its end)
const MAX_ZOOM = 19;
// Fill colour by the slick's median model probability, from the most to the least confident.
const CONFIDENCE_BINS = [
  { min: 0.9, colour: "#7f1d1d", label: "≥ 0.90" },
  { min: 0.75, colour: "#dc2626", label: "0.75–0.90" },
  { min: 0.6, colour: "#f97316", label: "0.60–0.75" },
  { min: -Infinity, colour: "#facc15", label: "< 0.60" },
];
const FOOTPRINT_STYLE = {
  color: "#0e7490",
  weight: 1.5,
  dashArray: "5 4",
  fillColor: "#0e7490",
  fillOpacity: 0.06,
};

let mapConfig = null; // the promise of GET /api/map/config, asked once
let leaflet = null; // {map, footprints, slicks, basemap}: one Leaflet map for the page, emptied for each job

function confidenceColour(confidence) {
  return CONFIDENCE_BINS.find((bin) => (confidence ?? 0) >= bin.min).colour;
}

function formatArea(km2) {
  return km2.toFixed(km2 < 1 ? 3 : km2 < 100 ? 2 : 1);
}

function formatAcquired(iso) {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(iso || "");
  return m ? `${m[1]} ${m[2]} UTC` : iso || "—";
}

function slickStyle(feature, selected) {
  const colour = confidenceColour(feature.properties.confidence);
  return {
    className: "slick",
    color: selected ? "#0ea5e9" : colour,
    weight: selected ? 3 : 1,
    fillColor: colour,
    fillOpacity: selected ? 0.8 : 0.65,
  };
}

function textElement(tag, text, className) {
  const element = document.createElement(tag);
  element.textContent = text;
  if (className) element.className = className;
  return element;
}

// ---- The Leaflet map ---------------------------------------------------------------------------------------

function textControl(position, className, build) {
  const control = L.control({ position });
  control.onAdd = () => {
    const box = L.DomUtil.create("div", `leaflet-control map-text ${className}`);
    L.DomEvent.disableClickPropagation(box);
    build(box);
    return box;
  };
  return control;
}

function createMap() {
  const map = L.map("map", { maxZoom: MAX_ZOOM, minZoom: 1, attributionControl: false, worldCopyJump: true });
  map.createPane("footprints").style.zIndex = "410";
  map.createPane("slicks").style.zIndex = "420";
  map.setView([20, 0], 2);
  L.control.scale({ imperial: false }).addTo(map);
  textControl("topleft", "map-fit", (box) => {
    const button = textElement("button", "All images");
    button.type = "button";
    button.title = "Zoom out to every image's footprint";
    button.addEventListener("click", () => fitFootprints(job && job.map, true));
    box.append(button);
  }).addTo(map);
  const where = textControl("bottomleft", "map-cursor", () => {});
  where.addTo(map);
  map.on("mouseout", () => {
    where.getContainer().textContent = "";
  });
  map.on("mousemove", (event) => {
    const { lat, lng } = event.latlng.wrap();
    where.getContainer().textContent =
      `${Math.abs(lat).toFixed(4)}° ${lat >= 0 ? "N" : "S"}, ${Math.abs(lng).toFixed(4)}° ${lng >= 0 ? "E" : "W"}`;
  });
  // Where the map looks, for people reading the page's state (and its tests).
  map.on("moveend", () => {
    const b = map.getBounds();
    const edges = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
    $("map").dataset.bounds = edges.map((v) => v.toFixed(6)).join(",");
  });
  const moved = () => job && job.map && (job.map.userMoved = true);
  map.on("dragstart", moved);
  map.getContainer().addEventListener("wheel", moved, { passive: true });
  map.getContainer().addEventListener("dblclick", moved);
  map.zoomControl.getContainer().addEventListener("click", moved);
  leaflet = {
    map,
    footprints: L.layerGroup().addTo(map),
    slicks: L.layerGroup().addTo(map),
  };
  buildLegend();
  addBasemap();
}

async function addBasemap() {
  let config;
  try {
    config = await (mapConfig ||= getJson("/api/map/config"));
  } catch (_) {
    mapConfig = null; // ask again with the next job; without it, the map has no basemap
    return;
  }
  if (!config.tile_url || leaflet.basemap) return;
  leaflet.basemap = L.tileLayer(config.tile_url, { maxZoom: MAX_ZOOM, crossOrigin: false }).addTo(leaflet.map);
  if (config.attribution) {
    textControl("bottomright", "map-attribution", (box) => {
      box.textContent = config.attribution;
    }).addTo(leaflet.map);
  }
}

function buildLegend() {
  const items = CONFIDENCE_BINS.map((bin) => {
    const item = textElement("span", bin.label, "legend-item");
    const swatch = textElement("span", "", "swatch");
    swatch.style.background = bin.colour;
    item.prepend(swatch);
    return item;
  });
  const footprint = textElement("span", "image footprint", "legend-item");
  footprint.prepend(textElement("span", "", "swatch footprint-swatch"));
  $("map-legend").replaceChildren(textElement("span", "Confidence (median)", "legend-title"), ...items, footprint);
}

// ---- Per job -------------------------------------------------------------------------------------------------

function newMapState() {
  return {
    footprints: new Map(), // image name -> Leaflet rectangle
    notGeoreferenced: new Map(), // image name -> reason
    features: [], // the georeferenced slicks, largest first
    layers: new Map(), // feature id -> Leaflet layer
    rows: new Map(), // feature id -> table row
    selected: null,
    userMoved: false, // once the analyst pans, zooms or picks a slick, new footprints no longer refit the map
    footprintsChanged: false,
    slicksChanged: false,
    fetchedAt: 0,
    inFlight: false,
    again: false,
    final: false,
    timer: null,
    retries: 0,
  };
}

function resetMap() {
  if (job && job.map) clearTimeout(job.map.timer);
  if (leaflet) {
    leaflet.footprints.clearLayers();
    leaflet.slicks.clearLayers();
  }
  $("map-card").hidden = true;
  $("slick-rows").replaceChildren();
  $("not-georef-list").replaceChildren();
  $("map-summary").textContent = "";
  delete $("map").dataset.selected;
}

// Called by app.js with each new images listing; `final` once the job has ended.
function refreshMap(current, listing, final) {
  const state = (current.map ||= newMapState());
  for (const image of listing.images) {
    const geo = image.status === "ok" ? image.geo : null;
    if (!geo) continue;
    if (geo.georeferenced && geo.bounds && !state.footprints.has(image.name)) addFootprint(state, image.name, geo);
    if (!geo.georeferenced) state.notGeoreferenced.set(image.name, geo.reason || "");
  }
  state.final ||= final;
  render(current);
  const wait = state.fetchedAt + SLICKS_EVERY_MS - Date.now();
  clearTimeout(state.timer);
  if (final || wait <= 0) fetchSlicks(current);
  else state.timer = setTimeout(() => fetchSlicks(current), wait);
}

function addFootprint(state, name, geo) {
  const [west, south, east, north] = geo.bounds;
  const rectangle = L.rectangle(
    [
      [south, west],
      [north, east],
    ],
    { ...FOOTPRINT_STYLE, pane: "footprints", className: "footprint" },
  );
  const label = textElement("span", name);
  if (geo.acquired) label.append(textElement("span", ` · ${formatAcquired(geo.acquired)}`, "muted"));
  rectangle.bindTooltip(label, { sticky: true });
  state.footprints.set(name, rectangle);
  state.footprintsChanged = true;
}

async function fetchSlicks(current) {
  const state = current.map;
  if (state.inFlight) {
    state.again = true;
    return;
  }
  state.inFlight = true;
  state.fetchedAt = Date.now();
  const final = state.final;
  let collection = null;
  try {
    collection = await getJson(`/api/results/${current.userHash}/slicks`);
  } catch (error) {
    if (job === current && error.status === 410) showExpired();
    // Anything else: the next progress, or the job's end, asks again; after the end, a few retries.
    else if (job === current && state.final && state.retries < 3) {
      state.retries += 1;
      state.timer = setTimeout(() => fetchSlicks(current), RETRY_MS);
    }
  }
  state.inFlight = false;
  if (job !== current) return;
  if (collection) {
    state.features = (collection.features || [])
      .filter((f) => f.geometry && f.properties && f.properties.georeferenced !== false)
      .sort((a, b) => b.properties.area_km2 - a.properties.area_km2 || String(a.id).localeCompare(String(b.id)));
    for (const name of collection.not_georeferenced || []) {
      if (!state.notGeoreferenced.has(name)) state.notGeoreferenced.set(name, "");
    }
    state.slicksChanged = true;
    render(current);
  }
  if (state.again || (state.final && !final)) {
    state.again = false;
    fetchSlicks(current);
  }
}

// ---- Drawing -------------------------------------------------------------------------------------------------

function render(current) {
  const state = current.map;
  const any = state.footprints.size > 0 || state.features.length > 0;
  if (!any && state.notGeoreferenced.size === 0) return; // nothing geographic (yet): the card stays hidden
  $("map-card").hidden = false;
  $("map-layout").hidden = !any;
  $("map-none").hidden = any || !state.final;
  if (any && !leaflet) createMap();
  if (leaflet) leaflet.map.invalidateSize();
  if (state.footprintsChanged && leaflet) {
    for (const rectangle of state.footprints.values()) {
      if (!leaflet.footprints.hasLayer(rectangle)) leaflet.footprints.addLayer(rectangle);
    }
    state.footprintsChanged = false;
    if (!state.userMoved) fitFootprints(state, false);
  }
  if (state.slicksChanged && leaflet) {
    drawSlicks(state);
    state.slicksChanged = false;
  }
  renderNotGeoreferenced(state);
  const km2 = state.features.reduce((sum, f) => sum + (f.properties.area_km2 || 0), 0);
  const images = plural(state.footprints.size, "georeferenced image");
  $("map-summary").textContent = state.features.length
    ? `${plural(state.features.length, "slick")} · ${formatArea(km2)} km² · ${images}`
    : images;
}

function fitFootprints(state, animate) {
  if (!state || !leaflet) return;
  const layers = [...state.footprints.values(), ...state.layers.values()];
  if (!layers.length) return;
  const bounds = L.featureGroup(layers).getBounds();
  if (bounds.isValid()) leaflet.map.fitBounds(bounds, { padding: [24, 24], animate });
}

function drawSlicks(state) {
  leaflet.slicks.clearLayers();
  state.layers.clear();
  state.rows.clear();
  const rows = state.features.map((feature) => {
    const id = String(feature.id);
    const layer = L.geoJSON(feature, { pane: "slicks", style: () => slickStyle(feature, id === state.selected) });
    layer.bindTooltip(slickLabel(feature), { sticky: true });
    layer.on("click", () => select(state, id, false));
    leaflet.slicks.addLayer(layer);
    state.layers.set(id, layer);
    const row = slickRow(feature, id === state.selected);
    row.addEventListener("click", () => select(state, id, true));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(state, id, true);
      }
    });
    state.rows.set(id, row);
    return row;
  });
  $("slick-rows").replaceChildren(...rows);
  $("slicks-empty").hidden = rows.length > 0;
  if (state.selected && !state.layers.has(state.selected)) state.selected = null;
}

function slickLabel(feature) {
  const p = feature.properties;
  const label = textElement("span", `${p.image} · slick ${p.id}`);
  const confidence = `${(p.confidence ?? 0).toFixed(2)} (max ${(p.confidence_max ?? 0).toFixed(2)})`;
  label.append(document.createElement("br"), `${formatArea(p.area_km2)} km² · confidence ${confidence}`);
  if (p.length_km != null && p.width_km != null) {
    label.append(document.createElement("br"), `${p.length_km.toFixed(2)} × ${p.width_km.toFixed(2)} km`);
  }
  if (p.touches_nodata) {
    label.append(document.createElement("br"), "touches nodata or the image's edge: may go on beyond it");
  }
  return label;
}

function slickRow(feature, selected) {
  const p = feature.properties;
  const row = document.createElement("tr");
  row.tabIndex = 0;
  row.dataset.id = String(feature.id);
  row.classList.toggle("selected", selected);
  row.setAttribute("aria-selected", String(selected));
  const area = textElement("td", formatArea(p.area_km2), "num area");
  const confidence = textElement("td", (p.confidence ?? 0).toFixed(2), "num confidence");
  const swatch = textElement("span", "", "swatch");
  swatch.style.background = confidenceColour(p.confidence);
  confidence.prepend(swatch);
  const slick = textElement("td", "", "slick-cell");
  const name = textElement("div", "", "image");
  name.title = p.image;
  name.append(textElement("span", p.image, "image-name"), textElement("span", ` #${p.id}`, "muted"));
  const when = textElement("div", "", "when");
  when.append(textElement("span", formatAcquired(p.acquired), "acquired"));
  if (p.touches_nodata) {
    const edge = textElement("span", "at the edge", "edge");
    edge.title = "touches nodata or the image's edge: the slick may go on beyond it (its area is a lower bound)";
    when.append(edge);
  }
  slick.append(name, when);
  row.append(area, confidence, slick);
  return row;
}

function select(state, id, zoom) {
  const previous = state.selected;
  if (previous && state.layers.has(previous)) {
    state.layers.get(previous).setStyle(slickStyle(feature(state, previous), false));
    state.rows.get(previous).classList.remove("selected");
    state.rows.get(previous).setAttribute("aria-selected", "false");
  }
  const layer = state.layers.get(id);
  const row = state.rows.get(id);
  if (!layer || !row) return;
  state.selected = id;
  layer.setStyle(slickStyle(feature(state, id), true));
  layer.bringToFront();
  row.classList.add("selected");
  row.setAttribute("aria-selected", "true");
  $("map").dataset.selected = id;
  if (zoom) {
    state.userMoved = true;
    leaflet.map.fitBounds(layer.getBounds(), { padding: [48, 48], maxZoom: 17 });
  } else {
    row.scrollIntoView({ block: "nearest" });
  }
}

function feature(state, id) {
  return state.features.find((f) => String(f.id) === id);
}

function renderNotGeoreferenced(state) {
  $("not-georef").hidden = state.notGeoreferenced.size === 0;
  const names = [...state.notGeoreferenced.keys()].sort();
  $("not-georef-list").replaceChildren(
    ...names.map((name) => {
      const li = textElement("li", "");
      li.append(textElement("strong", name));
      const reason = state.notGeoreferenced.get(name);
      if (reason) li.append(textElement("span", ` · ${reason}`, "muted"));
      return li;
    }),
  );
}

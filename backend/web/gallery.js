// Gallery tiles and the full-size lightbox; loaded before app.js, whose globals ($, job, getJson) it calls.
// "Picture" shows each overlay with its red undone: the overlay PNG is the stretched picture the model saw
// in 128 grey levels, oil pixels tinted (ml/outputs.py: tinted = grey * (1 - 0.45) + red * 0.45), so the grey
// under the tint is recovered exactly here, in a canvas, with no other download and no work on the server.
"use strict";

const OVERLAY_ALPHA = 0.45; // ml/outputs.py OVERLAY_ALPHA
const SUSPECT_OIL = 0.8; // an image this much "oil" is more likely read with the wrong radiometry
const TILE_PIXELS = 1 << 20; // the picture of a tile is computed at most this large; the lightbox's:
const FULL_PIXELS = 1 << 24;

let galleryOrder = "arrival";
let showPicture = false;
const pictures = new Map(); // `${overlay_url} ${max pixels}` -> Promise of a blob: URL

function formatPercent(fraction) {
  const pct = fraction * 100;
  return `${pct < 0.01 && pct > 0 ? "<0.01" : pct.toFixed(2)} %`;
}

// The images listing, shown as tiles; returned for the map (null when it could not be read).
async function refreshGallery(current, processed) {
  let listing;
  try {
    listing = await getJson(current.imagesUrl);
  } catch (error) {
    if (job === current && error.status === 410) showExpired();
    return null; // otherwise the next poll tries again
  }
  if (job !== current) return null;
  current.seen = processed;
  let added = false;
  for (const image of listing.images) {
    if (!current.tiles.has(image.name)) {
      const tile = makeTile(image);
      tile.arrival = current.tiles.size;
      current.tiles.set(image.name, tile);
      $("gallery").append(tile);
      added = true;
    }
  }
  if (added) sortGallery();
  $("results").hidden = current.tiles.size === 0;
  return listing;
}

// ---- Order and what is shown ---------------------------------------------------------------------------------

function oilOf(tile) {
  return tile.image ? tile.image.oil_fraction || 0 : null; // failed tiles: no fraction, always last
}

function sortGallery() {
  const tiles = [...$("gallery").children];
  const byOil = (sign) => (a, b) => {
    const [x, y] = [oilOf(a), oilOf(b)];
    if (x === null || y === null) return (x === null) - (y === null) || a.arrival - b.arrival;
    return sign * (x - y) || a.arrival - b.arrival;
  };
  const orders = {
    arrival: (a, b) => a.arrival - b.arrival,
    "oil-desc": byOil(-1),
    "oil-asc": byOil(1),
    name: (a, b) => (a.dataset.name < b.dataset.name ? -1 : a.dataset.name > b.dataset.name ? 1 : 0),
  };
  tiles.sort(orders[galleryOrder] || orders.arrival);
  $("gallery").replaceChildren(...tiles);
}

// The overlay with its tint undone, at most maxPixels (sampled nearest-neighbour, so every pixel stays one
// of the palette's colours and its grey is exact).
function pictureUrl(image, maxPixels) {
  const key = `${image.overlay_url} ${maxPixels}`;
  if (!pictures.has(key)) pictures.set(key, untinted(image.overlay_url, maxPixels));
  return pictures.get(key);
}

async function untinted(url, maxPixels) {
  const source = new Image();
  source.src = await authedUrl(url); // auth.js: a blob: URL when the tab has an API key
  await source.decode();
  const scale = Math.min(1, Math.sqrt(maxPixels / (source.naturalWidth * source.naturalHeight)));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(source.naturalWidth * scale));
  canvas.height = Math.max(1, Math.round(source.naturalHeight * scale));
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingEnabled = false;
  context.drawImage(source, 0, 0, canvas.width, canvas.height);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] > data[i + 1] + 4) {
      // tinted: green = grey * (1 - alpha)
      const grey = Math.min(255, Math.round(data[i + 1] / (1 - OVERLAY_ALPHA)));
      data[i] = grey;
      data[i + 1] = grey;
      data[i + 2] = grey;
    }
  }
  context.putImageData(pixels, 0, 0);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  return URL.createObjectURL(blob);
}

async function showIn(img, image, maxPixels) {
  const what = showPicture ? "Picture" : "Overlay";
  img.alt = `${what} of ${image.name}`;
  if (!showPicture) {
    img.src = await authedUrl(image.overlay_url); // auth.js
    return;
  }
  try {
    const url = await pictureUrl(image, maxPixels);
    if (showPicture) img.src = url;
  } catch (_) {
    img.src = await authedUrl(image.overlay_url).catch(() => image.overlay_url); // the overlay rather than nothing
  }
}

function setShowPicture(picture) {
  showPicture = picture;
  $("show-overlay").setAttribute("aria-pressed", String(!picture));
  $("show-picture").setAttribute("aria-pressed", String(picture));
  for (const tile of $("gallery").children) {
    if (tile.image) showIn(tile.querySelector("img"), tile.image, TILE_PIXELS);
  }
  if ($("lightbox").open && lightboxIndex >= 0) showInLightbox(lightboxImages()[lightboxIndex]);
}

function initGalleryControls() {
  $("gallery-sort").addEventListener("change", () => {
    galleryOrder = $("gallery-sort").value;
    sortGallery();
  });
  $("show-overlay").addEventListener("click", () => setShowPicture(false));
  $("show-picture").addEventListener("click", () => setShowPicture(true));
}

function makeTile(image) {
  const figure = document.createElement("figure");
  figure.className = "tile";
  const caption = document.createElement("figcaption");
  const name = document.createElement("span");
  name.className = "tile-name";
  name.textContent = image.name;
  name.title = image.name;
  caption.append(name);
  figure.title = image.name; // the whole name on hover, however long: the caption cuts it
  figure.dataset.name = image.name;

  if (image.status !== "ok") {
    figure.classList.add("failed");
    const view = document.createElement("div");
    view.className = "tile-view";
    const title = document.createElement("span");
    title.className = "tile-error-title";
    title.textContent = "Not processed";
    const error = document.createElement("span");
    error.textContent = image.error || "failed";
    view.append(title, error);
    const meta = document.createElement("div");
    meta.className = "tile-meta";
    meta.textContent = "no mask";
    caption.append(meta);
    figure.append(view, caption);
    return figure;
  }
  const open = document.createElement("button");
  open.type = "button";
  open.className = "tile-view";
  open.setAttribute("aria-label", `Enlarge ${image.name}`);
  const img = document.createElement("img");
  img.loading = "lazy";
  showIn(img, image, TILE_PIXELS);
  open.append(img);
  open.addEventListener("click", () => openLightbox(image));

  const meta = document.createElement("div");
  meta.className = "tile-meta";
  const oil = document.createElement("span");
  const fraction = image.oil_fraction || 0;
  oil.className = `oil${fraction >= 0.05 ? " high" : fraction >= 0.005 ? " some" : ""}`;
  oil.textContent = `Oil ${formatPercent(fraction)}`;
  const size = document.createElement("span");
  size.textContent = `${image.width}×${image.height}`;
  meta.append(oil, size);
  const bar = document.createElement("div");
  bar.className = "oil-bar";
  const fill = document.createElement("span");
  fill.style.width = `${Math.min(100, fraction * 100).toFixed(2)}%`;
  bar.append(fill);
  caption.append(meta, bar);
  if (fraction >= SUSPECT_OIL) {
    figure.classList.add("suspect");
    const warning = document.createElement("p");
    warning.className = "tile-warning";
    warning.setAttribute("role", "note");
    warning.textContent =
      `${formatPercent(fraction)} oil: almost the whole image came back as oil. ` +
      "Check the input's radiometry (how its numbers are read: ML_INPUT_SCALE, see the README).";
    caption.append(warning);
  }
  figure.append(open, caption);
  figure.image = image;
  return figure;
}

let lightboxIndex = -1;

function lightboxImages() {
  // In the gallery's order, whatever it is sorted by.
  return [...$("gallery").children].filter((t) => t.image).map((t) => t.image);
}

function openLightbox(image) {
  const images = lightboxImages();
  lightboxIndex = images.findIndex((i) => i.name === image.name);
  showInLightbox(image);
  if (!$("lightbox").open) $("lightbox").showModal();
}

function showInLightbox(image) {
  showIn($("lightbox-img"), image, FULL_PIXELS);
  $("lightbox-caption").textContent =
    `${image.name} · ${image.width}×${image.height} · oil ${formatPercent(image.oil_fraction || 0)}`;
}

function stepLightbox(delta) {
  const images = lightboxImages();
  if (!images.length) return;
  lightboxIndex = (lightboxIndex + delta + images.length) % images.length;
  showInLightbox(images[lightboxIndex]);
}

function initLightbox() {
  $("lightbox-close").addEventListener("click", () => $("lightbox").close());
  $("lightbox-prev").addEventListener("click", () => stepLightbox(-1));
  $("lightbox-next").addEventListener("click", () => stepLightbox(1));
  $("lightbox").addEventListener("click", (event) => {
    if (event.target === $("lightbox")) $("lightbox").close(); // a click on the backdrop
  });
  $("lightbox").addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") stepLightbox(-1);
    if (event.key === "ArrowRight") stepLightbox(1);
  });
}

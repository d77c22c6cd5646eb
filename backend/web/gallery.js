// Gallery tiles and the full-size lightbox; loaded before app.js, whose globals ($, job, getJson) it calls.
"use strict";

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
  for (const image of listing.images) {
    if (!current.tiles.has(image.name)) {
      const tile = makeTile(image);
      current.tiles.set(image.name, tile);
      $("gallery").append(tile);
    }
  }
  $("results").hidden = current.tiles.size === 0;
  return listing;
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
  img.src = image.overlay_url;
  img.alt = `Overlay of ${image.name}`;
  img.loading = "lazy";
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
  figure.dataset.name = image.name;
  figure.append(open, caption);
  figure.image = image;
  return figure;
}

let lightboxIndex = -1;

function lightboxImages() {
  return job ? [...job.tiles.values()].filter((t) => t.image).map((t) => t.image) : [];
}

function openLightbox(image) {
  const images = lightboxImages();
  lightboxIndex = images.findIndex((i) => i.name === image.name);
  showInLightbox(image);
  if (!$("lightbox").open) $("lightbox").showModal();
}

function showInLightbox(image) {
  $("lightbox-img").src = image.overlay_url;
  $("lightbox-img").alt = `Overlay of ${image.name}`;
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

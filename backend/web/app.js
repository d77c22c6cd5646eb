// The analysts' page: upload a zip, follow the job, show overlays as they arrive, download before expiry.
// Plain scripts, no build step (gallery.js: tiles and lightbox; map.js: the map and the slick list, on the
// vendored Leaflet; link.js: the link that reopens a job). Server data goes into the page through
// textContent only: names come from users' zips.
"use strict";

const POLL_MS = 1000;
const RETRY_MS = 3000;
const ACTIVE = new Set(["queued", "searching", "fetching", "processing", "archiving"]);
const NETWORK_ERROR = "Network error: the server could not be reached. Check the connection and try again.";

const $ = (id) => document.getElementById(id);

let job = null; // the upload being followed: {jobId, userHash, statusUrl, downloadUrl, tiles, seen, ...}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// The API's own words: `detail` of its JSON errors, else the HTTP status.
function detailOf(status, body) {
  try {
    const detail = JSON.parse(body).detail;
    if (typeof detail === "string" && detail) return inWords(status, detail); // auth.js
    if (detail !== undefined) return JSON.stringify(detail);
  } catch (_) {
    /* not JSON: a proxy's error page, say */
  }
  return status ? `The server answered ${status}.` : NETWORK_ERROR;
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.text();
  if (!response.ok) {
    const error = new Error(detailOf(response.status, body));
    error.status = response.status;
    throw error;
  }
  return JSON.parse(body);
}

function setBar(bar, value, max) {
  const share = max > 0 ? Math.min(1, value / max) : 0;
  bar.setAttribute("aria-valuemax", String(max));
  bar.setAttribute("aria-valuenow", String(value));
  bar.querySelector(".bar-fill").style.width = `${(share * 100).toFixed(1)}%`;
  bar.classList.toggle("done", max > 0 && value >= max);
}

function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function formatDuration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(s).padStart(2, "0")}`;
}

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// ---- Upload -------------------------------------------------------------------------------------------------

function resetJob() {
  if (job) {
    clearTimeout(job.pollTimer);
    clearInterval(job.countdownTimer);
  }
  job = null;
  $("job").hidden = true;
  $("results").hidden = true;
  $("results").classList.remove("results-expired");
  $("gallery").replaceChildren();
  resetMap();
  $("skipped").replaceChildren();
  $("errors").replaceChildren();
  $("skipped-box").hidden = true;
  $("errors-box").hidden = true;
  $("countdown").hidden = true;
  $("countdown").classList.remove("expired");
  $("job-link-box").hidden = true;
  disableDownload();
}

function upload(file) {
  resetJob();
  clearError();
  history.replaceState(null, "", location.pathname); // the last job's link no longer describes the page
  $("upload-box").hidden = false;
  $("upload-file").textContent = `${file.name} · ${formatBytes(file.size)}`;
  setUploadProgress(0, "0 %");

  const form = new FormData();
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/upload");
  authorizeXhr(xhr); // auth.js: the tab's API key, if it has one
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) {
      const pct = Math.floor((event.loaded / event.total) * 100);
      setUploadProgress(pct, `${pct} %`);
    }
  };
  let sent = false;
  xhr.upload.onload = () => {
    sent = true;
    setUploadProgress(100, "100 % · checking images…");
  };
  xhr.onload = () => {
    showAccount(); // auth.js: what is left of the key's day after this upload
    if (xhr.status === 202) {
      setUploadProgress(100, "100 % · uploaded");
      follow(JSON.parse(xhr.responseText));
    } else {
      setUploadProgress(0, "failed");
      if (xhr.status === 401) askForKey();
      showError(detailOf(xhr.status, xhr.responseText));
    }
  };
  xhr.onerror = () => {
    setUploadProgress(0, "failed");
    // A server that refuses a too-large body answers early and closes: the browser sees only a dropped line.
    showError(sent ? NETWORK_ERROR : `${NETWORK_ERROR} If the file is very large, it may be over the upload limit.`);
  };
  xhr.send(form);
}

function setUploadProgress(pct, label) {
  setBar($("upload-progress"), pct, 100);
  $("upload-label").textContent = label;
}

// ---- Job progress -------------------------------------------------------------------------------------------

function follow(accepted) {
  job = {
    jobId: accepted.job_id,
    userHash: accepted.user_hash,
    statusUrl: accepted.status_url,
    downloadUrl: accepted.download_url,
    imagesUrl: `/api/results/${accepted.user_hash}/images`,
    timeLeftUrl: `/api/archive_time_left/${accepted.user_hash}`,
    tiles: new Map(), // image name -> its tile, in arrival order
    seen: 0, // done + failed when the gallery was last refreshed
    pollError: false,
  };
  $("job").hidden = false;
  $("job-id").textContent = job.jobId;
  showJobLink(job);
  renderStatus({ state: "queued", total: accepted.images, done: 0, failed: 0, errors: [] });
  if (accepted.skipped.length) {
    $("skipped-title").textContent = `${plural(accepted.skipped.length, "zip entry", "zip entries")} skipped`;
    $("skipped").replaceChildren(...accepted.skipped.map((s) => listItem(s.name, s.reason)));
    $("skipped-box").hidden = false;
  }
  poll(job);
}

function listItem(name, reason) {
  const li = document.createElement("li");
  const strong = document.createElement("strong");
  strong.textContent = name;
  li.append(strong, `: ${reason}`);
  return li;
}

// Each status request is a long poll of one second: the progress is refreshed every second, and the end of
// the job shows the moment it happens (the API answers as soon as the job ends).
async function poll(current) {
  let status;
  const started = Date.now();
  try {
    status = await getJson(`${current.statusUrl}?wait=${POLL_MS / 1000}`);
  } catch (error) {
    if (job !== current) return;
    // A 404 will not heal; anything else (network, 5xx) may: keep trying, and say so.
    if (error.status === 404) {
      showError(`${error.message} If you opened a link to a job, it may be mistyped, or its record is gone.`);
      return;
    }
    current.pollError = true;
    showError(`${error.status ? error.message : NETWORK_ERROR} Retrying…`);
    current.pollTimer = setTimeout(() => poll(current), RETRY_MS);
    return;
  }
  if (job !== current) return; // a newer upload replaced this one
  if (current.pollError) {
    current.pollError = false;
    clearError();
  }
  if (status.download_url !== current.downloadUrl) {
    // A link whose key is not this job's: its results cannot be shown (nor downloaded) with it.
    showError("This link's key does not belong to its job: check that the whole link was copied.");
    return;
  }
  renderStatus(status);
  // The link works the moment the state says "completed", not after the gallery has loaded.
  if (status.state === "completed") enableDownload(current.downloadUrl);
  const processed = status.done + status.failed;
  if (processed > current.seen || !ACTIVE.has(status.state)) {
    const listing = await refreshGallery(current, processed);
    if (listing && job === current) refreshMap(current, listing, !ACTIVE.has(status.state));
  }
  if (ACTIVE.has(status.state)) {
    // At most one request a second, even from a server that answers at once.
    current.pollTimer = setTimeout(() => poll(current), Math.max(0, POLL_MS - (Date.now() - started)));
  } else if (status.state === "completed") {
    startCountdown(current);
  } else if (status.state === "failed") {
    const reason = status.area && status.area.reason; // an area job that failed as a whole says why
    showError(reason || "No image could be segmented, so there is nothing to download. The errors are listed below.");
  } else if (status.state === "expired") {
    showExpired();
  }
}

function renderStatus(status) {
  const processed = status.done + status.failed;
  $("job-state").textContent = status.state;
  $("job-state").className = `badge ${status.state}`;
  $("job-label").textContent = status.area ? areaLabel(status) : `${processed} of ${plural(status.total, "image")}`;
  $("job-failed").textContent = status.failed ? `${status.failed} failed` : "";
  setBar($("job-progress"), processed, status.total);
  if (status.errors.length) {
    $("errors-title").textContent = `${plural(status.errors.length, "image")} could not be processed`;
    $("errors").replaceChildren(...status.errors.map((e) => listItem(e.name, e.error)));
    $("errors-box").hidden = false;
  }
}

// ---- Download and expiry ------------------------------------------------------------------------------------

function enableDownload(url) {
  $("download").href = url;
  $("download").setAttribute("aria-disabled", "false");
}

function disableDownload() {
  $("download").removeAttribute("href");
  $("download").setAttribute("aria-disabled", "true");
}

async function startCountdown(current) {
  let left;
  try {
    left = await getJson(current.timeLeftUrl);
  } catch (error) {
    if (job !== current) return;
    if (error.status === 410) showExpired();
    else showError(error.message);
    return;
  }
  if (job !== current) return;
  // Count against this browser's monotonic clock: immune to a wrong wall clock on either side.
  const deadline = performance.now() + left.seconds_left * 1000;
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((deadline - performance.now()) / 1000));
    if (seconds === 0) {
      showExpired();
      return;
    }
    $("countdown").textContent = `Archive deleted in ${formatDuration(seconds)}`;
  };
  $("countdown").hidden = false;
  tick();
  current.countdownTimer = setInterval(tick, 250);
}

function showExpired() {
  if (job) clearInterval(job.countdownTimer);
  disableDownload();
  $("countdown").hidden = false;
  $("countdown").classList.add("expired");
  $("countdown").textContent = "Expired: the results were deleted. Upload the images again.";
  $("job-state").textContent = "expired";
  $("job-state").className = "badge expired";
  $("results").classList.add("results-expired");
}

// ---- Wiring -------------------------------------------------------------------------------------------------

function init() {
  const zone = $("dropzone");
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) upload(file);
    $("file").value = ""; // choosing the same file again uploads again
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragover");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragover"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) upload(file);
  });
  // A file dropped beside the zone must not make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  $("job-link-copy").addEventListener("click", copyJobLink);
  window.addEventListener("hashchange", restoreFromLink); // a pasted link while the page is open
  initLightbox();
  initGalleryControls();
  restoreFromLink();
}

init();

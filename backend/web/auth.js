// Accounts on the page (AUTH_MODE api-key or oidc): on the API's first 401 the page asks for a key (or
// token), keeps it in sessionStorage (this tab only; gone when it closes, never in localStorage or a cookie)
// and sends it as `Authorization: Bearer` with every request to /api/. An <img> or a link cannot send a
// header, so with a key the overlays and the archive come through fetch, as blob: URLs. The API's 401, 403
// and 429 are put in words. Loaded first: the other scripts' fetch calls go through the wrapper below.
"use strict";

const KEY_ITEM = "oilspill.apiKey";

function apiKey() {
  try {
    return sessionStorage.getItem(KEY_ITEM) || "";
  } catch (_) {
    return ""; // storage disabled: no key, the API says so
  }
}

function isApi(url) {
  const where = new URL(url, location.href);
  return where.origin === location.origin && where.pathname.startsWith("/api/");
}

const plainFetch = window.fetch.bind(window);
window.fetch = async (input, init = {}) => {
  const url = typeof input === "string" ? input : input.url;
  const key = apiKey();
  if (key && isApi(url)) {
    const headers = new Headers(init.headers || {});
    headers.set("Authorization", `Bearer ${key}`);
    init = { ...init, headers };
  }
  const response = await plainFetch(input, init);
  if (response.status === 401 && isApi(url)) askForKey();
  return response;
};

function authorizeXhr(xhr) {
  const key = apiKey();
  if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
}

// An API URL an <img> can show: itself without a key, else a blob: URL of it fetched with the key.
const blobUrls = new Map();
function authedUrl(url) {
  if (!apiKey() || !isApi(url)) return Promise.resolve(url);
  if (!blobUrls.has(url)) {
    const made = fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return URL.createObjectURL(await response.blob());
    });
    made.catch(() => blobUrls.delete(url)); // asked again next time
    blobUrls.set(url, made);
  }
  return blobUrls.get(url);
}

// The API's `detail`, with what the status means for the person at the page.
function inWords(status, detail) {
  if (status === 401) return `Access refused: ${detail} Enter a valid API key above.`;
  if (status === 403) return `Not allowed with this key: ${detail}`;
  if (status === 429) return `Over a limit of this service: ${detail}`;
  return detail;
}

function askForKey() {
  $("auth-box").hidden = false;
  $("auth-forget").hidden = !apiKey();
  $("auth-message").textContent = apiKey()
    ? "The API refused this key (unknown, revoked or expired). Enter another one."
    : "This service needs an API key (or a sign-in token). It is kept for this tab only.";
}

function saveKey(event) {
  event.preventDefault();
  const key = $("auth-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_ITEM, key);
  location.reload(); // the job in the page's link, if any, is followed again with the key
}

function forgetKey() {
  sessionStorage.removeItem(KEY_ITEM);
  location.reload();
}

// The download link, with a key: fetched with it and handed to the browser as a file.
async function downloadWithKey(event) {
  const link = event.target.closest ? event.target.closest("#download") : null;
  if (!link || !apiKey() || !link.getAttribute("href")) return;
  event.preventDefault();
  const response = await fetch(link.getAttribute("href"));
  if (!response.ok) {
    showError(detailOf(response.status, await response.text()));
    return;
  }
  const named = /filename="?([^";]+)"?/.exec(response.headers.get("content-disposition") || "");
  const save = document.createElement("a");
  save.href = URL.createObjectURL(await response.blob());
  save.download = named ? named[1] : "oilspill-results.zip";
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(save.href), 60_000);
}

// Who the key stands for and what is left of its day (GET /api/account), so a 429 can be seen coming.
async function showAccount() {
  const line = $("account-line");
  if (!apiKey()) return;
  const response = await fetch("/api/account");
  if (!response.ok) return; // a 401 has opened the key form already
  const account = await response.json();
  if (!account.auth) return;
  const { quotas, remaining } = account;
  const mb = Math.floor(remaining.mb_today).toLocaleString("en");
  line.textContent =
    `Signed in as ${account.owner} (${account.via === "oidc" ? "token" : "API key"}). ` +
    `Left today: ${remaining.images_today} of ${quotas.images_per_day} images, ${mb} MB; ` +
    `${remaining.jobs_in_flight} of ${quotas.jobs_in_flight} jobs at once; largest upload ${quotas.max_upload_mb} MB.`;
  line.hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  showAccount();
  $("auth-box").addEventListener("submit", saveKey);
  $("auth-forget").addEventListener("click", forgetKey);
  document.addEventListener("click", downloadWithKey);
  if (apiKey()) $("auth-forget").hidden = false;
});

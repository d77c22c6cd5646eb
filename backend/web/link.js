// The job's link, /#job=<id>&key=<user_hash>: a fragment, so the server never sees it in a request line or a
// log. Shown with a copy button; opening it (or reloading the page) follows that job again. Loaded before
// app.js, whose globals ($, job, follow, resetJob, showError, clearError) it calls.
"use strict";

const TOKEN = /^[0-9a-f]{32}$/;

function jobLink(current) {
  return `${location.origin}/#job=${current.jobId}&key=${current.userHash}`;
}

function showJobLink(current) {
  // The page's own address becomes the link, so a reload reopens the job too.
  history.replaceState(null, "", `#job=${current.jobId}&key=${current.userHash}`);
  $("job-link").value = jobLink(current);
  $("job-link-copy").textContent = "Copy link";
  $("job-link-box").hidden = false;
}

async function copyJobLink() {
  const link = $("job-link");
  try {
    await navigator.clipboard.writeText(link.value);
  } catch (_) {
    link.select(); // no clipboard access (plain http on another host): selected, for Ctrl-C
    if (!document.execCommand("copy")) {
      $("job-link-copy").textContent = "Press Ctrl-C";
      return;
    }
  }
  $("job-link-copy").textContent = "Copied";
}

// The job named by the page's fragment, if it names one: followed as if just uploaded.
function restoreFromLink() {
  const params = new URLSearchParams(location.hash.slice(1));
  const jobId = params.get("job") || "";
  const key = params.get("key") || "";
  if (!jobId && !key) return;
  if (!TOKEN.test(jobId) || !TOKEN.test(key)) {
    showError("This link is incomplete: it should end in #job=<32 hex digits>&key=<32 hex digits>.");
    return;
  }
  if (job && job.jobId === jobId && job.userHash === key) return;
  resetJob();
  clearError();
  follow({
    job_id: jobId,
    user_hash: key,
    status_url: `/api/status/${jobId}`,
    download_url: `/api/download/${key}`,
    images: 0,
    skipped: [], // said once, at the upload; not kept by the server
  });
}


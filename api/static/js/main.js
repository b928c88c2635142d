// Entry point: sign-in, then the portfolio (#/) or one site (#/site/<id>).

import { apiKey, setApiKey, signOut, takeRefusal } from "./api.js";
import { createMap } from "./map.js";
import { fitAll, loadPortfolio, refreshAlerts, siteBounds } from "./portfolio.js";
import { closeSite, openSite, wireSiteControls } from "./site.js";

const $ = (sel) => document.querySelector(sel);

function showSignIn() {
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = takeRefusal() || "";
  $("#api-key").focus();
  $("#signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("#api-key").value.trim();
    if (!key) return;
    setApiKey(key);
    $("#api-key").value = "";
    start().catch(report);
  });
}

async function start() {
  $("#signin").hidden = true;
  const map = createMap($("#map"));
  const openFromUi = (siteId) => {
    window.location.hash = `#/site/${encodeURIComponent(siteId)}`;
  };
  const route = async () => {
    const match = window.location.hash.match(/^#\/site\/(.+)$/);
    if (match) {
      const siteId = decodeURIComponent(match[1]);
      $("#portfolio").hidden = true;
      $("#site").hidden = false;
      delete $("#site").dataset.loaded;
      await openSite(map, siteId, { bounds: siteBounds(siteId), onAlertsChanged: refreshAlerts });
      $("#site-title").focus?.();
    } else {
      closeSite(map);
      $("#site").hidden = true;
      $("#portfolio").hidden = false;
      fitAll(map);
    }
  };
  wireSiteControls(map);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#sign-out").hidden = false;
  $("#app").hidden = false;
  map.invalidateSize();
  const portfolio = loadPortfolio(map, openFromUi);
  window.addEventListener("hashchange", () => route().catch(report));
  await portfolio.then(() => {}, report);
  document.body.dataset.ready = "true";
  if (window.location.hash.startsWith("#/site/")) await route();
}

function report(err) {
  if (err && (err.status === 401 || err.status === 403)) return; // signOut() is already reloading
  const status = $("#portfolio").hidden ? $("#alerts-status") : $("#portfolio-status");
  status.textContent = `Something went wrong: ${err?.message || err}`;
  console.error(err);
}

if (apiKey()) start().catch(report);
else showSignIn();

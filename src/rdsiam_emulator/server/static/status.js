// The status page: instances and principals from /_rdsiam/status.json (every 5 s), auth events
// from /_rdsiam/events?since=SEQ (every second, only the new ones). Every value is put in the
// DOM as text (textContent), never as HTML: names come from users and clients.
"use strict";

const STATUS_URL = "/_rdsiam/status.json";
const EVENTS_URL = "/_rdsiam/events";
const MAX_ROWS = 200;
let lastSeq = 0;
let lastStatus = "";
const chosen = {};  // instance id -> {user, key}: the snippet tab the reader picked

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function copyButton(text) {
  const button = el("button", { class: "copy", type: "button" }, "copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "copied";
    } catch (err) {
      button.textContent = "select and copy";
    }
    setTimeout(() => { button.textContent = "copy"; }, 1500);
  });
  return button;
}

function renderSnippets(instance) {
  const box = el("div", { class: "snippets" });
  const users = Object.keys(instance.snippets);
  if (users.length === 0) return box;
  const pick = chosen[instance.id] || (chosen[instance.id] = { user: users[0], key: null });
  if (!users.includes(pick.user)) pick.user = users[0];
  const select = el("select", { "aria-label": "DB user" });
  for (const user of users) {
    const option = el("option", { value: user }, user);
    if (user === pick.user) option.selected = true;
    select.append(option);
  }
  const tabs = el("div", { class: "tabs", role: "tablist" });
  const body = el("div", { class: "snippet" });
  const show = () => {
    const list = instance.snippets[pick.user];
    const current = list.find((s) => s.key === pick.key) || list[0];
    pick.key = current.key;
    tabs.replaceChildren(...list.map((s) => {
      const b = el("button", { type: "button", role: "tab", "data-key": s.key,
                               "aria-selected": String(s.key === current.key) }, s.title);
      b.addEventListener("click", () => { pick.key = s.key; show(); });
      return b;
    }));
    body.replaceChildren(el("pre", { "data-snippet": current.key }, current.code),
                         copyButton(current.code));
  };
  select.addEventListener("change", () => { pick.user = select.value; show(); });
  show();
  box.append(el("p", {}, "Connect as ", select, " (save as the named file; AWS credentials ",
                "from the usual chain):"), tabs, body);
  return box;
}

function renderInstances(instances, pending) {
  const box = document.getElementById("instances");
  const waiting = pending.map((p) => el("div", { class: "card instance", "data-instance": p.id },
    el("h3", {}, p.id), el("p", { class: p.state === "failed" ? "off" : "muted" },
      p.state, p.error ? `: ${p.error}` : "")));
  if (instances.length === 0 && waiting.length === 0) {
    box.replaceChildren(el("p", { class: "muted" }, "no instances"));
    return;
  }
  box.replaceChildren(...instances.map((i) => {
    const dl = el("dl", {},
      el("dt", {}, "engine"), el("dd", {}, `${i.engine} ${i.engine_version || ""}`.trim()),
      el("dt", {}, "endpoint"), el("dd", { class: "endpoint" }, i.host),
      el("dt", {}, "port"), el("dd", { class: "port" }, i.port),
      el("dt", {}, "listens on"), el("dd", {}, i.address || i.host),
      el("dt", {}, "region"), el("dd", {}, i.region),
      el("dt", {}, "resource id"), el("dd", { class: "resource-id" }, i.resource_id),
      el("dt", {}, "IAM auth"),
      el("dd", { class: i.iam_enabled ? "on" : "off" }, i.iam_enabled ? "on" : "off"),
      el("dt", {}, "database"), el("dd", {}, i.dbname || "-"));
    const card = el("div", { class: "card instance", "data-instance": i.id },
      el("h3", {}, i.id), dl);
    if (i.hosts_line) {
      card.append(el("p", { class: "muted" },
        "If the endpoint name does not resolve on this machine, add to /etc/hosts: ",
        el("code", {}, i.hosts_line)));
    }
    card.append(renderSnippets(i));
    return card;
  }), ...waiting);
}

function renderClusters(clusters) {
  const box = document.getElementById("clusters");
  if (!clusters || clusters.length === 0) {
    box.replaceChildren(el("p", { class: "muted" }, "no clusters"));
    return;
  }
  box.replaceChildren(...clusters.map((c) => {
    const members = el("ul", { class: "members" }, ...(c.members || []).map((m) =>
      el("li", { "data-member": m.id }, `${m.id} (${m.is_writer ? "writer" : "reader"}): `,
        el("code", {}, m.host))));
    const dl = el("dl", {},
      el("dt", {}, "engine"), el("dd", {}, `${c.engine} ${c.version || ""}`.trim()),
      el("dt", {}, "state"), el("dd", { class: c.state === "failed" ? "off" : "state" },
        c.state, c.error ? `: ${c.error}` : ""),
      el("dt", {}, "cluster endpoint"), el("dd", { class: "endpoint" }, c.host || "-"),
      el("dt", {}, "reader endpoint"), el("dd", { class: "reader-endpoint" }, c.reader_host || "-"),
      el("dt", {}, "port"), el("dd", { class: "port" }, c.port === null ? "-" : c.port),
      el("dt", {}, "resource id"), el("dd", { class: "resource-id" }, c.resource_id || "-"),
      el("dt", {}, "IAM auth"),
      el("dd", { class: c.iam_enabled ? "on" : "off" }, c.iam_enabled ? "on" : "off"),
      el("dt", {}, "members"), el("dd", {}, members));
    return el("div", { class: "card cluster", "data-cluster": c.id }, el("h3", {}, c.id), dl);
  }));
}

function renderProxies(proxies) {
  const box = document.getElementById("proxies");
  if (!proxies || proxies.length === 0) {
    box.replaceChildren(el("p", { class: "muted" }, "no proxies"));
    return;
  }
  box.replaceChildren(...proxies.map((p) => el("div", { class: "card proxy", "data-proxy": p.name },
    el("h3", {}, p.name),
    el("dl", {},
      el("dt", {}, "target"), el("dd", {}, p.target),
      el("dt", {}, "endpoint"), el("dd", { class: "endpoint" }, p.host),
      el("dt", {}, "port"), el("dd", { class: "port" }, p.port),
      el("dt", {}, "resource id"), el("dd", { class: "resource-id" }, p.resource_id),
      el("dt", {}, "TLS required"), el("dd", {}, p.require_tls ? "yes" : "no"),
      el("dt", {}, "default auth scheme"), el("dd", {}, p.default_auth_scheme)))));
}

function renderPrincipals(principals, error) {
  const box = document.getElementById("principals");
  if (error) {
    box.replaceChildren(el("p", { class: "off" }, error));
    return;
  }
  if (principals.length === 0) {
    box.replaceChildren(el("p", { class: "muted" }, "no IAM users or roles yet"));
    return;
  }
  const rows = principals.map((p) => {
    const grants = p.grants.length === 0 ? el("span", { class: "muted" }, "nothing")
      : el("ul", {}, ...p.grants.map((g) => el("li", {},
          g.db_user === "*" ? `${g.instance_id}: any DB user` : `${g.instance_id}: ${g.db_user}`,
          g.excluded.length ? ` (except ${g.excluded.join(", ")})` : "")));
    const notes = p.notes.length ? el("div", { class: "muted" }, p.notes.join("; ")) : null;
    return el("tr", { "data-principal": p.arn }, el("td", {}, p.kind), el("td", {}, p.name),
      el("td", { class: "arn" }, p.arn), el("td", {}, grants, notes));
  });
  box.replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "kind"), el("th", {}, "name"),
                       el("th", {}, "ARN"), el("th", {}, "may connect to"))),
    el("tbody", {}, ...rows)));
}

function eventRow(e) {
  const reason = e.reason ? `${e.reason}${e.rds_error_code ? ` [${e.rds_error_code}]` : ""}` : "";
  const detail = el("td", { class: "detail" }, e.detail || "");
  if (e.hint) detail.append(el("div", { class: "hint" }, "hint: ", e.hint));
  return el("tr", { class: `${e.outcome} fresh`, "data-seq": e.seq },
    el("td", {}, (e.time || "").replace("T", " ").slice(0, 19)),
    el("td", {}, e.instance_id), el("td", { class: "db-user" }, e.db_user),
    el("td", { class: "outcome" }, `${e.outcome} (${e.method})`),
    el("td", { class: "reason" }, reason), detail,
    el("td", { class: "arn" }, e.principal_arn || e.access_key_id || ""));
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.classList.toggle("down", !ok);
}

async function pollStatus() {
  try {
    const response = await fetch(STATUS_URL, { cache: "no-store" });
    if (!response.ok) throw new Error(`status ${response.status}`);
    const text = await response.text();
    if (text !== lastStatus) {
      lastStatus = text;
      const data = JSON.parse(text);
      renderInstances(data.instances, data.pending);
      renderClusters(data.clusters);
      renderProxies(data.proxies);
      renderPrincipals(data.principals, data.principals_error);
    }
  } catch (err) {
    setLive(false, `status unavailable: ${err.message}`);
  }
}

async function pollEvents() {
  try {
    const response = await fetch(`${EVENTS_URL}?since=${lastSeq}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`events ${response.status}`);
    const data = await response.json();
    const body = document.querySelector("#events tbody");
    for (const e of data.events) {  // oldest first: each new one goes on top
      body.prepend(eventRow(e));
    }
    lastSeq = data.cursor;  // the log's position when answered: ask only for newer ones
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    document.getElementById("no-events").hidden = body.rows.length > 0;
    setLive(true, `live · ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    setLive(false, `events unavailable: ${err.message}`);
  }
}

async function loop(poll, everyMs) {
  await poll();
  setTimeout(() => loop(poll, everyMs), everyMs);
}

loop(pollStatus, 5000);
loop(pollEvents, 1000);

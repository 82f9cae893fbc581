/* lotledger trace page: draws the server-laid-out graph with Cytoscape.js (preset positions:
 * no layout runs in the browser), filters it by hops and node type, and opens the records
 * behind a node (re-centering the trace on a lot, with a history entry, so that back, reload,
 * bookmarks and shared links show that lot). performance marks "graph-painted" and
 * "graph-interactive" are what bench/web.py reads.
 *
 * Readable first: text is FONT model units and the first view never shows it smaller than
 * MIN_TEXT pixels (if the whole trace does not fit at that size, the view centres on the
 * searched lot and the rest is a pan away; "Fit to view" shows everything). An alert is a red
 * ring outside the box and the searched lot a blue halo outside that, so neither hides the other. */
"use strict";

(() => {
  const QC_COLORS = { PASS: "#2e7d32", FAIL: "#c62828", HOLD: "#ef8f00", NONE: "#78909c" };
  const TABLE_PAGE = 300;
  const container = document.getElementById("graph");
  const panel = document.getElementById("panel");
  let cy = null;
  let graph = JSON.parse(document.getElementById("graph-data").textContent);
  let byId = new Map();

  const FONT = 13; // model units; the boxes below are sized for three lines of it
  const MIN_TEXT = 11; // pixels, at the first view
  const BOX = 160; // box width; web/graph.py's COLUMN_WIDTH leaves 100 for a quantity between boxes
  // One line of a box: past CLIP characters the text is cut (the panel and table have it all).
  const CLIP = 20;
  const clip = (text) => (text.length > CLIP ? `${text.slice(0, CLIP - 1)}\u2026` : text);

  function label(n) {
    if (n.kind === "lot") {
      const lines = [clip(n.product || n.lot), clip(`${n.label} \u00b7 QC ${n.qc}`)];
      if (n.expiry) lines.push(`exp ${n.expiry}`);
      return lines.join("\n");
    }
    if (n.kind === "shipment") {
      // An id scoped by its sender ("dist-north/SH-7001") reads as the id over the sender.
      const [id, owner] = n.label.includes("/") ? [n.label.slice(n.label.indexOf("/") + 1), n.label.split("/")[0]] : [n.label, ""];
      return [clip(`${id}${n.received === false ? " (open)" : ""}`), owner && clip(owner)].filter(Boolean).join("\n");
    }
    return n.label.length > 2 * CLIP ? `${n.label.slice(0, 2 * CLIP - 1)}\u2026` : n.label;
  }

  const STYLE = [
    { selector: "node", style: {
      label: "data(text)", "text-wrap": "wrap", "text-max-width": BOX - 14, "font-size": FONT, "line-height": 1.2,
      "text-valign": "center", "text-halign": "center", "min-zoomed-font-size": 7, color: "#102027",
      "background-color": "#eceff1", "border-width": 1, "border-color": "#90a4ae", width: BOX, height: 64,
      shape: "round-rectangle" } },
    { selector: "node[kind = 'lot']", style: { "background-color": "data(color)", color: "#fff", "text-outline-width": 0 } },
    { selector: "node[kind = 'shipment']", style: { shape: "tag", "background-color": "#e3f2fd", "border-color": "#1565c0", "text-max-width": BOX - 24, height: 50 } },
    { selector: "node[kind = 'shipment'][?open]", style: { "border-width": 3, "border-style": "dashed" } },
    { selector: "node[kind = 'supplier'], node[kind = 'customer']", style: { shape: "barrel", height: 50, "background-color": "#fff8e1", "border-color": "#8d6e63" } },
    // An alert is a red ring just outside the box (a QC FAIL box is red itself), and the searched
    // lot a blue halo outside that: the two never hide each other (MK-201 has both).
    { selector: "node[?alerted]", style: { "outline-width": 4, "outline-color": "#d50000", "outline-offset": 2, "outline-opacity": 1 } },
    { selector: "node.center", style: {
      "underlay-color": "#0d47a1", "underlay-padding": 11, "underlay-opacity": 1, "underlay-shape": "round-rectangle",
      "font-weight": "bold" } },
    { selector: "node:selected", style: { "overlay-color": "#0d47a1", "overlay-opacity": 0.25, "overlay-padding": 6 } },
    { selector: "edge", style: {
      width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": "#90a4ae",
      "target-arrow-color": "#90a4ae", label: "data(quantity)", "font-size": FONT, "min-zoomed-font-size": 7,
      "text-wrap": "wrap", "text-max-width": 64, "text-background-color": "#fafafa", "text-background-opacity": 1,
      "text-background-padding": 1, color: "#263238" } },
    // A flow that skips layers goes through the points the server kept free for it.
    { selector: "edge[?bent]", style: {
      "curve-style": "segments", "segment-distances": "data(distances)", "segment-weights": "data(weights)",
      "edge-distances": "node-position" } },
    { selector: "edge[kind = 'in transit']", style: { "line-style": "dashed", "line-color": "#1565c0" } },
  ];
  // Past this many nodes: straight edges without arrows or labels (quantities are in the panel),
  // textures while panning. What keeps a 10,000-node trace usable.
  const BIG = 400;
  // Past this many, a plain picture of the layout is painted while Cytoscape sets up.
  const PREVIEW = 50;
  const BIG_STYLE = [
    { selector: "edge", style: { "curve-style": "haystack", "haystack-radius": 0, label: "", "target-arrow-shape": "none" } },
  ];

  function elements(g) {
    const out = [];
    for (const n of g.nodes) {
      out.push({
        group: "nodes",
        data: {
          id: n.id, kind: n.kind, text: label(n), col: n.col, color: QC_COLORS[n.qc] || QC_COLORS.NONE,
          alerted: !!(n.alerts && n.alerts.length), open: n.kind === "shipment" && n.received === false,
        },
        position: { x: n.x, y: n.y },
        classes: n.kind === "lot" && n.lot === g.center ? "center" : "",
      });
    }
    const at = new Map(g.nodes.map((n) => [n.id, n]));
    for (const e of g.edges) {
      const data = { id: e.id, source: e.source, target: e.target, kind: e.kind, quantity: e.quantity };
      if (e.bends && e.bends.length) Object.assign(data, { bent: true }, segments(at.get(e.source), at.get(e.target), e.bends));
      out.push({ group: "edges", data });
    }
    return out;
  }

  /* Cytoscape's segments are (distance, weight) pairs relative to the line between the two
   * node centres: weight along it (0 at the source, 1 at the target), distance across it. */
  function segments(a, b, points) {
    const dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy || 1, len = Math.sqrt(len2);
    const weights = [], distances = [];
    for (const p of points) {
      weights.push(((p.x - a.x) * dx + (p.y - a.y) * dy) / len2);
      distances.push(((p.y - a.y) * dx - (p.x - a.x) * dy) / len);
    }
    return { weights, distances };
  }

  /* A graph of more than PREVIEW nodes is first drawn as a plain canvas picture of the same
   * positions and colors (milliseconds for ten thousand nodes); then Cytoscape, which takes a
   * while to set up that many elements, replaces it with the interactive graph. */
  function preview(g) {
    if (!g.nodes.length) return null;
    const canvas = document.createElement("canvas");
    canvas.className = "preview";
    canvas.setAttribute("aria-hidden", "true");
    const width = (canvas.width = container.clientWidth), height = (canvas.height = container.clientHeight);
    const xs = g.nodes.map((n) => n.x), ys = g.nodes.map((n) => n.y);
    const [x0, x1, y0, y1] = [Math.min(...xs) - 110, Math.max(...xs) + 110, Math.min(...ys) - 30, Math.max(...ys) + 30];
    const scale = Math.min((width - 60) / (x1 - x0), (height - 60) / (y1 - y0), 1);
    const px = (x) => width / 2 + (x - (x0 + x1) / 2) * scale, py = (y) => height / 2 + (y - (y0 + y1) / 2) * scale;
    const ctx = canvas.getContext("2d");
    const at = new Map(g.nodes.map((n) => [n.id, n]));
    ctx.strokeStyle = "#b0bec5";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const e of g.edges) {
      const a = at.get(e.source), b = at.get(e.target);
      ctx.moveTo(px(a.x), py(a.y));
      ctx.lineTo(px(b.x), py(b.y));
    }
    ctx.stroke();
    for (const n of g.nodes) {
      const w = BOX * scale, h = 50 * scale;
      ctx.fillStyle = n.kind === "lot" ? QC_COLORS[n.qc] || QC_COLORS.NONE : n.kind === "shipment" ? "#90caf9" : "#ffe0b2";
      ctx.fillRect(px(n.x) - w / 2, py(n.y) - h / 2, w, h);
      if (n.alert_count) {
        ctx.strokeStyle = "#d50000";
        ctx.strokeRect(px(n.x) - w / 2, py(n.y) - h / 2, w, h);
      }
    }
    container.append(canvas);
    return canvas;
  }

  const afterPaint = (fn) => requestAnimationFrame(() => setTimeout(fn, 0));

  /* Which part of the trace is drawn: the hop limit and node types of the controls. A trace of
   * more than CAP nodes opens collapsed to the most hops that fit; "Show hops" opens the rest. */
  const CAP = 2500;

  function collapseFor(g) {
    if (g.nodes.length <= CAP) return;
    const select = document.getElementById("depth");
    let best = "1";
    for (const option of select.options) {
      const d = Number(option.value);
      if (d > 0 && g.nodes.filter((n) => Math.abs(n.col) <= d).length <= CAP && d > Number(best)) best = option.value;
    }
    select.value = best;
  }

  function visible(g) {
    const depth = Number(document.getElementById("depth").value);
    const kinds = new Set(Array.from(document.querySelectorAll("input[name=kind]:checked"), (i) => i.value));
    const nodes = g.nodes.filter((n) => kinds.has(n.kind) && (depth === 0 || Math.abs(n.col) <= depth));
    const ids = new Set(nodes.map((n) => n.id));
    return { center: g.center, nodes, edges: g.edges.filter((e) => ids.has(e.source) && ids.has(e.target)) };
  }

  function draw(g) {
    byId = new Map(g.nodes.map((n) => [n.id, n]));
    document.getElementById("depth").value = "0";
    collapseFor(g);
    render();
    table(g);
    document.getElementById("center-lot").textContent = g.center;
    document.getElementById("recall-link").href = `/recall?lot=${encodeURIComponent(g.center)}`;
    container.setAttribute("aria-label", `Trace graph of ${g.center}; the same nodes are listed in the table below`);
  }

  let generation = 0;

  function render() {
    const gen = ++generation;
    const shown = visible(graph);
    const big = shown.nodes.length > BIG;
    if (cy) cy.destroy();
    cy = null;
    container.querySelectorAll("canvas.preview").forEach((c) => c.remove());
    const picture = shown.nodes.length > PREVIEW ? preview(shown) : null;
    if (picture) afterPaint(() => performance.mark("graph-painted"));
    const build = () => {
      if (gen !== generation) return; // the controls changed while the picture was showing
      cy = cytoscape({
        container, elements: elements(shown), style: big ? STYLE.concat(BIG_STYLE) : STYLE, layout: { name: "preset" },
        minZoom: 0.02, maxZoom: 3, boxSelectionEnabled: false, autoungrabify: true,
        textureOnViewport: big, hideEdgesOnViewport: big, pixelRatio: big ? 1 : "auto",
      });
      cy.one("render", () => {
        if (picture) picture.remove();
        else performance.mark("graph-painted");
        afterPaint(() => performance.mark("graph-interactive"));
      });
      cy.on("tap", "node", (event) => select(event.target.id(), true));
      firstView(big);
      window.lotledgerGraph = cy;
    };
    if (picture) afterPaint(build); // let the picture reach the screen first
    else build();
    const all = graph.nodes.length;
    document.getElementById("graph-summary").textContent =
      `${all} nodes, ${graph.edges.length} flows` + (shown.nodes.length < all ? `; ${shown.nodes.length} shown (see "Show hops" and the type filters)` : "");
  }

  function fit() {
    cy.fit(undefined, 24);
  }

  /* The whole trace if its text is then at least MIN_TEXT pixels (and no bigger than 1.4
   * times its size); else MIN_TEXT, centred on the searched lot. A trace of more than BIG
   * nodes shows no labels, so it is simply fitted. */
  function firstView(big) {
    fit();
    if (big) return;
    const readable = MIN_TEXT / FONT, largest = 1.4;
    if (cy.zoom() >= readable && cy.zoom() <= largest) return;
    const centre = cy.nodes(".center");
    cy.zoom(Math.min(Math.max(cy.zoom(), readable), largest));
    cy.center(centre.length ? centre : undefined);
  }

  function table(g) {
    const body = document.querySelector("#node-table tbody");
    const rows = g.nodes.slice().sort((a, b) => Math.abs(a.col) - Math.abs(b.col) || a.col - b.col);
    const shown = rows.slice(0, TABLE_PAGE);
    body.replaceChildren(...shown.map((n) => {
      const tr = document.createElement("tr");
      const cell = (text) => { const td = document.createElement("td"); td.textContent = text; return td; };
      const open = document.createElement("button");
      open.type = "button";
      open.className = "link";
      open.textContent = n.lot || n.label;
      open.addEventListener("click", () => select(n.id, true));
      const name = document.createElement("td");
      name.append(open);
      const alerts = cell((n.alerts || []).map((a) => a.rule).join(", "));
      if (n.alerts && n.alerts.length) tr.className = "alerted";
      tr.append(cell(n.col), cell(n.kind), name, cell(n.product || ""), cell(n.qc || ""), cell(n.expiry || ""), alerts);
      return tr;
    }));
    const more = document.getElementById("table-more");
    more.hidden = rows.length <= TABLE_PAGE;
    more.textContent = `The first ${TABLE_PAGE} of ${rows.length} nodes, nearest first; narrow the graph with "Show hops".`;
  }

  function text(tag, content, cls) {
    const el = document.createElement(tag);
    el.textContent = content;
    if (cls) el.className = cls;
    return el;
  }

  async function recordRow(seq) {
    const li = document.createElement("li");
    li.className = "record-row";
    const button = text("button", "Verify", "verify");
    button.type = "button";
    button.dataset.seq = seq;
    try {
      const response = await fetch(`/api/entry/${seq}`);
      const e = await response.json();
      if (!response.ok) throw new Error(e.error || response.status);
      const link = document.createElement("a");
      link.href = `/record/${seq}`;
      link.textContent = `#${seq} ${e.kind.replaceAll("_", " ")}`;
      li.append(link, text("span", ` signed by ${e.submitter} at ${e.created_at}`, "muted"));
      Object.assign(button.dataset, { recordId: e.record_id, submitter: e.submitter, kind: e.kind });
    } catch (err) {
      li.append(text("span", `#${seq}: ${err.message || err}`, "problem"));
    }
    const result = text("div", "", "verify-result");
    result.dataset.seq = seq;
    li.append(" ", button, result);
    return li;
  }

  async function showPanel(n) {
    panel.replaceChildren(text("h2", n.kind === "lot" ? n.lot : `${n.kind}: ${n.label}`));
    const facts = document.createElement("dl");
    const fact = (k, v) => { if (v) facts.append(text("dt", k), text("dd", v)); };
    fact("Product", n.product);
    fact("Quantity", n.quantity);
    fact("QC", n.qc && `${n.qc}${(n.qc_checks || []).map((q) => ` \u00b7 ${q.check}: ${q.result} (${q.signed_off_by})`).join("")}`);
    fact("Expiry", n.expiry);
    fact("Made by run", n.run);
    fact("Suppliers", (n.suppliers || []).map((s) => `${s.supplier} lot ${s.supplier_lot_code}: ${s.quantity} on ${s.received_at.slice(0, 10)}`).join("; "));
    fact("Shipment", n.shipment_id && `${n.from_participant} \u2192 ${n.to_participant} (${n.to_location}) ${n.shipped_at.slice(0, 10)}, ${n.received ? "received" : "OPEN: still stoppable"}`);
    fact("Participant", n.participant);
    if (n.alert_count) {
      fact("Alerts", `${n.alert_count}: ` + n.alerts.map((a) => `${a.rule} (${a.message})`).join("; "));
      const all = document.createElement("a");
      all.href = `/alerts?lot=${encodeURIComponent(n.lot)}`;
      all.textContent = "all alerts on this lot";
      facts.append(all);
    }
    panel.append(facts);
    const seqs = n.seqs.slice(0, 20);
    panel.append(text("h3", `Records (${n.seqs.length})`));
    const list = document.createElement("ul");
    list.className = "records";
    panel.append(list);
    if (n.seqs.length > seqs.length) panel.append(text("p", `The first ${seqs.length} are shown.`, "muted"));
    list.append(...(await Promise.all(seqs.map(recordRow))));
  }

  async function select(id, recenter) {
    const n = byId.get(id);
    if (!n) return;
    const shown = showPanel(n);
    if (recenter && n.kind === "lot" && n.lot !== graph.center) {
      const depth = new URLSearchParams(location.search).get("depth") || "";
      const response = await fetch(`/api/trace?lot=${encodeURIComponent(n.lot)}&depth=${depth}`);
      if (response.ok) {
        graph = await response.json();
        history.pushState({ lot: n.lot }, "", `/trace?lot=${encodeURIComponent(n.lot)}` + (depth ? `&depth=${depth}` : ""));
        document.title = `Trace ${n.lot} \u00b7 lotledger`;
        draw(graph);
      }
    }
    await shown;
    if (cy) {
      cy.nodes(":selected").unselect();
      const node = cy.getElementById(id);
      if (node.length) node.select();
    }
  }

  window.addEventListener("popstate", async () => {
    const query = new URLSearchParams(location.search);
    const response = await fetch(`/api/trace?lot=${encodeURIComponent(query.get("lot"))}&depth=${query.get("depth") || ""}`);
    if (response.ok) {
      graph = await response.json();
      document.title = `Trace ${graph.center} \u00b7 lotledger`;
      draw(graph);
    }
  });
  document.getElementById("graph-controls").addEventListener("change", render);
  document.getElementById("fit").addEventListener("click", () => cy && fit());
  container.addEventListener("keydown", (event) => {
    if (!cy) return;
    const step = { ArrowLeft: [60, 0], ArrowRight: [-60, 0], ArrowUp: [0, 60], ArrowDown: [0, -60] }[event.key];
    if (step) { cy.panBy({ x: step[0], y: step[1] }); event.preventDefault(); }
    else if (event.key === "+" || event.key === "=") cy.zoom({ level: cy.zoom() * 1.25, renderedPosition: { x: container.clientWidth / 2, y: container.clientHeight / 2 } });
    else if (event.key === "-") cy.zoom({ level: cy.zoom() / 1.25, renderedPosition: { x: container.clientWidth / 2, y: container.clientHeight / 2 } });
    else if (event.key === "f") fit();
  });
  draw(graph);
})();

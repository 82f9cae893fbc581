/* lotledger: check an entry's inclusion proof and the signed checkpoint in this browser.
 *
 * Trusts nothing the server says: the log's verifier key comes from the page's operator (the
 * same key `lotledger verify --log-key` takes); the entry bytes, proof and checkpoint are
 * checked with Web Crypto (SHA-256, Ed25519) exactly as RFC 9162 and C2SP signed-note say:
 *   leaf = SHA-256(0x00 || entry bytes); node = SHA-256(0x01 || left || right);
 *   checkpoint body "origin\nsize\nbase64(root)\n", signature line "— name base64(keyhash4 || sig)".
 * It also checks the record's Ed25519 signature (over "lotledger/record/v1\n" || record bytes)
 * with the public key from the ParticipantRegistered entry that registered it, after proving
 * that entry is in the same checkpoint. Revocations need the whole key history: `lotledger
 * verify` checks those.
 */
"use strict";

const LL = (() => {
  const enc = new TextEncoder();
  const RECORD_CONTEXT = enc.encode("lotledger/record/v1\n");

  function b64(text) {
    const raw = atob(text);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  const hex = (u) => Array.from(u, (b) => b.toString(16).padStart(2, "0")).join("");
  function fromHex(text) {
    if (!/^([0-9a-f]{2})*$/i.test(text)) throw new Error(`not hex: ${text}`);
    return Uint8Array.from(text.match(/../g) || [], (h) => parseInt(h, 16));
  }
  function cat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const nodeHash = (left, right) => sha256(cat([1], left, right));

  /* The protobuf wire format, just enough to read Entry, SignedRecord and Record. */
  function fields(buf) {
    const out = new Map();
    let i = 0;
    const varint = () => {
      let value = 0n, shift = 0n;
      for (;;) {
        if (i >= buf.length) throw new Error("truncated varint");
        const b = buf[i++];
        value |= BigInt(b & 0x7f) << shift;
        if (!(b & 0x80)) return value;
        shift += 7n;
        if (shift > 63n) throw new Error("varint too long");
      }
    };
    while (i < buf.length) {
      const key = Number(varint());
      const field = key >>> 3, wire = key & 7;
      let value = null;
      if (wire === 0) value = varint();
      else if (wire === 2) {
        const n = Number(varint());
        if (i + n > buf.length) throw new Error("truncated field");
        value = buf.subarray(i, i + n);
        i += n;
      } else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else throw new Error(`unsupported wire type ${wire}`);
      if (!out.has(field)) out.set(field, []);
      out.get(field).push(value);
    }
    return out;
  }
  // A singular field that occurs twice takes its last value, as protobuf parsers do.
  const first = (m, f, fallback) => (m.get(f) || [fallback]).at(-1);
  const text = (bytes) => new TextDecoder().decode(bytes);
  const KINDS = {
    10: "material_received", 11: "production_run", 12: "quality_check", 13: "shipment", 14: "receipt", 15: "scan",
    16: "formula_revision", 17: "correction", 18: "aggregation", 19: "participant_registered", 20: "key_revoked",
    21: "location_registered", 22: "recall_opened",
  };

  /* What the verified record bytes say about themselves: id, submitter, kind, creation time. */
  function recordFacts(recordBytes) {
    const r = fields(recordBytes);
    const kinds = Object.keys(KINDS).filter((f) => r.has(Number(f)));
    const created = fields(first(r, 3, new Uint8Array()));
    const seconds = Number(first(created, 1, 0n)), nanos = Number(first(created, 2, 0n));
    return {
      recordId: text(first(r, 1, new Uint8Array())),
      submitter: text(first(r, 2, new Uint8Array())),
      kind: kinds.length === 1 ? KINDS[kinds[0]] : "",
      createdAt: new Date(seconds * 1000 + Math.floor(nanos / 1e6)).toISOString(),
    };
  }

  function parseVerifierKey(vkey) {
    const parts = vkey.trim().split("+");
    if (parts.length < 3) throw new Error("the log key is not name+hash+key");
    const name = parts[0], hash = fromHex(parts[1]), blob = b64(parts.slice(2).join("+"));
    if (hash.length !== 4 || blob.length !== 33 || blob[0] !== 1) throw new Error("the log key is not an Ed25519 verifier key");
    return { name, keyHash: hash, publicKey: blob.subarray(1) };
  }

  async function ed25519(publicKey, signature, message) {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  /* A C2SP checkpoint, its log signature checked: {origin, size, root, cosignatures}. */
  async function openCheckpoint(note, vkey) {
    const key = parseVerifierKey(vkey);
    const expect = (await sha256(cat(enc.encode(key.name), [0x0a, 0x01], key.publicKey))).subarray(0, 4);
    if (!equal(expect, key.keyHash)) throw new Error("the log key's hash does not match its name and key");
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint has no signature block");
    const body = note.slice(0, split + 1);
    const lines = note.slice(split + 2).split("\n").filter((l) => l);
    let good = false, others = 0;
    for (const line of lines) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) throw new Error(`malformed signature line: ${line}`);
      const blob = b64(m[2]);
      if (m[1] === key.name && equal(blob.subarray(0, 4), key.keyHash)) {
        // Like Go's note.Open: a line that claims the log's key and does not verify spoils the note.
        if (!(await ed25519(key.publicKey, blob.subarray(4), enc.encode(body)))) throw new Error(`a signature line by ${key.name} does not verify`);
        good = true;
      } else others++;
    }
    if (!good) throw new Error(`no valid signature by ${key.name} on the checkpoint`);
    const [origin, size, root] = body.split("\n");
    // In lotledger the log key's name is the origin: a note for another log under the same key is not this log's.
    if (origin !== key.name) throw new Error(`the checkpoint is for ${origin}, not ${key.name}`);
    if (!/^(0|[1-9][0-9]*)$/.test(size)) throw new Error(`bad checkpoint size ${size}`);
    return { origin, size: Number(size), root: b64(root), cosignatures: others };
  }

  /* RFC 9162 section 2.1.3.2: the root an inclusion proof leads to, and each step on the way. */
  async function rootFromInclusion(index, size, leaf, proof) {
    if (index >= size) throw new Error(`index ${index} is not below tree size ${size}`);
    let fn = index, sn = size - 1, r = leaf;
    const path = [];
    for (const p of proof) {
      if (sn === 0) throw new Error("the proof is longer than the tree is deep");
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        path.push({ side: "left", hash: hex(p), result: hex(r) });
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await nodeHash(r, p);
        path.push({ side: "right", hash: hex(p), result: hex(r) });
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("the proof is shorter than the tree is deep");
    return { root: r, path };
  }

  /* One entry in a verified checkpoint: its seq, its leaf in the tree, its signed record. */
  async function proveEntry(p, checkpoint) {
    if (p.tree_size !== checkpoint.size) throw new Error(`proof for size ${p.tree_size}, checkpoint of size ${checkpoint.size}`);
    const entry = b64(p.entry);
    const leaf = await sha256(cat([0], entry));
    const { root, path } = await rootFromInclusion(p.seq, p.tree_size, leaf, p.proof.map(b64));
    if (!equal(root, checkpoint.root)) throw new Error(`entry ${p.seq}: the proof leads to root ${hex(root)}, the signed checkpoint says ${hex(checkpoint.root)}`);
    const e = fields(entry);
    if (Number(first(e, 1, 0n)) !== p.seq) throw new Error(`the entry bytes claim seq ${first(e, 1, 0n)}, not ${p.seq}`);
    const signed = fields(first(e, 4, new Uint8Array()));
    return {
      leaf: hex(leaf),
      path,
      recordBytes: first(signed, 1, new Uint8Array()),
      keyId: text(first(signed, 2, new Uint8Array())),
      signature: first(signed, 3, new Uint8Array()),
    };
  }

  /* Everything about one record: [{ok, text}] steps and the path; throws nothing. `expected`
   * holds what the page shows of the record (seq, record id, submitter, kind): a proof of some
   * other entry, however valid, must not turn the page's record green. */
  async function verifyRecord(p, vkey, expected = {}) {
    const steps = [];
    let path = [];
    try {
      if (expected.seq !== undefined && p.seq !== expected.seq) throw new Error(`the server answered with a proof for entry ${p.seq}, not ${expected.seq}`);
      const cp = await openCheckpoint(p.checkpoint, vkey);
      steps.push({ ok: true, text: `checkpoint ${cp.origin} at size ${cp.size} is signed by the log key` + (cp.cosignatures ? ` (and carries ${cp.cosignatures} witness cosignature${cp.cosignatures > 1 ? "s" : ""}, not checked here)` : "") });
      const main = await proveEntry(p, cp);
      path = main.path;
      steps.push({ ok: true, text: `entry ${p.seq} (leaf ${main.leaf}) is included: ${main.path.length} proof hashes lead to the signed root` });
      const facts = recordFacts(main.recordBytes);
      for (const [name, label] of [["recordId", "record id"], ["submitter", "submitter"], ["kind", "kind"]]) {
        if (expected[name] !== undefined && expected[name] !== facts[name]) throw new Error(`the page shows ${label} ${expected[name]}, the verified entry says ${facts[name]}`);
      }
      steps.push({ ok: true, text: `it is record ${facts.recordId}, a ${facts.kind.replaceAll("_", " ")} by ${facts.submitter}, created ${facts.createdAt}: what this page shows` });
      if (!p.key_entry) {
        steps.push({ ok: false, text: `the key ${main.keyId.slice(0, 16)}… is not registered in the log` });
        return { ok: false, steps, path };
      }
      const reg = await proveEntry(p.key_entry, cp);
      steps.push({ ok: true, text: `entry ${p.key_entry.seq}, which registered the signing key, is included too` });
      const registration = fields(first(fields(reg.recordBytes), 19, new Uint8Array()));
      const publicKey = first(registration, 3, new Uint8Array());
      const participant = text(first(registration, 1, new Uint8Array()));
      if (hex(await sha256(publicKey)) !== main.keyId) throw new Error(`entry ${p.key_entry.seq} registers another key than ${main.keyId.slice(0, 16)}…`);
      const submitter = facts.submitter;
      if (submitter !== participant) throw new Error(`the record's submitter ${submitter} is not ${participant}, whose key signed it`);
      if (!(await ed25519(publicKey, main.signature, cat(RECORD_CONTEXT, main.recordBytes)))) throw new Error(`the record's signature does not verify under ${participant}'s key`);
      steps.push({ ok: true, text: `the record is signed by ${participant}'s registered key` });
      return { ok: true, steps, path };
    } catch (err) {
      steps.push({ ok: false, text: String(err.message || err) });
      return { ok: false, steps, path };
    }
  }

  function render(target, result) {
    target.replaceChildren();
    const head = document.createElement("p");
    head.className = result.ok ? "verified" : "failed";
    head.setAttribute("role", "status");
    head.textContent = result.ok ? "\u2714 Verified in this browser" : "\u2718 Verification FAILED";
    const list = document.createElement("ul");
    for (const s of result.steps) {
      const li = document.createElement("li");
      li.className = s.ok ? "ok" : "bad";
      li.textContent = (s.ok ? "\u2714 " : "\u2718 ") + s.text;
      list.append(li);
    }
    target.append(head, list);
    if (result.path.length) {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = `Proof path (${result.path.length} steps)`;
      const ol = document.createElement("ol");
      ol.className = "path";
      for (const step of result.path) {
        const li = document.createElement("li");
        li.textContent = `${step.side === "left" ? "H(sibling \u2016 node)" : "H(node \u2016 sibling)"}, sibling ${step.hash} \u2192 ${step.result}`;
        ol.append(li);
      }
      details.append(summary, ol);
      target.append(details);
    }
  }

  async function verifyInto(seq, target, expected = {}) {
    target.textContent = "Checking\u2026";
    let result;
    try {
      if (!globalThis.crypto || !crypto.subtle) {
        throw new Error("this browser offers no Web Crypto on this page: it is only available over HTTPS or from localhost, so serve the web app through an HTTPS proxy");
      }
      const response = await fetch(`/api/proof/${seq}`);
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      result = await verifyRecord(body, document.body.dataset.logKey, { seq, ...expected });
    } catch (err) {
      result = { ok: false, steps: [{ ok: false, text: `could not check: ${err.message || err}` }], path: [] };
    }
    render(target, result);
    target.dataset.verified = result.ok ? "yes" : "no";
    return result;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.verify");
    if (!button) return;
    const seq = Number(button.dataset.seq);
    const target = button.parentElement.querySelector(`.verify-result[data-seq="${seq}"]`) || button.nextElementSibling;
    const { recordId, submitter, kind } = button.dataset; // what the page shows of the record
    const expected = Object.fromEntries(Object.entries({ recordId, submitter, kind }).filter(([, v]) => v !== undefined));
    verifyInto(seq, target, expected);
  });

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("verify-checkpoint");
    if (!button) return;
    button.addEventListener("click", async () => {
      const out = document.getElementById("checkpoint-result");
      try {
        const cp = await openCheckpoint(document.getElementById("checkpoint-note").textContent, document.body.dataset.logKey);
        render(out, { ok: true, steps: [{ ok: true, text: `${cp.origin}: ${cp.size} entries, root ${hex(cp.root)}, signed by the log key` }], path: [] });
      } catch (err) {
        render(out, { ok: false, steps: [{ ok: false, text: String(err.message || err) }], path: [] });
      }
    });
  });

  return { verifyRecord, verifyInto, openCheckpoint, rootFromInclusion };
})();

"""``timbremap map``: an interactive map of the sounds, as one ``index.html`` that opens from
disk (no server, no CDN): every note a point coloured by its label (the store's label set);
hover shows its name, label, pitch, velocity and the model's predicted label; a click plays
it; the legend filters labels; placed new sounds are stars.

Audio is linked by relative path to the notes the store was built from (each note's folder in
``/source_folder``), or copied next to the page with ``copy_audio``.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import urllib.parse
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from featurestore import schema
from featurestore.errors import InputError
from featurestore.files import atomic_write_text
from featurestore.store import StoreError, open_split, require_store, store_splits

from .placements import read_placed
from .tsne import DEFAULT_SPLIT, no_map
from .plot import label_colors, one_label_set

__all__ = ["write_map"]


def _audio_link(out_dir: Path, audio: Path) -> str:
    """A URL of ``audio`` relative to the page, percent-encoded (names may hold ``#``, ``?``,
    ``%`` or spaces)."""
    try:
        return urllib.parse.quote(Path(os.path.relpath(audio, out_dir)).as_posix())
    except ValueError:  # another drive (Windows)
        return audio.resolve().as_uri()


def write_map(store, out_dir, splits: Optional[Sequence[str]] = None, *,
              copy_audio: bool = False) -> Path:
    """Write ``OUT_DIR/index.html`` for every split with a ``/tsne`` map.

    The page's data names the store's label set (``families``, with one colour each in
    ``colors``); each note's ``family`` and ``predicted`` are indices into it.

    Raises
    ------
    StoreError
        When the store is not a local folder, no split of it has a ``/tsne`` map, or two splits hold
        different label sets (nothing is written).
    InputError
        When ``out_dir`` is a file.
    """
    require_store(store, local_for="map")
    store, out_dir = Path(store), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: is a file; the map is written into a folder")
    data, label_sets, copies = {"splits": {}}, {}, {}
    for split in splits or store_splits(store):
        with open_split(store, split) as f:
            if schema.TSNE not in f:
                if splits:  # asked for by name
                    raise no_map(store, split)
                continue
            label_sets[split] = schema.read_label_names(f)
            names = f[schema.NAMES].asstr()[:]
            predicted = (f[schema.PROBABILITIES][:].argmax(axis=1) if schema.PROBABILITIES in f
                         else np.full(len(names), -1))
            offsets = (f[schema.OFFSET][:] if schema.OFFSET in f
                       else np.zeros(len(names)))
            audio, copied = [], {}
            for source, offset in zip(schema.read_audio_paths(f), offsets):
                if copy_audio and source.is_file():
                    if source not in copied:  # once a file, whatever its windows
                        copied[source] = (out_dir / "audio" / split
                                          / f"{len(copied):05d}-{source.name}")
                        copies[copied[source]] = source  # copied once the page can be made
                    source = copied[source]
                # a window of a recording plays from where it starts (a media fragment)
                audio.append(_audio_link(out_dir, source) + (f"#t={offset:g}" if offset else ""))
            xy = f[schema.TSNE][:]
            data["splits"][split] = {
                "x": np.round(xy[:, 0], 3).tolist(), "y": np.round(xy[:, 1], 3).tolist(),
                "family": f[schema.LABELS][:].tolist(), "name": names.tolist(),
                "pitch": f[schema.PITCH][:].tolist(), "velocity": f[schema.VELOCITY][:].tolist(),
                "predicted": predicted.tolist(), "audio": audio,
                "info": {k: (v.item() if hasattr(v, "item") else v)
                         for k, v in f[schema.TSNE].attrs.items()},
            }
    if not data["splits"]:
        raise StoreError(f"{store}: no split has a /tsne map yet (run 'timbremap tsne')")
    opens = DEFAULT_SPLIT if DEFAULT_SPLIT in data["splits"] else next(iter(data["splits"]))
    data["open"] = opens  # the page opens on the split `tsne` maps unless told
    data["families"] = list(one_label_set(store, label_sets))
    data["colors"] = label_colors(len(data["families"]))
    data["placed"] = [{"split": p.split, "x": p.x, "y": p.y, "name": Path(p.path).name,
                       "family": p.family, "audio": _audio_link(out_dir, Path(p.path))}
                      for p in read_placed(store)]
    out_dir.mkdir(parents=True, exist_ok=True)
    for copy, source in copies.items():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
    page = out_dir / "index.html"
    # every < as \u003c: no text in the data can open or close a tag or comment in the script
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    values = {"DATA": payload, "TITLE": html.escape(store.name)}
    # one pass: a value that holds __TITLE__ or __DATA__ is not replaced in turn
    text = re.sub(r"__(DATA|TITLE)__", lambda m: values[m.group(1)], TEMPLATE)
    atomic_write_text(page, text)
    return page


TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>timbremap: __TITLE__</title>
<style>
 body{margin:0;font:14px system-ui,sans-serif;color:#222;display:flex;height:100vh}
 #side{width:230px;padding:12px;border-right:1px solid #ddd;overflow:auto}
 #side h1{font-size:16px;margin:0 0 8px}
 #main{flex:1;position:relative}
 canvas{width:100%;height:100%;display:block;cursor:crosshair}
 .fam{display:flex;align-items:center;gap:6px;padding:2px 4px;cursor:pointer;user-select:none;border-radius:4px}
 .fam:hover{background:#f0f0f0} .fam.off{opacity:.3}
 .dot{width:12px;height:12px;border-radius:50%}
 #tip{position:absolute;pointer-events:none;background:rgba(255,255,255,.95);border:1px solid #999;
      border-radius:4px;padding:4px 8px;display:none;white-space:nowrap;box-shadow:0 1px 4px rgba(0,0,0,.2)}
 #status{margin-top:10px;color:#555;min-height:2em} .info{color:#666;font-size:12px;margin-top:8px}
 select{width:100%;margin-bottom:8px}
</style></head><body>
<div id="side"><h1>timbremap: __TITLE__</h1>
 <select id="split"></select>
 <div id="legend"></div>
 <div class="info">hover: details &middot; click: listen &middot; legend: show/hide a label
  &middot; &#9733; placed sounds</div>
 <div id="status"></div><div class="info" id="quality"></div>
</div>
<div id="main"><canvas id="map"></canvas><div id="tip"></div></div>
<script>
const DATA = __DATA__;
const canvas = document.getElementById('map'), ctx = canvas.getContext('2d');
const tip = document.getElementById('tip'), statusBox = document.getElementById('status');
const hidden = new Set(); let split = DATA.open, screen = [], audio = null;
const select = document.getElementById('split');
for (const s of Object.keys(DATA.splits)) select.add(new Option(s + ' (' + DATA.splits[s].x.length + ' notes)', s));
select.value = split;
select.onchange = () => { split = select.value; draw(); };
const legend = document.getElementById('legend');
DATA.families.forEach((f, i) => {
  const row = document.createElement('div'); row.className = 'fam'; row.dataset.family = i;
  row.innerHTML = '<span class="dot" style="background:' + DATA.colors[i] + '"></span>' + esc(f);
  row.onclick = () => { hidden.has(i) ? hidden.delete(i) : hidden.add(i); row.classList.toggle('off'); draw(); };
  legend.appendChild(row);
});
function draw() {
  const d = DATA.splits[split], r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
  canvas.width = r.width * dpr; canvas.height = r.height * dpr; ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, r.width, r.height);
  const placed = DATA.placed.filter(p => p.split === split);
  const xs = d.x.concat(placed.map(p => p.x)), ys = d.y.concat(placed.map(p => p.y));
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const pad = 24, s = Math.min((r.width - 2 * pad) / (x1 - x0 || 1), (r.height - 2 * pad) / (y1 - y0 || 1));
  const ox = (r.width - s * (x1 - x0)) / 2, oy = (r.height - s * (y1 - y0)) / 2;
  const at = (x, y) => [ox + s * (x - x0), r.height - (oy + s * (y - y0))];
  const radius = Math.max(2, Math.min(6, 600 / Math.sqrt(d.x.length)));
  screen = [];
  for (let i = 0; i < d.x.length; i++) {
    if (hidden.has(d.family[i])) continue;
    const [px, py] = at(d.x[i], d.y[i]);
    ctx.fillStyle = DATA.colors[d.family[i]]; ctx.globalAlpha = 0.8;
    ctx.beginPath(); ctx.arc(px, py, radius, 0, 2 * Math.PI); ctx.fill();
    screen.push({i, px, py});
  }
  ctx.globalAlpha = 1;
  for (const p of placed) {
    const [px, py] = at(p.x, p.y); star(px, py, 12);
    ctx.fillStyle = '#000'; ctx.font = 'bold 12px system-ui'; ctx.fillText(p.name, px + 12, py - 8);
    screen.push({placed: p, px, py});
  }
  canvas.dataset.drawn = screen.length;
  const q = d.info; document.getElementById('quality').textContent =
    't-SNE (' + q.method + ', perplexity ' + q.perplexity + ') of ' + q.source + ': trustworthiness ' +
    Number(q.trustworthiness).toFixed(3) + ', kNN label accuracy ' +
    Number(q.knn_accuracy_map).toFixed(3);
}
function star(x, y, r) {
  ctx.beginPath();
  for (let k = 0; k < 10; k++) { const a = Math.PI / 5 * k - Math.PI / 2, rr = k % 2 ? r / 2.4 : r;
    ctx.lineTo(x + rr * Math.cos(a), y + rr * Math.sin(a)); }
  ctx.closePath(); ctx.fillStyle = '#000'; ctx.fill(); ctx.strokeStyle = '#fff'; ctx.lineWidth = 1.5; ctx.stroke();
}
function nearest(ev) {
  const r = canvas.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
  let best = null, bd = 144;
  for (const p of screen) { const dd = (p.px - x) ** 2 + (p.py - y) ** 2; if (dd < bd) { bd = dd; best = p; } }
  return best;
}
function esc(text) {  // names come from the data set: shown as text, never as HTML
  return String(text).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]);
}
function describe(p) {
  if (p.placed) return '&#9733; ' + esc(p.placed.name) + '<br>placed; predicted ' + esc(p.placed.family);
  const d = DATA.splits[split], i = p.i, label = k => esc(DATA.families[k]);
  return '<b>' + esc(d.name[i]) + '</b><br>label: ' + label(d.family[i]) +
    '<br>pitch ' + d.pitch[i] + ', velocity ' + d.velocity[i] +
    '<br>predicted: ' + (d.predicted[i] >= 0 ? label(d.predicted[i]) : 'n/a (run embed)');
}
canvas.onmousemove = ev => {
  const p = nearest(ev);
  if (!p) { tip.style.display = 'none'; return; }
  tip.innerHTML = describe(p); tip.style.display = 'block';
  tip.style.left = (p.px + 14) + 'px'; tip.style.top = (p.py + 10) + 'px';
};
canvas.onmouseleave = () => { tip.style.display = 'none'; };
canvas.onclick = ev => {
  const p = nearest(ev); if (!p) return;
  const name = p.placed ? p.placed.name : DATA.splits[split].name[p.i];
  const url = p.placed ? p.placed.audio : DATA.splits[split].audio[p.i];
  if (audio) audio.pause();
  audio = new Audio(url);
  audio.onplaying = () => { statusBox.textContent = '\u25B6 playing ' + name; document.body.dataset.playing = name; };
  audio.onended = () => { statusBox.textContent = 'played ' + name; };
  audio.onerror = () => { statusBox.textContent = 'cannot play ' + url; document.body.dataset.playError = url; };
  statusBox.textContent = 'loading ' + name;
  audio.play().catch(err => { statusBox.textContent = 'cannot play ' + name + ': ' + err.message; document.body.dataset.playError = String(err); });
};
window.onresize = draw;
draw();
if (location.hash === '#selftest') {  // used by the tests: hover over and click the first drawn point
  const p = screen.find(q => !q.placed), r = canvas.getBoundingClientRect();
  const at = p && {clientX: r.left + p.px, clientY: r.top + p.py};
  if (p) { canvas.onmousemove(at); canvas.onclick(at); }
}
</script></body></html>
"""

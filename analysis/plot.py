"""``timbremap plot``: the t-SNE map of each split, coloured by label, as one image (PNG by
default)."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from featurestore.nsynth import FAMILIES
from featurestore import schema
from featurestore.errors import (InputError, check_split_names, label_difference,
                                  label_set_text)
from featurestore.store import (StoreError, no_splits, open_split, require_store, split_path,
                                store_splits)
from training.images import cut_labels, image_path, literal_text, save_figure

from .placements import placed_on_maps
from .tsne import map_coords, map_model, no_map

log = logging.getLogger(__name__)

__all__ = ["plot_map", "label_colors", "family_colors", "one_label_set"]


def label_colors(n: int) -> List[str]:
    """One distinct colour (hex) for each of ``n`` labels, shared by plot and map: matplotlib's
    tab10 colours for up to 10 labels, then their lighter tab20 pairs for up to 20 (NSynth's 11
    families: the tab10 colours and light blue), and for more, colorcet's Glasbey colours (the
    tab10 colours, then each the farthest from those before it), repeated past its 256."""
    import matplotlib
    if n <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [matplotlib.colors.to_hex(cmap(i * 2 % 20 + (i * 2 // 20))) for i in range(n)]
    from colorcet import glasbey_category10 as glasbey  # RGB triples
    return [matplotlib.colors.to_hex(glasbey[i % len(glasbey)]) for i in range(n)]


def family_colors() -> List[str]:
    """:func:`label_colors` of NSynth's 11 families."""
    return label_colors(len(FAMILIES))


def warn_of_mixed_models(store, made_by: Dict[str, str]):
    """Warn where the maps of embeddings drawn side by side (``made_by``: split -> its map's
    :func:`~analysis.tsne.map_model`; '' for a map of spectra, left out) were made from
    different models' embeddings: after a model was trained again and only some splits
    embedded, say."""
    models = {split: sha for split, sha in made_by.items() if sha}
    if len(set(models.values())) > 1:
        log.warning("%s: its maps come from different models' embeddings (%s): embed every "
                    "split with one model and run tsne again to compare them", store,
                    ", ".join(f"{split}: {sha[:8]}" for split, sha in models.items()))


def one_label_set(store, label_sets: Dict[str, Tuple[str, ...]]) -> Tuple[str, ...]:
    """The label set the splits of ``store`` share (``label_sets``: split -> its
    :func:`featurestore.schema.read_label_names`), for one legend over them all.

    Raises
    ------
    StoreError
        When two splits hold different label sets.
    """
    splits = list(label_sets)
    for split in splits[1:]:
        if label_sets[split] != label_sets[splits[0]]:
            raise StoreError(f"{split_path(store, split)} holds labels "
                             f"{label_set_text(label_sets[split])}, but "
                             f"{split_path(store, splits[0])} holds "
                             f"{label_set_text(label_sets[splits[0]])}: a store's splits share "
                             f"one label set" + label_difference(
                                 label_sets[split], label_sets[splits[0]], (split, splits[0])))
    return label_sets[splits[0]] if splits else ()


#: The most characters of a label the legend shows: two columns fit the narrowest figure.
LEGEND_CHARS = 24


#: The most placed sounds a panel names: past it, their stars alone (names would cover it).
PLACED_NAMES = 20
#: The most characters of a placed sound's name a panel shows.
PLACED_CHARS = 24


@literal_text
def plot_map(store, out, splits: Optional[Sequence[str]] = None) -> Path:
    """One panel per split with a ``/tsne`` map, points coloured by the store's labels, a
    shared legend, and the placed new sounds as stars, named where a map has at most
    :data:`PLACED_NAMES` of them.

    Raises
    ------
    StoreError
        When the store is not a local folder, no split of it has a ``/tsne`` map, or two splits
        hold different label sets.
    InputError
        When ``out`` ends in a format matplotlib cannot write
        (:func:`training.images.image_path`); a folder gets ``map.png`` in it.
    """
    splits = check_split_names(splits)
    require_store(store, local_for="plot")
    store, out = Path(store), image_path(out, in_folder="map.png")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels, label_sets, made_by = [], {}, {}
    for split in dict.fromkeys(splits or store_splits(store)):  # each once
        with open_split(store, split) as f:
            if schema.TSNE in f:
                panels.append((split, map_coords(f), f[schema.LABELS][:],
                               dict(f[schema.TSNE].attrs)))
                label_sets[split], made_by[split] = schema.read_label_names(f), map_model(f)
            elif splits:  # asked for by name
                raise no_map(store, split)
    if not panels:
        raise no_splits(store) if not store_splits(store) else StoreError(
            f"{store}: no split has a /tsne map yet (run 'timbremap tsne')")
    names = one_label_set(store, label_sets)
    warn_of_mixed_models(store, made_by)
    colors = label_colors(len(names))  # a label's colour is the same whichever are shown
    shown = sorted(set().union(*(np.unique(labels).tolist() for _, _, labels, _ in panels)))
    on_panels = {split for split, *_ in panels}
    placed = [p for p in placed_on_maps(store) if p.split in on_panels]
    width = 6.5 * len(panels)  # inches
    # a legend entry is about as wide as its name at 11 pt ("synth_lead": 1.6 inches); a
    # name is cut to fit a column of the narrowest figure's two
    legend_names = cut_labels(names, LEGEND_CHARS)
    longest = max((len(legend_names[i]) for i in shown), default=0)
    ncol = max(2, int(width // max(1.6, 0.5 + 0.11 * longest)))
    legend_rows = math.ceil((len(shown) + bool(placed)) / ncol)
    fig, axes = plt.subplots(1, len(panels), squeeze=False, constrained_layout=True,
                             figsize=(width, 6.8 + 0.25 * max(0, legend_rows - 2)))
    for ax, (split, xy, labels, attrs) in zip(axes[0], panels):
        size = max(2.0, min(30.0, 6000.0 / max(len(xy), 1)))
        for label, name in enumerate(names):
            mask = labels == label
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=size, color=colors[label], alpha=0.75,
                           linewidths=0, label=name)
        here = [p for p in placed if p.split == split]
        right = xy[:, 0].max() - 0.35 * np.ptp(xy[:, 0])  # a name right of this goes left
        for p, name in zip(here, cut_labels([Path(p.path).stem for p in here], PLACED_CHARS)):
            ax.scatter([p.x], [p.y], marker="*", s=260, color="black", edgecolors="white",
                       zorder=5)
            if len(here) <= PLACED_NAMES:  # within the panel, leaving its size alone
                left = p.x > right
                ax.annotate(name, (p.x, p.y), xytext=(-6 if left else 6, 6),
                            textcoords="offset points", ha="right" if left else "left",
                            fontsize=9, weight="bold", annotation_clip=True, clip_on=True,
                            in_layout=False)
        ax.set_title(f"{split}: {len(xy)} notes, t-SNE of {attrs.get('source', '?')}\n"
                     f"trustworthiness {attrs.get('trustworthiness', float('nan')):.3f}, "
                     f"kNN label accuracy" + (f" (k={attrs['knn_k']})" if "knn_k" in attrs
                                              else "") +
                     f" {attrs.get('knn_accuracy_map', float('nan')):.3f}", fontsize=11)
        ax.set_aspect("equal", adjustable="datalim")  # distances as t-SNE gave them
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[i], markersize=9,
                          label=legend_names[i]) for i in shown]
    if placed:
        crowded = max(sum(p.split == split for p in placed) for split in on_panels)
        handles.append(plt.Line2D([], [], marker="*", ls="", color="black", markersize=14,
                                  label="placed sound" + (f" (not named: over {PLACED_NAMES} "
                                                          f"on a map)" if crowded > PLACED_NAMES
                                                          else "")))
    # the legend stays inside the figure: as many columns as fit its width
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), ncol),
               fontsize=11, frameon=False)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, out, dpi=110)
    except OSError as err:  # no such place (/proc/x.png), no permission, a full disk
        raise InputError(f"{out}: cannot be written ({err.strerror or err})") from None
    finally:
        plt.close(fig)
    return out

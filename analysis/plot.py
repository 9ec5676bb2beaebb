"""``timbremap plot``: the t-SNE map of each split, coloured by family, as one PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence


from featurestore.nsynth import FAMILIES
from featurestore import schema
from featurestore.store import StoreError, open_split, store_splits

from .placed import read_placed
from .tsne import no_map

__all__ = ["plot_map", "family_colors"]


def family_colors() -> list:
    """One distinct colour per family (matplotlib's tab20, hex), shared by plot and map."""
    import matplotlib
    cmap = matplotlib.colormaps["tab20"]
    return [matplotlib.colors.to_hex(cmap(i * 2 % 20 + (i * 2 // 20))) for i in
            range(len(FAMILIES))]


def plot_map(store, out, splits: Optional[Sequence[str]] = None) -> Path:
    """One panel per split with a ``/tsne`` map, points coloured by family, a shared legend,
    and the placed new sounds as labelled stars.

    Raises
    ------
    StoreError
        When no split of the store has a ``/tsne`` map.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    store, out = Path(store), Path(out)
    panels = []
    for split in splits or store_splits(store):
        with open_split(store, split) as f:
            if schema.TSNE in f:
                tsne = f[schema.TSNE]
                panels.append((split, tsne[:], f[schema.LABELS][:], dict(tsne.attrs)))
            elif splits:  # asked for by name
                raise no_map(store, split)
    if not panels:
        raise StoreError(f"{store}: no split has a /tsne map yet (run 'timbremap tsne')")
    colors = family_colors()
    placed = read_placed(store)
    width = 6.5 * len(panels)  # inches
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 6.8), squeeze=False,
                             constrained_layout=True)
    for ax, (split, xy, labels, attrs) in zip(axes[0], panels):
        size = max(2.0, min(30.0, 6000.0 / max(len(xy), 1)))
        for family in range(len(FAMILIES)):
            mask = labels == family
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=size, color=colors[family], alpha=0.75,
                           linewidths=0, label=FAMILIES[family])
        for p in (p for p in placed if p.split == split):
            ax.scatter([p.x], [p.y], marker="*", s=260, color="black", edgecolors="white",
                       zorder=5)
            ax.annotate(Path(p.path).stem, (p.x, p.y), xytext=(6, 6),
                        textcoords="offset points", fontsize=9, weight="bold")
        ax.set_title(f"{split}: {len(xy)} notes, t-SNE of {attrs.get('source', '?')}\n"
                     f"trustworthiness {attrs.get('trustworthiness', float('nan')):.3f}, "
                     f"kNN family accuracy {attrs.get('knn_accuracy_map', float('nan')):.3f}",
                     fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[i], markersize=9,
                          label=name) for i, name in enumerate(FAMILIES)]
    if placed:
        handles.append(plt.Line2D([], [], marker="*", ls="", color="black", markersize=14,
                                  label="placed sound"))
    # ~1.6 inches a legend entry ("synth_lead" at 11 pt): the legend stays inside the figure
    fig.legend(handles=handles, loc="outside lower center",
               ncol=min(len(handles), max(2, int(width // 1.6))),
               fontsize=11, frameon=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

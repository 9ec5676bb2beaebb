"""A readable description of a store: what ``timbremap inspect`` prints."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from .nsynth import FAMILIES
from .params import ATTR_PREFIX
from .store import StoreError, open_split, read_params, store_splits

__all__ = ["describe_store"]


def describe_store(store, max_skipped: int = 10) -> List[str]:
    """Lines describing every split of ``store``: shapes, label counts, statistics, skipped
    inputs and feature parameters.

    Raises
    ------
    StoreError
        When ``store`` is not a folder or holds no split file.
    """
    store = Path(store)
    if not store.is_dir():
        raise StoreError(f"{store}: no such store folder")
    splits = store_splits(store)
    if not splits:
        unfinished = sorted(p.name for p in store.glob("*.h5.partial"))
        raise StoreError(f"{store}: no split files (*.h5) in this folder" + (
            f"; an unfinished build left {', '.join(unfinished)} (run build again to resume)"
            if unfinished else ""))
    lines = []
    for split in splits:
        with open_split(store, split) as f:
            spectra = f["spectra"]
            n = spectra.shape[0]
            size = Path(f.filename).stat().st_size
            lines.append(f"== {split}: {f.filename}  ({size / 2**20:.1f} MiB, "
                         f"{size / max(n, 1) / 1024:.1f} KiB/note)")
            lines.append(f"  spectra   {spectra.dtype} {spectra.shape}, chunks {spectra.chunks}, "
                         f"compression {spectra.compression}")
            extra = [k for k in ("embeddings", "probabilities", "tsne") if k in f]
            if extra:
                lines.append("  analysis  " + ", ".join(f"{k} {f[k].shape}" for k in extra))
            counts = np.bincount(f["labels"][:], minlength=len(FAMILIES))
            lines.append("  labels    " + "  ".join(
                f"{name} {count}" for name, count in zip(FAMILIES, counts)))
            instruments = len(np.unique(f["instrument"][:])) if n else 0
            lines.append(f"  notes     {n} from {instruments} instruments")
            attrs = spectra.attrs
            if "mean" in attrs:
                mean, std = attrs["mean"], attrs["std"]
                lines.append(f"  stats     from '{attrs['stats_split']}' ({attrs['stats_count']} "
                             f"frames): mean {mean.min():.3f}..{mean.max():.3f}, "
                             f"std {std.min():.3f}..{std.max():.3f}")
            skipped = f["skipped"].asstr()[:] if "skipped" in f else []
            adjusted = f["adjusted"].asstr()[:] if "adjusted" in f else []
            lines.append(f"  skipped   {len(skipped)}" + (":" if len(skipped) else ""))
            lines += [f"    {name}: {reason}" for name, reason in skipped[:max_skipped]]
            if len(skipped) > max_skipped:
                lines.append(f"    ... and {len(skipped) - max_skipped} more")
            if len(adjusted):
                lines.append(f"  adjusted  {len(adjusted)} (e.g. {adjusted[0][0]}: "
                             f"{adjusted[0][1]})")
            params = read_params(f)
            attrs = params.to_attrs()
            lines.append("  features  " + ", ".join(
                f"{name}={attrs[ATTR_PREFIX + name]}" for name in params.shaping()))
            lines.append(f"  built     {f.attrs.get('created', '?')} by timbremap "
                         f"{f.attrs.get('timbremap_version', '?')} from "
                         f"{f.attrs.get('source_root', '?')}")
    return lines

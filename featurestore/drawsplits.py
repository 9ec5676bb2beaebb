"""Instrument-disjoint splits: which split each program of a SoundFont, or synthesised
instrument, goes to (:func:`assign_splits`), programs that play one sample kept together
(:func:`sample_groups`), and the warning of a split no instrument went to."""
from __future__ import annotations

import logging
from collections import Counter
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .gm import GM_FAMILIES
from .nsynth import FAMILIES

__all__ = ["assign_splits", "sample_groups", "warn_of_empty_splits",
           "warn_of_families_held_together"]

log = logging.getLogger(__name__)


def sample_groups(programs: Sequence[int], played: Mapping[int, frozenset]) -> List[List[int]]:
    """``programs`` gathered where they play a sample in common, directly or through others
    (each group sorted; a program that shares none is a group of its own).

    Parameters
    ----------
    programs : sequence of int
    played : mapping
        program -> the samples it plays (:func:`featurestore.sf2check.preset_samples`).
    """
    groups: List[Tuple[set, set]] = []  # (programs, their samples)
    for program in sorted(set(programs)):
        mine = ({program}, set(played.get(program, ())))
        for group in [g for g in groups if g[1] & mine[1]]:
            groups.remove(group)
            mine[0].update(group[0])
            mine[1].update(group[1])
        groups.append(mine)
    return sorted(sorted(members) for members, _ in groups)


def assign_splits(programs: Sequence[int], fractions: Sequence[float], seed: int, *,
                  families: Optional[Mapping[int, Union[str, Tuple[str, str]]]] = None,
                  groups: Sequence[Sequence[int]] = ()) -> Dict[int, str]:
    """Instrument-disjoint split of programs, family by family.

    Each family's programs (or groups of them, each counted as one) are shuffled with
    ``seed`` and cut by ``fractions``; every split with a non-zero share gets at least one of
    a family when the family has enough.

    Parameters
    ----------
    programs : sequence of int
        Instrument numbers (GM programs, or any other instrument ids).
    fractions : sequence of 3 float
        Shares of train, valid and test.
    seed : int
    families : mapping, optional
        program -> its NSynth family name, or a ``(family, source)`` pair as
        :data:`GM_FAMILIES` holds (the default).
    groups : sequence of sequences of int
        Programs that go to one split together (:func:`sample_groups`; groups that share a
        program are one). Each is counted as one in the family most of its programs are of
        (where two families are as many, the family of its lowest program), and drawn before
        the family's other programs: into the first split with a share (train), as far as
        that share goes. A program in none is a group of its own.

    Returns
    -------
    dict
        program -> ``'train'``, ``'valid'`` or ``'test'``.
    """
    families = GM_FAMILIES if families is None else families
    wanted = _with_share(fractions)
    shares = np.array([f for f in fractions if f > 0], dtype=float)
    shares /= shares.sum()
    member_of: Dict[int, set] = {}  # program -> the groups it is in
    for k, group in enumerate(groups):
        for program in group:
            member_of.setdefault(program, set()).add(k)
    units = sample_groups(programs, member_of)  # overlapping groups merged
    result = {}
    for family in FAMILIES:
        members = [unit for unit in units if Counter(
            _family(families[p]) for p in unit).most_common(1)[0][0] == family]
        if not members:
            continue
        rng = np.random.default_rng([seed, FAMILIES.index(family)])
        members = [members[i] for i in rng.permutation(len(members))]
        members.sort(key=len, reverse=True)  # a group first: into train, where train has a share
        counts = np.floor(shares * len(members)).astype(int)
        if len(members) >= len(wanted):
            counts = np.maximum(counts, 1)
        while counts.sum() > len(members):
            counts[np.argmax(counts)] -= 1
        while counts.sum() < len(members):  # leftovers go to the largest share
            counts[np.argmax(shares - counts / len(members))] += 1
        start = 0
        for name, count in zip(wanted, counts):
            for unit in members[start:start + count]:
                result.update(dict.fromkeys(unit, name))
            start += count
    return result


def warn_of_empty_splits(where, splits: Mapping, fractions: Sequence[float], *,
                         option: str = "--programs", grouped: bool = False):
    """Warn when a split with a share in ``fractions`` got no instrument in ``splits`` (what
    :func:`assign_splits` drew): a family gives each such split one only when it has as many
    instruments as there are such splits; the warning says to give more by ``option``, and,
    where ``grouped``, that programs drawn together as a group count as one."""
    shared = _with_share(fractions)
    drawn = set(splits.values())
    empty = [name for name in shared if name not in drawn]
    if empty:
        log.warning("%s: %s got no instrument; a family's instruments are divided among the "
                    "splits, each getting one only when the family has at least %d%s: give %d "
                    "or more of a family (%s)", where, " and ".join(empty), len(shared),
                    " (programs that play one sample counting as one)" if grouped else "",
                    len(shared), option)


def warn_of_families_held_together(where, splits: Mapping[int, str],
                                   fractions: Sequence[float], *,
                                   families: Optional[Mapping] = None):
    """Warn of the families whose programs are in fewer splits than have a share in
    ``fractions``, though there are enough of them: programs that play one sample went to one
    split together (:func:`assign_splits`' ``groups``). ``families`` as it takes them."""
    families = GM_FAMILIES if families is None else families
    wanted = _with_share(fractions)
    short = []
    for family in FAMILIES:
        mine = [p for p in splits if _family(families[p]) == family]
        drawn = {splits[p] for p in mine}
        if len(mine) >= len(wanted) and drawn != set(wanted):
            short.append(f"{family} ({', '.join(s for s in wanted if s in drawn)})")
    if short:
        log.warning("%s: the programs of %s are in fewer splits than asked for: those that play "
                    "one sample go to one split together", where, "; ".join(short))


def _with_share(fractions: Sequence[float]) -> List[str]:
    """The splits ``fractions`` (train, valid, test) gives a share, in that order."""
    return [name for name, f in zip(("train", "valid", "test"), fractions) if f > 0]


def _family(label: Union[str, Tuple[str, str]]) -> str:
    return label if isinstance(label, str) else label[0]

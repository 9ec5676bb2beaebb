"""The command line's words as values: a store's location (a local folder or a URL), the local
paths timbremap writes, the audio files it reads, and the feature and training settings they
give."""
from __future__ import annotations

import argparse
import logging
import math
import os
import re
from pathlib import Path
from typing import List, Sequence

from analysis.output import EXIT_READER_GONE, ReaderGone, write_results
from featurestore.errors import TimbremapError
from featurestore.remote import is_url, store_location as remote_store_location

__all__ = ["ArgumentParser", "local_path", "local_image", "store_location", "positive_int",
           "CommandError", "audio_arguments", "feature_params", "given_settings", "train_config",
           "resume_conflicts", "named_as_options"]

log = logging.getLogger(__name__)


class CommandError(TimbremapError):
    """A command line that cannot be run as given: printed as one line, exit code 1."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose message of a bad value of an option that takes several values
    says where its values end: ``--programs 0 1 OUT`` gives ``OUT`` to ``--programs``."""

    def error(self, message):
        found = re.match(r"argument ([^:]+): invalid ", message)
        names = found[1].split("/") if found else ()  # -s/--split
        action = next((a for a in self._actions if set(names) & set(a.option_strings)), None)
        if action is not None and action.nargs in ("+", "*"):
            message += (f" ({found[1]} takes every word up to the next option: give it after "
                        f"the positional arguments)")
        super().error(message)

    def exit(self, status=0, message=None):
        """Exit; after ``--help`` or ``--version`` (status 0), only once their text has reached
        stdout (argparse leaves a write that fails unsaid): a full disk is an error, a pipe
        whose reader stopped ends as a Unix filter does."""
        if status == 0:
            try:
                write_results()
            except ReaderGone:
                status = EXIT_READER_GONE
            except TimbremapError as err:
                status, message = 1, f"timbremap: error: {err}\n"
        super().exit(status, message)

    def unrecognized(self, words: Sequence[str], extra: Sequence[str]):
        """Exit with the error of ``extra``, the words of ``words`` (the command's) that no
        argument took, saying why where it is clear: a word after an option that takes one
        value, where every positional argument takes one word too, or positional arguments
        on both sides of the options."""
        before = words[:words.index(extra[0])] if extra[0] in words else []
        inline = before[-1:] and before[-1].startswith("--") and "=" in before[-1]
        name = before[-1].split("=", 1)[0] if inline else "".join(before[-2:-1])  # --split=a b
        option = self._option_named(name)
        one_each = all(a.nargs is None for a in self._actions if not a.option_strings)
        first_option = next((k for k, w in enumerate(before) if w.startswith("-")), None)
        why = ""
        if extra[0].startswith("-"):  # an option this command has not
            pass
        elif option is not None and option.nargs is None and one_each:
            why = f" ({max(option.option_strings, key=len)} takes one value)"
        elif first_option is not None and any(not w.startswith("-")
                                              for w in before[:first_option]):
            why = (" (the positional arguments go together, all before the options or all "
                   "after them)")
        self.error(f"unrecognized arguments: {' '.join(extra)}{why}")

    def _option_named(self, name: str):
        """The option ``name`` stands for, as argparse reads it: its own name, or the start
        of one long option's name only (``--spl`` for ``--split``); else ``None``."""
        exact = next((a for a in self._actions if name in a.option_strings), None)
        if exact is not None or not (self.allow_abbrev and name.startswith("--")):
            return exact
        started = [a for a in self._actions
                   if any(s.startswith(name) for s in a.option_strings if s.startswith("--"))]
        return started[0] if len(started) == 1 else None


def local_path(text: str) -> Path:
    """A path on this machine as given on a command line; a URL is refused (``pathlib`` would
    make ``s3://b/x`` a local folder ``s3:/b/x``): timbremap reads only stores from a URL, and
    writes only local files.

    Raises
    ------
    argparse.ArgumentTypeError
        For a URL, saying which commands read one; for empty text.
    """
    _check_typed(text)
    if is_url(text):
        raise argparse.ArgumentTypeError(
            f"{text}: a URL where a local path is needed (timbremap reads stores on object "
            f"storage, with inspect, train, evaluate and embed; models, audio and what it "
            f"writes are local files: copy a model or audio down, write locally and copy up)")
    return Path(text)


def audio_arguments(paths: Sequence[Path]) -> List[Path]:
    """``predict``'s and ``place``'s FILE arguments, each folder replaced by the audio files
    below it (:func:`featurestore.rows.audio_files`: each folder's files by name, then its
    folders); a folder below one given that cannot be read is warned of and left out.

    Raises
    ------
    CommandError
        For a folder given that cannot be read, or has no audio file below it, before any
        work.
    """
    from featurestore.rows import AUDIO_SUFFIXES, audio_files
    files = []
    for path in paths:
        def unreadable(folder: Path, why: str, given: Path = path):
            if folder == given:
                raise CommandError(f"{given}: the folder cannot be read ({why})")
            log.warning("%s: the folder cannot be read (%s); its files are left out", folder,
                        why)
        found = list(audio_files(path, unreadable)) if path.is_dir() else [path]
        if not found:
            raise CommandError(f"{path}: a folder with no audio file below it (endings read: "
                               f"{', '.join(AUDIO_SUFFIXES)})")
        files += found
    return files


def store_location(text: str):
    """A store as given on a command line (:func:`featurestore.remote.store_location`), not
    empty."""
    _check_typed(text)
    return remote_store_location(text)


def _check_typed(text: str):
    """Refuse an empty path: ``pathlib`` reads it as the current folder, so an unset shell
    variable (``timbremap build NOTES "$OUT"``) would write there. Refuse a path whose first
    folder is a ``~`` the shell did not expand (quoted: ``'~/m'``, ``--into="~/x"``) where no
    such folder exists here: it would be made, as ``./~``, or said not to exist."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    first = text.split("/", 1)[0]
    if first.startswith("~") and not os.path.lexists(first) and \
            os.path.expanduser(first) != first:
        raise argparse.ArgumentTypeError(
            f"{text}: the shell did not expand '{first}', as it was quoted: leave it unquoted "
            f"or write {os.path.expanduser(text)} (./{text} for a folder named '{first}')")


def local_image(text: str) -> str:
    """An image's path as given (:func:`local_path`'s check), kept as text: its ending
    separator says a folder (``maps/``), which a ``Path`` drops."""
    local_path(text)
    return text


def positive_int(text: str) -> int:
    """A whole number of at least 1 as given on a command line (notes, rounds, jobs, batches:
    the benchmarks' counts).

    Raises
    ------
    argparse.ArgumentTypeError
        For text that is not a whole number, or one below 1.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def feature_params(args, base=None):
    """The :class:`featurestore.params.FeatureParams` of ``build``'s command line: those it
    gives, the others ``base``'s (``build --add``: the store's) or the defaults."""
    import dataclasses
    from featurestore.params import FeatureParams
    given = {field: getattr(args, option) for option, field in (
        ("features", "kind"), ("duration", "duration"), ("n_fft", "n_fft"),
        ("hop_length", "hop_length"), ("sample_rate", "sample_rate"), ("n_mels", "n_mels"))
        if getattr(args, option) is not None}
    kind = given.get("kind", base.kind if base else FeatureParams.kind)
    if args.n_mels is not None and kind != "mel":
        raise CommandError(f"--n-mels {args.n_mels}: mel bands apply to --features mel only")
    return dataclasses.replace(base, **given) if base else FeatureParams(**given)


def given_settings(args) -> dict:
    """The :class:`training.config.TrainConfig` fields the ``train`` command line gives (an
    option left out is ``None`` in ``args``, and its field keeps the config's default)."""
    given = {name: getattr(args, name) for name in
             ("model", "epochs", "steps_per_epoch", "batch_size", "learning_rate", "schedule",
              "patience", "valid_weights", "budget_minutes", "weight_decay", "time_pool",
              "width", "seed", "precision", "loader", "block_mib", "buffer_mib", "workers")
             if getattr(args, name, None) is not None}
    default_only = [name for name in ("time_pool", "width") if name in given]
    if given.get("model") == "tutorial" and default_only:
        raise CommandError(f"{' and '.join('--' + n.replace('_', '-') for n in default_only)}: "
                           f"{'options' if len(default_only) > 1 else 'an option'} of the "
                           f"default model; the tutorial's network has its own layers")
    if given.get("budget_minutes") == 0:
        given["budget_minutes"] = None
    elif not 0 <= given.get("budget_minutes", 1) < math.inf:
        raise CommandError(f"--budget-minutes must be a finite number of minutes, at least 0 "
                           f"(0: no limit), got {given['budget_minutes']:g}")
    if args.deterministic:
        given["deterministic"] = True
    if args.no_augment:
        given["augment"] = False
    if args.no_balance:
        given["balance"] = False
    return given


def train_config(args):
    """The :class:`training.config.TrainConfig` of ``train``'s command line."""
    from training.config import TrainConfig
    return TrainConfig(**given_settings(args))


def resume_conflicts(given: dict, started) -> list:
    """The options of ``given`` (:func:`given_settings`) that ``--resume`` cannot take: those
    other than the settings the run ``started`` with, but for how its batches are read and
    how long it may run (:data:`training.config.RESUMABLE`)."""
    from training.config import RESUMABLE
    negated = {"augment": "--no-augment", "balance": "--no-balance"}
    own = started.to_dict()
    return [negated.get(name, "--" + name.replace("_", "-"))
            for name, value in given.items() if value != own[name] and name not in RESUMABLE]


def named_as_options(message: str, args) -> str:
    """``batch_size must be ...`` as ``--batch-size must be ...``: an error of a setting that
    the command line gives names the option typed, not the field of its dataclass, and says
    at its end of those left out (``None`` in ``args``) that their defaults were used (not on
    ``--resume``, which goes on with the run's own, nor where the message asks for the option
    to be given). Only a message whose subject is settings of this command (``a and b must
    ...``) is changed."""
    subject, must, rest = message.partition(" must ")
    names = subject.split(" and ")
    if not must or not all(name.isidentifier() and hasattr(args, name) for name in names):
        return message
    options = ["--" + name.replace("_", "-") for name in names]
    defaulted = [option for option, name in zip(options, names) if getattr(args, name) is None]
    if getattr(args, "resume", False) or rest.startswith("be given"):
        defaulted = []  # the run's own; or said already
    said = (f" ({_and(defaulted)}: left at {'its' if len(defaulted) == 1 else 'their'} "
            f"default{'s' if len(defaulted) > 1 else ''})" if defaulted else "")
    return _and(options) + must + rest + said


def _and(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]

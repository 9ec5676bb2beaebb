"""Reading a store over a local S3 server (s3rver, or moto's) against the same store on disk:
random batches, model-ready batches in the block order, one pass in order, in notes/s.

    python benchmarks/remote.py                          # 3,000 train notes in --workdir
    python benchmarks/remote.py --notes 200 --batches 3 --rounds 1 --workdir /tmp/remote-smoke
    python benchmarks/remote.py --server moto            # moto's server instead (see below)

The notes are rendered ones (TimGM6mb, ``benchmarks/extract.py``'s), linked under new names
until the train split holds ``--notes`` (``benchmarks/scale.py``'s ``linked_root``), built with
``timbremap build ROOT STORE --jobs 2`` (a store of that size already in the workdir is reused).
The store is copied to ``s3://bucket/store`` on an S3 server run as a process of its own on a
free localhost port (the AWS variables of this process point botocore at it, as
``tests/test_remote.py`` does; at an IP address it names the bucket in the path), so the
server's CPU time and memory are its own and not this process's: both are read from ``/proc``
and reported beside the rates. The server is stopped at the end, also when something fails.
It runs on this machine and keeps its objects on the same disk as the local store: the "server"
figures are those of HTTP, the S3 protocol, botocore and s3fs and the server's own reads, over
the loopback, not those of a network or of S3's storage.

``--server s3rver`` (the default): s3rver 3 (npm package ``s3rver``), a Node.js server keeping
each object as a file, its data in ``WORKDIR/s3rver-data`` (emptied at the start, removed at the
end); a ranged GET streams just that range of the file (``fs.createReadStream(path, {start,
end})``), as S3 does, so its cost a request does not grow with the object. It needs Node.js and
npm (``node``, ``npm`` on the PATH); s3rver itself is installed the first time into
``WORKDIR/s3rver`` (``npm install --prefix WORKDIR/s3rver s3rver@3``, from the npm registry)
and reused afterwards. The server's copy of the split is dropped from the page cache before each
of its reads, as the local file is: both are read cold from the same disk.

``--server moto``: moto's server (``python -m moto.server``, the test suite's, no install
needed), objects in its own memory and temporary files, never dropped. Not the default: moto
(5.x) reads the whole object for every GET, ranged or not (``FakeKey.value``, the range then
cut from it), so each request costs CPU time and memory that grow with the split file (about
0.3 s a request for a 740 MiB split): its figures measure moto, not reading S3.

Three reads of the train split, each timed on the local file (``SpectraReader``'s ``mmap``
method, the file's pages dropped from the page cache before each round with
``posix_fadvise(DONTNEED)``, so it is read cold) and from the server (``s3://bucket/store/
train.h5``, method ``remote``), in one thread, each reader opened inside the timing:

- random batches of 64: ``SpectraReader.batch`` of ``--batches`` batches of 64 random indices,
  the same ones for both in a round (remote: one concurrent range request a note);
- model-ready batches of 64, block order: ``StoreBatches(shuffle=True, loader='block',
  steps=--batches, mixup_alpha=0.2)``, every batch (runs of notes, 0.5 MiB, one request for each
  stretch with nothing between its notes). The block order reads a whole buffer of 256 MiB
  (about 1,000 notes) before its first batch comes out (on disk the kernel is asked for the
  next buffer ahead; over S3 nothing is), so fewer than about five buffers' worth of batches
  mostly measure its start: the default ``--batches`` 160 (10,240 notes, about ten buffers)
  is for this read;
- one pass over the split in order: ``SpectraReader.iter_batches(256)``.

Disk and server take turns within each round (the machine's speed drifts); the table gives each
one's median rate with the range of the ``--rounds`` rounds, and server / disk as the ratio of
the medians. The second table gives the server's GET requests (counted in its log of requests,
``WORKDIR/SERVER.log``), CPU time (``/proc/PID/stat``, all its threads; for s3rver the node
process) and peak resident memory (``VmHWM``, started again before each read) for each read,
and the upload's. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from extract import make_root
from scale import drop_cached, linked_root

from analysis.arguments import positive_int

BUCKET = "bucket"
URL = f"s3://{BUCKET}/store"
BATCH = 64
PASS_BATCH = 256


def train_notes(store: Path) -> int:
    """Notes in ``store``'s train split, 0 when it has none (in a process of its own: no h5py
    handle is left open here on the file timed cold)."""
    path = store / "train.h5"
    if not path.is_file():
        return 0
    result = subprocess.run([sys.executable, "-c", (
        "import h5py, sys; print(h5py.File(sys.argv[1], 'r')['spectra'].shape[0])"),
        str(path)], check=False, capture_output=True, text=True)
    return int(result.stdout) if result.returncode == 0 else 0


def the_store(workdir: Path, n: int) -> Path:
    """``WORKDIR/storeN``, built unless it is there with ``n`` train notes."""
    store = workdir / f"store{n}"
    if train_notes(store) == n:
        return store
    shutil.rmtree(make_root(workdir, 1))  # WORKDIR/rendered, rendered once (not its root)
    root = linked_root(workdir / "rendered", workdir / f"root{n}", n)
    shutil.rmtree(store, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "analysis.cli", "build", str(root), str(store),
                    "--jobs", "2", "-q"], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(root)
    if train_notes(store) != n:
        sys.exit(f"{store}: the build did not give {n} train notes")
    return store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVERS = ("s3rver", "moto")


def s3rver_command(workdir: Path) -> list:
    """``node .../s3rver`` from ``WORKDIR/s3rver``, installed there with npm first when it is
    not (the server process is then node itself, the one whose usage is read)."""
    node = shutil.which("node")
    prefix = workdir / "s3rver"
    script = prefix / "node_modules" / ".bin" / "s3rver"
    if not script.exists():
        npm = shutil.which("npm")
        if node is None or npm is None:
            sys.exit("--server s3rver needs Node.js and npm (node and npm on the PATH); "
                     "or run with --server moto")
        print(f"installing s3rver into {prefix}: npm install --prefix {prefix} s3rver@3",
              file=sys.stderr, flush=True)
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "s3rver@3"], check=True, stdout=sys.stderr)
        if not script.exists():
            sys.exit(f"npm installed no {script}")
    if node is None:
        sys.exit("--server s3rver needs Node.js (node on the PATH); or run with --server moto")
    return [node, str(script.resolve())]


class Server:
    """An S3 server (``kind``: ``s3rver`` or ``moto``) in a process of its own on a free
    localhost port, and this process's AWS variables pointing at it (no profile or file of the
    user's read); its log of requests is ``WORKDIR/KIND.log``. :meth:`stop` ends it."""

    def __init__(self, kind: str, workdir: Path):
        self.kind, self.log = kind, workdir / f"{kind}.log"
        self.data = workdir / "s3rver-data" if kind == "s3rver" else None
        port = free_port()
        if kind == "s3rver":
            command = s3rver_command(workdir)
            shutil.rmtree(self.data, ignore_errors=True)
            self.data.mkdir(parents=True)
            # not --silent: its line per response is what the requests are counted in; in
            # colour, as s3rver cuts the colour codes' length off the front of each line
            # (without them, the method and the start of the path go)
            command += ["--directory", str(self.data), "--address", "127.0.0.1",
                        "--port", str(port), "--no-vhost-buckets"]
            env = dict(os.environ, FORCE_COLOR="1")
            key = secret = "S3RVER"  # s3rver's own; it checks the signatures
        else:
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
            env, key, secret = None, "testing", "testing"
        with open(self.log, "w") as log:  # the server writes to its own copy
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        self.pid = self.proc.pid
        try:
            self._wait(port)
        except BaseException:
            self.stop()
            raise
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                     "AWS_SECURITY_TOKEN", "AWS_REGION", "FSSPEC_S3_ENDPOINT_URL",
                     "FSSPEC_S3_KEY", "FSSPEC_S3_SECRET", "FSSPEC_S3"):
            os.environ.pop(name, None)
        nothing = str(Path(tempfile.gettempdir()) / "timbremap-no-aws-config")
        os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                           "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": nothing,
                           "AWS_SHARED_CREDENTIALS_FILE": nothing,
                           "AWS_EC2_METADATA_DISABLED": "true"})
        import s3fs
        s3fs.S3FileSystem.clear_instance_cache()  # none made for another endpoint is reused

    def _wait(self, port: int):
        """Until the server answers HTTP on ``port`` (60 s at most)."""
        import http.client
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"the {self.kind} server stopped at start (exit "
                         f"{self.proc.returncode}): see {self.log}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/")
                connection.getresponse().read()
                connection.close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"the {self.kind} server did not answer within 60 s: "
                             f"see {self.log}")
                time.sleep(0.2)

    def object_file(self, key: str):
        """The file s3rver keeps object ``key`` of the bucket in (None for moto)."""
        if self.data is None:
            return None
        *folders, name = key.split("/")
        path = self.data.joinpath(BUCKET, *folders, f"{name}._S3rver_object")
        return path if path.is_file() else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)  # the copy of the store


def upload(store: Path) -> float:
    """Copies the store's split files to ``s3://bucket/store/``; seconds taken."""
    import s3fs
    fs = s3fs.S3FileSystem()
    start = time.perf_counter()
    fs.mkdir(BUCKET)
    fs.put(str(store) + "/", f"{BUCKET}/store/", recursive=True)
    return time.perf_counter() - start


def server_usage(pid: int) -> dict:
    """The server's CPU seconds so far and its peak and current resident memory (MiB), from
    Linux's ``/proc`` (NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
        return {"cpu_s": cpu, "peak_mib": int(status["VmHWM"].split()[0]) / 1024,
                "rss_mib": int(status["VmRSS"].split()[0]) / 1024}
    except (OSError, KeyError, IndexError, ValueError):
        return {"cpu_s": float("nan"), "peak_mib": float("nan"), "rss_mib": float("nan")}


def reset_peak(pid: int):
    """Start the server's peak resident memory again from its resident memory now (Linux's
    ``/proc/PID/clear_refs``; nothing elsewhere)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def requests_in(log: Path, start: int) -> tuple:
    """GET requests the server logged after byte ``start`` of its log, and the log's end (a
    line per request: werkzeug's for moto, koa-logger's response line for s3rver; their
    colour codes are taken out first)."""
    with open(log, "rb") as fh:
        fh.seek(start)
        text = fh.read()
    return re.sub(rb"\x1b\[[0-9;]*m", b"", text).count(b"GET /"), start + len(text)


def random_batches(path, batches: int, round_: int) -> float:
    from featurestore.reader import SpectraReader
    start = time.perf_counter()
    with SpectraReader(path) as reader:
        rng = np.random.default_rng([0, round_])
        for _ in range(batches):
            reader.batch(rng.integers(0, reader.n, BATCH))
    return batches * BATCH / (time.perf_counter() - start)


def block_batches(path, batches: int, round_: int) -> float:
    from training.data import StoreBatches
    start = time.perf_counter()
    data = StoreBatches(path, BATCH, shuffle=True, steps=batches, seed=round_,
                        mixup_alpha=0.2, loader="block")
    for i in range(len(data)):
        data[i]
    rate = len(data) * BATCH / (time.perf_counter() - start)
    data.close()
    return rate


def one_pass(path, batches: int, round_: int) -> float:
    from featurestore.reader import SpectraReader
    start = time.perf_counter()
    with SpectraReader(path) as reader:
        for _ in reader.iter_batches(PASS_BATCH):
            pass
        n = reader.n
    return n / (time.perf_counter() - start)


READS = {"random batches of 64 (notes one by one)": random_batches,
         "model-ready batches of 64, block order": block_batches,
         "one pass over the split in order": one_pass}


def spread(values) -> str:
    return (f"{np.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"
            if len(values) > 1 else f"{values[0]:,.0f}")


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--notes", type=positive_int, default=3000, help="notes in the train split")
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/remote"))
    parser.add_argument("--batches", type=positive_int, default=160,
                        help="batches of 64 timed (160: about ten of the block order's buffers)")
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--server", choices=SERVERS, default="s3rver",
                        help="the S3 server: s3rver (Node.js, installed into the workdir) or "
                             "moto (reads the whole object for each ranged request)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    store = the_store(args.workdir, args.notes)
    local = store / "train.h5"
    server = Server(args.server, args.workdir)
    try:
        seconds = upload(store)
        after_upload = server_usage(server.pid)
        print(json.dumps({"uploaded_s": round(seconds, 2), "server": after_upload}),
              flush=True)
        from featurestore.reader import SpectraReader
        with SpectraReader(local) as reader:
            note_bytes, shape = reader.note_bytes, reader.shape
        rates = {what: {"disk": [], "server": []} for what in READS}
        usage = {what: {"cpu_s": [], "requests": [], "peak_mib": []} for what in READS}
        copy = server.object_file("store/train.h5")  # s3rver's, on this disk
        if server.kind == "s3rver" and copy is None:
            sys.exit(f"no file of s3rver's for store/train.h5 under {server.data}")
        _, at = requests_in(server.log, 0)
        for round_ in range(args.rounds):
            for what, read in READS.items():
                drop_cached(local)
                rates[what]["disk"].append(read(local, args.batches, round_))
                if copy is not None:
                    drop_cached(copy)
                reset_peak(server.pid)
                before = server_usage(server.pid)["cpu_s"]
                rates[what]["server"].append(read(f"{URL}/train.h5", args.batches, round_))
                now = server_usage(server.pid)
                usage[what]["cpu_s"].append(now["cpu_s"] - before)
                usage[what]["peak_mib"].append(now["peak_mib"])
                count, at = requests_in(server.log, at)
                usage[what]["requests"].append(count)
                print(json.dumps({"round": round_, "what": what,
                                  **{k: round(v[-1], 1) for k, v in rates[what].items()},
                                  "server_cpu_s": round(usage[what]["cpu_s"][-1], 2),
                                  "requests": count,
                                  "server_peak_mib": round(now["peak_mib"])}), flush=True)
    finally:
        server.stop()
    size = local.stat().st_size
    store_bytes = sum(path.stat().st_size for path in store.glob("*.h5"))
    print(f"\n{os.cpu_count()} cores; train split {args.notes:,} notes, "
          f"{size / 2**20:,.0f} MiB; a note {note_bytes / 1024:,.0f} KiB "
          f"({shape[0]} frames x {shape[1]} bins, float16); {args.batches} batches a round, "
          f"{args.rounds} rounds, one thread\n")
    print("| what | disk notes/s | S3 server notes/s | server / disk |")
    print("|---|---:|---:|---:|")
    for what in READS:
        disk, remote = rates[what]["disk"], rates[what]["server"]
        print(f"| {what} | {spread(disk)} | {spread(remote)} | "
              f"{np.median(remote) / np.median(disk):.2f} |")
    print(f"\nthe server ({server.kind}, a process of its own, pid {server.pid}), per round:\n")
    print("| what | GET requests | server CPU s | server CPU ms a note | server peak memory |")
    print("|---|---:|---:|---:|---:|")
    for what in READS:
        notes = args.notes if what.startswith("one pass") else args.batches * BATCH
        cpu = float(np.median(usage[what]["cpu_s"]))
        print(f"| {what} | {np.median(usage[what]['requests']):,.0f} | {cpu:,.2f} | "
              f"{1000 * cpu / notes:,.1f} | {max(usage[what]['peak_mib']):,.0f} MiB |")
    print(f"\nthe upload of the store ({store_bytes / 2**20:,.0f} MiB, train and valid): "
          f"{seconds:,.1f} s, the server's memory {after_upload['peak_mib']:,.0f} MiB at its "
          f"peak, {after_upload['rss_mib']:,.0f} MiB resident after it")
    print(f"\nrerun: python benchmarks/remote.py --notes {args.notes} --batches {args.batches} "
          f"--rounds {args.rounds} --server {args.server} --workdir {args.workdir}")


if __name__ == "__main__":
    sys.exit(main())

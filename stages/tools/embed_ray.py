"""``make embed RAY_ADDRESS=host:port``: the single-host embed's windows, computed by Ray Data.

The corpus is cut into the same windows as a single-host run (``embed._windows``, ``EMBED_WINDOW``
lines each) and each window still to do is one block of a Ray Data pipeline:

    from_items(descriptors)                       one row per window: start line, line count, byte range
      .map_batches(_read_windows)                 a task on the driver's node reads the window's bytes
      .map_batches(EmbedActor, batch_size=1,      an actor pool: opens the bucket models once, embeds the
                   compute=ActorPoolStrategy(n))  window and writes its shard; returns a small status row
    iter_rows()                                   the driver sums the status rows (tqdm), then assembles

Why descriptors and a read op: the driver holds four integers per window (a first pass over the
input finds each window's byte range and skips windows whose shard exists), never the text, so its
memory stays flat for a corpus of any size; ``read_text`` would not keep line numbers or the
windows' bounds. The read tasks are pinned to the driver's node (the input need not be on the
shared folder), take ``num_cpus=0`` (they only read bytes) and at most two run at once, so they
never compete with the actors for the CPUs Ray Data budgets; the text travels to the actors through
the object store, and Ray Data's streaming backpressure keeps only the windows in flight there.

The actors: one per ``NPU`` on ``TARGET=ascend`` (``resources={"NPU": 1}``, ``num_cpus=0``; the card
is device 0 of the set Ray makes visible), one per ``THREADS`` CPUs (at least 1) on ``TARGET=cpu``;
a fixed pool, two windows in flight per actor. Each writes a window's shard in the single-host
format under the shards folder in ``EMBED_SHARED_DIR`` (a folder every node reaches at the same
path: NFS or similar), atomically (temporary name, then rename). ``embed_offline`` does the
settings check, the resume and the assembly; this module only computes missing shards.

Faults: an actor's process killed (or its node lost) is restarted by Ray and the windows it held
are run again (``max_restarts``/``max_task_retries``, set explicitly; Ray Data's defaults are
unbounded); an actor skips a window whose shard exists, so a window done twice writes one file
once. Errors the user must act on (a missing or different file on a node, a window that fails)
come back as status rows and end the run with one line. A driver killed leaves the shards: a
rerun resumes from them.

Ray Data's own budget: ``resource_limits`` are left at the cluster's resources and no op asks
for a CPU it cannot get: the actors hold every CPU of a ``TARGET=cpu`` run, so a read task that
asked for one (the default) on the driver's node would wait for ever; with ``num_cpus=0`` it
runs beside them. ``preserve_order`` is off (shards are named by window). Progress bars and Ray
Data's console logs are off (tqdm shows the windows). ``scheduling_strategy``, ``max_restarts``
and ``max_task_retries`` go through ``ray_remote_args`` (deprecated in 2.60, the only way in the
images' 2.51); the deprecation warning is silenced.

Models reach the nodes by path: the driver copies the bucket models (with their records), the
options and the weights into ``EMBED_SHARED_DIR/.elmo-embed-files/<sha256[:16]>/`` and every actor
checks each file's sha256 when it starts.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from stages.common.errors import StageError
from stages.common.hashing import sha256_file

CONNECT_TIMEOUT_S = 5.0
FILES_FOLDER = ".elmo-embed-files"
IN_FLIGHT_PER_ACTOR = 2
READERS = 2  # read tasks at once (num_cpus=0, on the driver's node)
MAX_RESTARTS = 4


# ---- connecting ---------------------------------------------------------------------------------

def _host_port(address: str) -> Tuple[str, int]:
    if address.startswith("ray://"):
        raise StageError(f"RAY_ADDRESS={address}: Ray Client addresses are not supported; run make embed on a "
                         f"node of the cluster with RAY_ADDRESS=<head host>:<port> (the GCS port, 6379 by default)")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise StageError(f"RAY_ADDRESS={address}: give the head's <host>:<port>, e.g. RAY_ADDRESS=10.0.0.5:6379")
    return host.strip("[]"), int(port)


def connect(address: str):
    """``ray``, joined to the cluster at ``address``; ``StageError`` within about CONNECT_TIMEOUT_S
    when nothing answers there (ray.init itself would retry for minutes)."""
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise StageError(f"RAY_ADDRESS={address}: no Ray head answers there ({exc.strerror or exc}, "
                         f"{CONNECT_TIMEOUT_S:.0f} s timeout); start one with `ray start --head` or leave "
                         f"RAY_ADDRESS unset for a single-host run") from None
    try:
        import ray
    except ImportError:
        raise StageError("RAY_ADDRESS is set but Ray is not installed here: pip install -r requirements.txt "
                         "(or use the runtime image)") from None
    if not ray.is_initialized():
        # Ray core logs each Ray Data actor's start at level E here ("constructor arguments in the
        # object store and max_restarts > 0", ray#53727: they are the driver's, alive as long as the
        # run); the driver's own C++ log stays quiet unless the user asks for it.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                     configure_logging=True, namespace="elmo-embed")
        except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StageError(f"RAY_ADDRESS={address}: could not join the Ray cluster ({first}); make embed "
                             f"must run on a node of the cluster (the head or a `ray start --address` node)") from None
    return ray


# ---- the files every node needs -----------------------------------------------------------------

def _ship(path: Path, sha: str, shared: Path) -> Tuple[str, str]:
    """(path in the shared folder, sha256): ``path`` copied there once (by content), with its
    ``.json`` record when it has one (the .om's manifest)."""
    from stages.common.atomic import atomic_path

    folder = shared / FILES_FOLDER / sha[:16]
    dest = folder / path.name
    for source, target in ((path, dest), (Path(str(path) + ".json"), Path(str(dest) + ".json"))):
        if not source.is_file():
            continue
        if target.is_file() and target.stat().st_size == source.stat().st_size:
            continue
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)  # ais_bench refuses an .om others may write
    return str(dest), sha


def _check_file(path: str, sha: str, node: str) -> Optional[str]:
    if not Path(path).is_file():
        return (f"node {node}: {path} is missing; EMBED_SHARED_DIR must be a folder every node reaches at the "
                f"same path (NFS or similar)")
    got = sha256_file(path)
    if got != sha:
        return f"node {node}: {path} differs from the driver's file (sha256 {got[:12]}, expected {sha[:12]})"
    return None


# ---- the windows --------------------------------------------------------------------------------

def window_ranges(path: Path, size: int) -> Iterator[Tuple[int, int, int, int]]:
    """(first line index, lines, byte offset, byte length) per window of ``size`` lines: the
    windows of ``embed._windows``, located in the file instead of read."""
    start = count = begin = offset = 0
    with Path(path).open("rb") as handle:
        for index, raw in enumerate(handle):
            count += 1
            offset += len(raw)
            if count == size:
                yield start, count, begin, offset - begin
                start, count, begin = index + 1, 0, offset
    if count:
        yield start, count, begin, offset - begin


def window_sentences(text: bytes) -> List[List[str]]:
    """A window's bytes as ``embed._windows`` gives its lines: one token list per line."""
    lines = text.split(b"\n")
    if text.endswith(b"\n"):
        lines.pop()
    return [raw.decode("utf-8").split() for raw in lines]


def _read_windows(batch: dict, path: str) -> dict:
    """Ray Data map op (a task on the driver's node): descriptors in, the windows' bytes added."""
    import numpy as np

    texts = []
    with open(path, "rb") as handle:
        for offset, length in zip(batch["offset"], batch["length"]):
            handle.seek(int(offset))
            texts.append(handle.read(int(length)))
    return {"start": batch["start"], "lines": batch["lines"], "text": np.array(texts, dtype=object)}


# ---- the actor ----------------------------------------------------------------------------------

class EmbedActor:
    """Holds one set of bucket models (opened when a window first needs them) and embeds windows.

    As Ray Data's callable class (``parts`` and ``window`` given), each call takes a batch of
    windows (one, ``batch_size=1``) and returns one status row per window: ``stats`` (``Work.add``'s
    figures as JSON) or ``error``. Errors the user must act on come back as rows (not retried); a
    crash of the process is Ray's to retry."""

    def __init__(self, target: str, models: Dict[int, Tuple[str, str]], options: Tuple[str, str],
                 weights: Tuple[str, str], batch: int, long: str, threads: Optional[int], mode: str,
                 parts: Optional[str] = None, window: Optional[int] = None,
                 prepack: Optional[Dict[int, bool]] = None):
        from stages.tools.embed import LazyRunners, Streamer

        self.mode, self.parts, self.window = mode, parts, window
        self.error = None
        self.node = _node_name()
        for path, sha in [options, weights, *models.values()]:
            self.error = self.error or _check_file(path, sha, self.node)
        if self.error:
            return
        paths = {int(b): Path(p) for b, (p, _) in models.items()}
        try:
            if target == "ascend":
                from stages.backends.ascend.ais_bench import check_host
                from stages.backends.ascend.npu_smi import detect_chips
                from stages.backends.ascend.om_manifest import read_manifest
                from stages.tools.embed_ascend import om_loader

                # This node's chip, not the driver's: a cluster may mix chips, and an .om runs only on
                # the one it was built for (a refusal here is one line; the runtime's is not).
                chips = detect_chips()
                for path in paths.values():
                    check_host(read_manifest(path), path, [0], chips=chips)
                load = om_loader(options[0], [0])  # Ray made the reserved card device 0 of the visible set
            else:
                from stages.tools.embed_models import load_cpu_runners

                def load(subset):  # the driver's plan: packed or not, as a single-host run opens them
                    return load_cpu_runners(subset, threads, prepack=prepack)
            self.runners = LazyRunners(paths, load)
            self.streamer = Streamer(self.runners, batch, options[0], weights[0], long, threads)
        except StageError as exc:
            self.error = f"node {self.node}: {exc}"

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        starts, lines, stats, errors = [], [], [], []
        for start, count, text in zip(batch["start"], batch["lines"], batch["text"]):
            start = int(start)
            try:
                sentences = window_sentences(bytes(text))
                got = self.embed(self.parts, start, self.window, sentences)
            except Exception as exc:  # a bug, a full disk...: one line, not a retry loop
                got = {"error": f"node {self.node}: window at line {start + 1}: {exc!r}"}
            starts.append(start)
            lines.append(int(count))
            errors.append(got.get("error", ""))
            stats.append("" if "error" in got else json.dumps(got))
        return {"start": np.array(starts, dtype=np.int64), "lines": np.array(lines, dtype=np.int64),
                "stats": np.array(stats, dtype=object), "error": np.array(errors, dtype=object)}

    def embed(self, parts: str, start: int, window: int, sentences) -> dict:
        from stages.tools.embed import _shard_name, as_stats, embed_window

        if self.error:
            return {"error": self.error}
        shard = Path(parts) / _shard_name(start, window)
        if shard.is_file():  # done already (a retried window whose first try wrote it): not again
            empty = {"counts": {}, "real_tokens": 0, "computed_tokens": 0, "infer_seconds": 0.0,
                     "torch_load_seconds": 0.0, "wait_seconds": 0.0, "load_seconds": {}, "writing": 0.0}
            return dict(empty, resumed=len(sentences))
        before = as_stats(self.streamer, self.runners, 0.0, 0)
        try:
            writing = embed_window(self.streamer, shard, start, sentences, self.mode)
        except StageError as exc:
            return {"error": f"node {self.node}: {exc}"}
        after = as_stats(self.streamer, self.runners, writing, 0)
        delta = {k: after[k] - before[k] for k in ("real_tokens", "computed_tokens", "infer_seconds",
                                                   "torch_load_seconds", "wait_seconds")}
        delta["counts"] = {k: v - before["counts"].get(k, 0) for k, v in after["counts"].items()}
        load = after["load_seconds"]
        delta["load_seconds"] = {b: s for b, s in load.items() if b not in before["load_seconds"]}
        return dict(delta, writing=writing, resumed=0)

    def ping(self) -> dict:
        return {"node": self.node, "pid": os.getpid(), "error": self.error}


def _node_name() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (tests of the actor alone)
        return socket.gethostname()


# ---- the driver ---------------------------------------------------------------------------------

def _quiet_data(ray):
    """Ray Data's context for this run: no progress bars or console logs, no order kept."""
    import logging

    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False  # the shards are named by window: any order
    context.execution_options.verbose_progress = False
    for name in ("ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return ray.data


class RayEngine:
    """``embed_offline``'s ``cluster``: computes the missing shards on the Ray cluster at ``address``."""

    def __init__(self, address: str, *, target: str, options, weights, weights_sha256: str, batch: int,
                 long: str, mode: str, threads: Optional[int], progress: bool = True,
                 prepack: Optional[Dict[int, bool]] = None):
        self.address, self.target = address, target
        self.options, self.weights, self.weights_sha256 = Path(options), Path(weights), weights_sha256
        self.batch, self.long, self.mode, self.threads, self.progress = batch, long, mode, threads, progress
        self.prepack = prepack
        self.ray = connect(address)
        try:
            import ray.data  # noqa: F401  (pandas, pyarrow: before minutes of building, not after)
        except ImportError as exc:
            raise StageError(f"RAY_ADDRESS is set but Ray Data cannot be imported here ({exc}): pip install "
                             f"'ray[data]=={self.ray.__version__}' on the driver and every node") from None
        resources = self.ray.cluster_resources()
        if target == "ascend":
            self.actors_wanted = int(resources.get("NPU", 0))
            if self.actors_wanted < 1:
                have = ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items())
                                 if not k.startswith(("node:", "memory", "object_store")))
                raise StageError(f"RAY_ADDRESS={address}: the cluster has no NPU resource ({have}); TARGET=ascend "
                                 f"needs NPU workers: `ray start --address={address}` on an NPU host (Ray detects "
                                 f"the cards), or TARGET=cpu")
            self.actor_options = dict(num_cpus=0, resources={"NPU": 1})
        else:
            cpus = max(int(threads or 1), 1)
            self.actors_wanted = max(int(resources.get("CPU", 0) // cpus), 1)
            self.actor_options = dict(num_cpus=cpus)

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()

    def dataset(self, input_path: Path, todo: List[dict], actor_args: tuple, parts: Path, window: int):
        """The pipeline: descriptors, read on the driver's node, embedded by the actor pool."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        data = _quiet_data(self.ray)
        here = NodeAffinitySchedulingStrategy(self.ray.get_runtime_context().get_node_id(), soft=False)
        return (data.from_items(todo, override_num_blocks=len(todo))
                .map_batches(_read_windows, batch_size=1, batch_format="numpy", fn_kwargs={"path": str(input_path)},
                             compute=data.TaskPoolStrategy(size=READERS), num_cpus=0, scheduling_strategy=here)
                .map_batches(EmbedActor, batch_size=1, batch_format="numpy",
                             fn_constructor_args=(*actor_args, str(parts), window, self.prepack),
                             compute=data.ActorPoolStrategy(size=self.actors_wanted,
                                                            max_tasks_in_flight_per_actor=IN_FLIGHT_PER_ACTOR),
                             max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS, **self.actor_options))

    def __call__(self, *, input_path, parts: Path, window: int, settings: dict, models: Dict[int, Path]):
        from tqdm import tqdm

        from stages.tools.embed import Work, _shard_name

        shared = parts.parent
        shipped = {int(b): _ship(Path(p), settings["models"][str(b)], shared) for b, p in models.items()}
        options = _ship(self.options, sha256_file(self.options), shared)
        weights = _ship(self.weights, self.weights_sha256, shared)
        work = Work(models)
        bar = tqdm(unit="sent", desc="embed (ray data)", disable=None if self.progress else True)
        todo = []
        for start, lines, offset, length in window_ranges(Path(input_path), window):
            if (parts / _shard_name(start, window)).is_file():
                work.resumed += lines
                bar.update(lines)
            else:
                todo.append({"start": start, "lines": lines, "offset": offset, "length": length})
        if not todo:
            bar.close()
            return work
        actor_args = (self.target, shipped, options, weights, self.batch, self.long, self.threads, self.mode)
        with warnings.catch_warnings():  # scheduling_strategy, max_restarts...: still ray_remote_args in 2.51
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = self.dataset(Path(input_path), todo, actor_args, parts, window)
        rows = iter(dataset.iter_rows())
        try:
            while True:
                try:
                    row = next(rows)
                except StopIteration:
                    break
                except Exception as exc:  # a task or actor past its retries, the cluster lost...
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    raise StageError(f"RAY_ADDRESS={self.address}: the embedding on the cluster failed "
                                     f"({type(exc).__name__}: {first[:300]}); the shards written so far are "
                                     f"kept, rerun to resume") from None
                if row["error"]:
                    raise StageError(str(row["error"]))
                work.add(json.loads(row["stats"]))
                bar.update(int(row["lines"]))
        finally:
            bar.close()
        return work

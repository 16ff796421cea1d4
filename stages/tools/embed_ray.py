"""``make embed RAY_ADDRESS=host:port``: the single-host embed's windows, computed by Ray actors.

The corpus is cut into the same windows as a single-host run (``embed._windows``); the driver sends
each window's token lists to an actor that holds the bucket models (opened once per actor, as
needed), and the actor writes the window's shard, in the single-host format and atomically, into
the shards folder under ``EMBED_SHARED_DIR`` (a folder every node reaches at the same path: NFS or
similar). The driver then assembles the output exactly as a single-host run does (``embed_offline``
does the settings check, the resume and the assembly; this module only computes missing shards).

Ray core, not Ray Data: one actor per ``NPU`` on ``TARGET=ascend`` (``resources={"NPU": 1}``, the
card is device 0 of the set Ray makes visible), one per ``THREADS`` CPUs (at least 1) on
``TARGET=cpu``. The driver keeps two windows in flight per actor and reads the input lazily, so a
corpus of any size holds only those windows in memory. Faults: an actor's process killed (or its
node lost) is restarted by Ray (``max_restarts``) and its windows are retried (``max_task_retries``);
an actor gone for good has its windows sent to the others. A shard is named by its window, written
under a temporary name and renamed, and an actor skips a window whose shard exists, so a window
done twice writes one file once. A driver killed leaves the shards: a rerun resumes from them.

Models reach the nodes by path: the driver copies the bucket models (with their records), the
options and the weights into ``EMBED_SHARED_DIR/.elmo-embed-files/<sha256[:16]>/`` and every actor
checks each file's sha256 when it starts.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from collections import deque
from pathlib import Path
from typing import Dict, Optional, Tuple

from stages.common.errors import StageError
from stages.common.hashing import sha256_file

CONNECT_TIMEOUT_S = 5.0
FILES_FOLDER = ".elmo-embed-files"
IN_FLIGHT_PER_ACTOR = 2
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


# ---- the actor ----------------------------------------------------------------------------------

class EmbedActor:
    """Holds one set of bucket models (opened when a window first needs them) and embeds windows.

    Errors the user must act on come back as ``{"error": line}`` (not retried); a crash of the
    process is Ray's to retry."""

    def __init__(self, target: str, models: Dict[int, Tuple[str, str]], options: Tuple[str, str],
                 weights: Tuple[str, str], batch: int, long: str, threads: Optional[int], mode: str):
        from stages.tools.embed import LazyRunners, Streamer

        self.mode = mode
        self.error = None
        self.node = _node_name()
        for path, sha in [options, weights, *models.values()]:
            self.error = self.error or _check_file(path, sha, self.node)
        if self.error:
            return
        paths = {int(b): Path(p) for b, (p, _) in models.items()}
        try:
            if target == "ascend":
                from stages.tools.embed_ascend import om_loader

                load = om_loader(options[0], [0])  # Ray made the reserved card device 0 of the visible set
            else:
                from stages.tools.embed_models import load_cpu_runners

                def load(subset):
                    return load_cpu_runners(subset, threads)
            self.runners = LazyRunners(paths, load)
            self.streamer = Streamer(self.runners, batch, options[0], weights[0], long, threads)
        except StageError as exc:
            self.error = f"node {self.node}: {exc}"

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

class RayEngine:
    """``embed_offline``'s ``cluster``: computes the missing shards on the Ray cluster at ``address``."""

    def __init__(self, address: str, *, target: str, options, weights, weights_sha256: str, batch: int,
                 long: str, mode: str, threads: Optional[int], progress: bool = True):
        self.address, self.target = address, target
        self.options, self.weights, self.weights_sha256 = Path(options), Path(weights), weights_sha256
        self.batch, self.long, self.mode, self.threads, self.progress = batch, long, mode, threads, progress
        self.ray = connect(address)
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

    def __call__(self, *, input_path, parts: Path, window: int, settings: dict, models: Dict[int, Path]):
        from tqdm import tqdm

        from stages.tools.embed import Work, _shard_name, _windows

        ray = self.ray
        shared = parts.parent
        shipped = {int(b): _ship(Path(p), settings["models"][str(b)], shared) for b, p in models.items()}
        options = _ship(self.options, sha256_file(self.options), shared)
        weights = _ship(self.weights, self.weights_sha256, shared)
        actor_class = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(EmbedActor)
        actors = [actor_class.options(**self.actor_options).remote(
            self.target, shipped, options, weights, self.batch, self.long, self.threads, self.mode)
            for _ in range(self.actors_wanted)]
        work = Work(models)
        slots = deque(i for _ in range(IN_FLIGHT_PER_ACTOR) for i in range(len(actors)))
        in_flight: dict = {}
        dead: set = set()
        retry: deque = deque()
        windows = _windows(Path(input_path), window)
        exhausted = False
        bar = tqdm(unit="sent", desc="embed (ray)", disable=None if self.progress else True)
        try:
            while True:
                while slots and (retry or not exhausted):
                    if slots[0] in dead:
                        slots.popleft()
                        continue
                    if retry:
                        start, sentences = retry.popleft()
                    else:
                        start, sentences = next(windows, (None, None))
                        if start is None:
                            exhausted = True
                            break
                        if (parts / _shard_name(start, window)).is_file():
                            work.resumed += len(sentences)
                            bar.update(len(sentences))
                            continue
                    index = slots.popleft()
                    ref = actors[index].embed.remote(str(parts), start, window, sentences)
                    in_flight[ref] = (index, start, sentences)
                if not in_flight:
                    if retry or not exhausted:  # every actor gone with work left
                        raise StageError(f"RAY_ADDRESS={self.address}: every embedding actor died (past "
                                         f"{MAX_RESTARTS} restarts each); the shards written so far are kept, "
                                         f"rerun to resume")
                    break
                (ref,), _ = ray.wait(list(in_flight), num_returns=1)
                index, start, sentences = in_flight.pop(ref)
                try:
                    stats = ray.get(ref)
                except ray.exceptions.RayActorError:  # gone past its restarts: its windows go elsewhere
                    dead.add(index)
                    retry.append((start, sentences))
                    continue
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    raise StageError(f"window at line {start + 1} failed on the cluster: {cause!r}") from None
                if "error" in stats:
                    raise StageError(stats["error"])
                work.add(stats)
                slots.append(index)
                bar.update(len(sentences))
        finally:
            bar.close()
            for actor in actors:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # the cluster is gone already: nothing left to stop
                    pass
        return work

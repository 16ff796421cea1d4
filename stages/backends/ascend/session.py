"""Runners over .om files for ``embed``: in-process through ais_bench's Python API, else its CLI.

Both have the runner interface of ``stages.backends.runners``: ``infer({"input": int32 [B, W, 50]})
-> {"output": float32 [B, ...]}`` for any B >= 1, whatever batch sizes the .om was built with.

- ``api``: ``ais_bench.infer.interface.InferSession`` (2022-11 on), one session per device in
  DEVICES for each .om. How a dynamic-batch .om gets its batch differs by release
  (docs/ascend-releases.md): 2024 on have ``infer(mode="dymbatch")``, which takes the batch from the
  input's shape, while their ``mode="static"`` resets it; 2022-11 knows no ``dymbatch`` and runs any
  mode as is, so ``set_dynamic_batchsize(n)`` comes first. ``free_resource()`` (2024 on) unloads the
  model at exit.
- ``cli``: where the API cannot be imported in this Python (the 2022-09 ``ais_infer.py`` has none),
  each batch is written as one ``.bin`` per row into a private folder and run by
  ``ais_bench.run_inference``, which drives the installed tool on every device at once. It starts the
  tool and loads the model for every batch: correct, but far slower than the API.
"""
from __future__ import annotations

import atexit
import importlib
import importlib.metadata
import queue
import shutil
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from stages.common.errors import StageError

API_MODULE = "ais_bench.infer.interface"


# ---- which way this host runs an .om ------------------------------------------------------------

@dataclass(frozen=True)
class Runtime:
    """How the .om files will run here: ``way`` is ``api`` or ``cli``; ``record`` goes into the manifest."""

    way: str
    release: str
    session_class: object = None  # the API's InferSession
    why: str = ""  # why not the API

    def record(self) -> dict:
        out = {"runtime": self.way, "release": self.release}
        if self.why:
            out["runtime_why"] = self.why
        return out


def _distribution(module: str) -> str:
    """The installed distribution that provides ``module`` (msit ships ais_bench as ait-benchmark)."""
    try:
        names = importlib.metadata.packages_distributions().get(module, [])
        return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)
    except Exception:  # a broken metadata folder must not stop a run; the record just says less
        return ""


def api_release(session_class) -> str:
    """What the installed InferSession is, from its distribution and the methods each release has."""
    timing = "summary()" if hasattr(session_class, "summary") else "sumary()"
    free = "free_resource()" if hasattr(session_class, "free_resource") else "no free_resource()"
    return f"{_distribution('ais_bench') or 'ais_bench (no distribution record)'}: InferSession with {timing}, {free}"


def find_runtime() -> Runtime:
    """The API when ``ais_bench.infer.interface`` imports in this Python, else the CLI (``ais_tool``)."""
    try:
        module = importlib.import_module(API_MODULE)
        return Runtime("api", api_release(module.InferSession), session_class=module.InferSession)
    except ImportError as exc:
        why = f"{API_MODULE} does not import in this Python ({exc})"
    from stages.backends.ascend.ais_tool import check_drivable, discover

    try:
        tool = discover()
    except StageError as exc:
        raise StageError(f"{why}, and no ais_bench command line either: {exc}") from None
    check_drivable(tool)
    release = tool.release + (f", {tool.version}" if tool.version else "")
    return Runtime("cli", release, why=why)


# ---- batches ---------------------------------------------------------------------------------

def plan(rows: int, gears: Sequence[int]) -> List[Tuple[int, int, int]]:
    """(first row, rows, batch to run them at) covering ``rows``: the largest gear while more rows
    are left than it holds, then the smallest gear that holds the rest (padded with empty rows)."""
    gears = sorted(gears)
    out, start = [], 0
    while rows - start > gears[-1]:
        out.append((start, gears[-1], gears[-1]))
        start += gears[-1]
    left = rows - start
    if left:
        out.append((start, left, next(g for g in gears if g >= left)))
    return out


def split_rows(rows: int, parts: int) -> List[Tuple[int, int]]:
    """(start, stop) of ``parts`` near-equal consecutive shares of ``rows``; empty shares dropped."""
    size, extra = divmod(rows, parts)
    out, start = [], 0
    for index in range(parts):
        stop = start + size + (1 if index < extra else 0)
        if stop > start:
            out.append((start, stop))
        start = stop
    return out


# ---- one thread per device -------------------------------------------------------------------

class DeviceWorkers:
    """One worker thread per NPU device; everything on a device (opening its sessions, running them,
    freeing them) happens on that thread.

    ACL binds a device context to the thread that made it, so a session is only ever used from the
    thread that opened it. The threads are daemons fed by queues (not a ThreadPoolExecutor, which
    refuses work once the interpreter starts shutting down), so ``close`` can still free the
    sessions from an ``atexit`` hook.
    """

    def __init__(self, devices: Sequence[int]):
        self.devices = list(devices)
        self._queues: Dict[int, queue.Queue] = {}
        for device in self.devices:
            jobs: queue.Queue = queue.Queue()
            self._queues[device] = jobs
            threading.Thread(target=self._serve, args=(jobs,), name=f"npu{device}", daemon=True).start()

    @staticmethod
    def _serve(jobs: queue.Queue) -> None:
        while True:
            future, fn, args = jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the caller, who raises it
                    future.set_exception(exc)

    def submit(self, device: int, fn: Callable, *args) -> Future:
        future: Future = Future()
        self._queues[device].put((future, fn, args))
        return future

    def on_each(self, fn: Callable, *args) -> Dict[int, object]:
        """``fn(device, *args)`` on every device at once; the results by device."""
        futures = {d: self.submit(d, fn, d, *args) for d in self.devices}
        return {d: f.result() for d, f in futures.items()}


# ---- the API runner --------------------------------------------------------------------------

def _failed(device: int, om: Path, exc: BaseException) -> StageError:
    text = str(exc).strip().splitlines()
    return StageError(f"ais_bench InferSession on NPU device {device} failed with {om.name} "
                      f"({type(exc).__name__}: {text[-1] if text else 'no message'}); see the tool's "
                      f"[ERROR] lines above and check the device with npu-smi info; if the .om is damaged, delete it "
                      f"and rerun make embed")


class _DeviceSession:
    """One InferSession of one .om on one device; used only from that device's worker thread."""

    def __init__(self, session_class, device: int, om: Path, gears: List[int], dynamic: bool):
        self.device, self.om, self.gears, self.dynamic = device, om, gears, dynamic
        try:
            self.session = session_class(device, str(om))
        except Exception as exc:  # the API raises RuntimeError/ValueError/TypeError from C++ and its checks
            raise _failed(device, om, exc) from None
        modes = getattr(self.session, "infer_mode_switch", None)
        if not dynamic:
            self.style = "static"
        elif modes is None:
            self.style = "set_dynamic_batchsize"  # 2022-11: `static` leaves a chosen batch alone
        elif "dymbatch" in modes:
            self.style = "dymbatch"
        else:
            raise StageError(f"the installed {API_MODULE} knows infer modes {', '.join(sorted(modes))} but not "
                             f"dymbatch, so it cannot run the dynamic-batch {om.name}; update ais_bench")
        self._batch = None

    def run(self, ids: np.ndarray) -> np.ndarray:
        outputs = []
        for start, rows, gear in plan(len(ids), self.gears):
            chunk = ids[start:start + rows]
            if gear > rows:  # empty rows never touch real ones: each sentence is its own sequence
                chunk = np.concatenate([chunk, np.zeros((gear - rows,) + chunk.shape[1:], dtype=chunk.dtype)])
            outputs.append(self._infer(np.ascontiguousarray(chunk), gear)[:rows])
        return np.concatenate(outputs)

    def _infer(self, chunk: np.ndarray, gear: int) -> np.ndarray:
        try:
            if self.style == "dymbatch":
                result = self.session.infer([chunk], mode="dymbatch")
            else:
                if self.style == "set_dynamic_batchsize" and self._batch != gear:
                    self.session.set_dynamic_batchsize(gear)
                    self._batch = gear
                result = self.session.infer([chunk], mode="static")
        except Exception as exc:
            raise _failed(self.device, self.om, exc) from None
        output = np.asarray(result[0], dtype=np.float32)
        if output.shape[0] != gear:
            raise StageError(f"ais_bench returned {output.shape[0]} rows for a batch of {gear} from {self.om.name} "
                             f"on NPU device {self.device}; delete {self.om} and rerun make embed")
        return output

    def close(self) -> None:
        free = getattr(self.session, "free_resource", None)  # 2024 on; older releases unload at exit
        if free is not None:
            try:
                free()
            except Exception:  # already gone at shutdown: nothing left to free
                pass


@dataclass
class ApiRunner:
    """One .om on every device of ``workers``: each call's rows are split evenly across the devices,
    which run their share at the same time.

    The streamer hands over one batch and waits for it, so whole batches sent round-robin would keep
    only one device busy at a time; splitting the rows keeps them all busy, at the cost of padding
    each share up to its own batch size."""

    workers: DeviceWorkers
    session_class: object
    om: Path
    gears: List[int]
    dynamic: bool
    name: str
    sessions: Dict[int, _DeviceSession] = field(default_factory=dict)

    def __post_init__(self):
        self.sessions = self.workers.on_each(self._open)
        atexit.register(self.close)

    def _open(self, device: int) -> _DeviceSession:
        return _DeviceSession(self.session_class, device, self.om, self.gears, self.dynamic)

    def infer(self, inputs) -> dict:
        ids = np.ascontiguousarray(inputs["input"], dtype=np.int32)
        shares = split_rows(len(ids), len(self.workers.devices))
        futures = [self.workers.submit(device, self.sessions[device].run, ids[start:stop])
                   for device, (start, stop) in zip(self.workers.devices, shares)]
        return {"output": np.concatenate([f.result() for f in futures])}

    def close(self) -> None:
        sessions, self.sessions = self.sessions, {}
        for future in [self.workers.submit(d, s.close) for d, s in sessions.items()]:
            future.result()


# ---- the CLI runner --------------------------------------------------------------------------

class CliRunner:
    """One .om run by the installed ais_bench command line (``ais_bench.run_inference``, every
    device at once). Each call's rows become ``<row>.bin`` files (int32 [1, W, 50]) in a new folder
    under a private working folder made to ais_bench's path rules (``tool_paths``); the outputs
    ``<row>_0.bin`` are read back and the folder removed."""

    def __init__(self, om: Path, devices: Sequence[int], out_shape: Tuple[int, ...], name: str):
        from stages.backends.ascend.tool_paths import check_safe

        self.om, self.devices, self.out_shape, self.name = Path(om), list(devices), tuple(out_shape), name
        self.work = check_safe(tempfile.mkdtemp(prefix="elmo-embed-ais-"), "TMPDIR")
        self.calls = 0
        atexit.register(self.close)

    def infer(self, inputs) -> dict:
        from stages.backends.ascend.ais_bench import run_inference
        from stages.backends.ascend.tool_paths import private_dir

        ids = np.ascontiguousarray(inputs["input"], dtype=np.int32)
        self.calls += 1
        call = self.work / f"call{self.calls}"
        folder = private_dir(call / "in")
        try:
            for row in range(len(ids)):
                path = folder / f"{row:06d}.bin"
                ids[row:row + 1].tofile(str(path))
                path.chmod(0o640)  # ais_bench refuses inputs others may write
            # Its opener checked the om's chip and the devices against the host (embed, locate) once.
            run_inference(self.om, folder, call / "out", devices=self.devices, host_checked=True)
            rows = [self._read(call / "out" / f"{row:06d}_0.bin") for row in range(len(ids))]
        finally:
            shutil.rmtree(str(call), ignore_errors=True)
        return {"output": np.stack(rows)}

    def _read(self, path: Path) -> np.ndarray:
        data = np.fromfile(str(path), dtype=np.float32)
        if data.size != int(np.prod(self.out_shape)):
            raise StageError(f"{path.name}: ais_bench wrote {data.size} floats for {self.om.name}, expected "
                             f"{'x'.join(map(str, self.out_shape))}; delete {self.om} and rerun make embed")
        return data.reshape(self.out_shape)

    def close(self) -> None:
        shutil.rmtree(str(self.work), ignore_errors=True)


def open_runner(runtime: Runtime, om: Path, manifest: dict, *, devices: Sequence[int], out_shape, name: str,
                workers: DeviceWorkers = None):
    """The runner for one .om (``manifest``: its ``elmo-om-manifest/1`` record); the API runner
    needs the ``workers`` of ``devices``."""
    from stages.backends.ascend.om_manifest import is_dynamic
    from stages.backends.ascend.tool_paths import check_safe, not_writable_by_others

    om = check_safe(om, "ARTIFACTS")  # the rules recent releases apply to the om, API and CLI alike
    not_writable_by_others(om)
    if runtime.way == "cli":
        return CliRunner(om, devices, out_shape, f"{name} (ais_bench cli)")
    dynamic = is_dynamic(manifest)
    gears = sorted(int(b) for b in manifest["batch_sizes"]) if dynamic else [int(manifest["input_shape"][0])]
    return ApiRunner(workers, runtime.session_class, om, gears, dynamic, f"{name} (ais_bench api)")

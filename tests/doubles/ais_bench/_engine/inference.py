# TEST DOUBLE support: one inference run of an ais_infer / ais_bench release, as that release
# does it. Not the real tool: the "NPU" is onnxruntime on the CPU (model.py).
#
# The flow and its messages follow the releases' own main() (sources in each release file and
# in ../README.md): open the device and load the om, make the output folder the release's way,
# warm up, read the inputs into batches, run each batch --loop times, write the outputs, then the
# performance summary (log lines and JSON). Every time is measured here (CPU wall clock).
from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import sys
import time

import numpy as np

from . import pathcheck
from .model import Session

logger = logging.getLogger("ais_bench")

PURE = "pure_infer_data"
PADDING = "padding_infer_fake_file"
INPUT_EXTS = (".npy", ".NPY", ".bin", ".BIN")
MAX_DIR_FILES = 100000  # master-2025's MAX_FILE_LOAD_COUNT
NPU_INPUTS = 1  # the fake om has one input


# ---- inputs ---------------------------------------------------------------------------------

def _natural_key(text):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"([0-9]+)", text)]


def _split(items, n, padding):
    for start in range(0, len(items), n):
        chunk = items[start:start + n]
        yield chunk + [padding] * (n - len(chunk))


def _check_input_parameter(style, inputs):
    if not inputs:
        logger.error("Invalid args. Input args are empty")
        raise RuntimeError()
    if os.path.isfile(inputs[0]):
        for index, path in enumerate(inputs):
            real = os.readlink(path) if os.path.islink(path) else path
            if not os.path.isfile(real):
                if style == "2022":
                    logger.error(f"Invalid args. file_path:{path} realpath:{real} not exist")
                else:
                    logger.error(f"Invalid input args.--input:{inputs} input[{index}]:{path} {real} not exist")
                raise RuntimeError()
    elif os.path.isdir(inputs[0]):
        if len(inputs) != NPU_INPUTS:
            logger.error(f"Invalid args. args input dir num:{len(inputs)} not equal to model inputs num:{NPU_INPUTS}")
            raise RuntimeError()
        for path in inputs:
            real = os.readlink(path) if os.path.islink(path) else path
            if not os.path.isdir(real):
                logger.error(f"Invalid args. {real} of input args is not a real dir path")
                raise RuntimeError()
    else:
        logger.error(f"Invalid args. {inputs[0]}  of --input is invalid")
        raise RuntimeError()


def _dir_files(release, folder):
    files = []
    if release.checks is None:
        if not os.path.exists(folder):
            logger.error(f"dir:{folder} not exist")
            raise RuntimeError()
        files = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(INPUT_EXTS)]
        if not files:
            logger.error(f"not find valid [*.npy *.NPY *.bin *.BIN] files:{files}")
            raise RuntimeError()
    else:
        for name in os.listdir(folder):
            if release.checks == "master-2025" and len(files) > MAX_DIR_FILES:
                raise OverflowError(f"file count under directory: {folder} is over {MAX_DIR_FILES}!")
            path = os.path.join(folder, name)
            if pathcheck.check_dir_entry(release.checks, path):
                continue
            if name.endswith(INPUT_EXTS):
                files.append(path)
        if not files:
            logger.error(f"{folder} of input args not find valid file,valid file format:[*.npy *.NPY *.bin *.BIN]")
            raise RuntimeError()
    files.sort()
    return files if release.sort == "plain" else sorted(files, key=_natural_key)


def _datasize(path):
    return np.load(path).nbytes if path.endswith((".npy", ".NPY")) else os.path.getsize(path)


def _infileslist(release, o, session):
    """Batches; each a list (one per model input) of the files that make it up."""
    if o.input is None:
        return [[[PURE] for _ in range(NPU_INPUTS)]]
    inputs = o.input.split(",")
    if release.input_check:
        _check_input_parameter(release.input_check, inputs)
    padding = PADDING if release.runcount == "ceil" else None
    if os.path.isfile(inputs[0]):
        fileslist = list(_split(inputs, len(inputs) // NPU_INPUTS, padding))
    elif os.path.isdir(inputs[0]) and len(inputs) == NPU_INPUTS:
        fileslist = [_dir_files(release, folder) for folder in inputs]
    else:
        logger.error(f"create intensors list filelists:{len(inputs)} intensorcont:{NPU_INPUTS} error create")
        raise RuntimeError()
    filesize, tensorsize = _datasize(fileslist[0][0]), session.realsize
    if filesize == 0 or tensorsize % filesize != 0:
        logger.error(f"arg0 tensorsize: {tensorsize} filesize: {filesize} not match")
        raise RuntimeError()
    per_batch = tensorsize // filesize
    count = len(fileslist[0])
    runcount = math.ceil(count / per_batch) if release.runcount == "ceil" else count // per_batch
    logger.info(f"get filesperbatch files0 size:{filesize} tensor0size:{tensorsize} filesperbatch:{per_batch} "
                f"runcount:{runcount}")
    chunks = [list(_split(files, per_batch, padding)) for files in fileslist]
    batches = [[chunks[j][i] for j in range(NPU_INPUTS)] for i in range(runcount)]
    if not batches:
        logger.error(f"create_infileslist_from_fileslist return infileslist size: {len(batches)}")
        raise RuntimeError()
    return batches


def _pure_bytes(size, kind):
    if kind == "random":
        return np.random.randint(0, 256, size=size, dtype=np.uint8).tobytes()
    return bytes(size)


def _read(release, path):
    if path.endswith((".npy", ".NPY")):
        return np.ascontiguousarray(np.load(path)).tobytes()
    if release.checks:
        with pathcheck.checked_open(release.checks, path, "rb", pathcheck.NORMAL_FILE_MAX) as handle:
            return handle.read()
    with open(path, "rb") as handle:
        return handle.read()


def _batch_array(release, o, session, files):
    parts = []
    for path in files:
        if path == PURE:
            parts.append(_pure_bytes(session.realsize, o.pure_data_type))
        elif path == PADDING:
            parts.append(_read(release, files[0]))
        elif path is None or not os.path.exists(path):
            logger.error(f"filepath:{path} not valid")
            raise RuntimeError()
        else:
            parts.append(_read(release, path))
    data = b"".join(parts)
    if (release.host_size_check or len(parts) > 1) and len(data) != session.realsize:
        logger.error(f"ndata size:{len(data)} not match {session.realsize}")
        raise RuntimeError()
    return session.check_input(data)


# ---- outputs ------------------------------------------------------------------------------

def _output_prefix(release, o, index=0, devices=None):
    if o.output is None:
        return None
    name = o.output_dirname if o.output_dirname is not None else time.strftime("%Y_%m_%d-%H_%M_%S")
    prefix = os.path.join(o.output, name)
    if devices is not None and len(devices) > 1:
        prefix = os.path.join(prefix, f"device{devices[index]}_{index}")
    if release.output_dir == "mkdir":
        os.mkdir(prefix, 0o755)
    elif release.output_dir == "makedirs":
        if not os.path.exists(prefix):
            os.makedirs(prefix, 0o755)
    elif release.output_dir == "makedirs-chmod":
        if not os.path.exists(prefix):
            os.makedirs(prefix, 0o750)
        os.chmod(o.output, 0o750)
    elif release.output_dir == "makedirs-safe":
        if not os.path.exists(prefix):
            pathcheck.makedirs_safe(prefix, 0o750)
        else:
            pathcheck.check_existing_output_dir(release.checks, prefix)
    else:
        raise ValueError(release.output_dir)
    logger.info(f"output path:{prefix}")
    return prefix


def _open_out(release, path, append=False):
    if release.checks:
        return pathcheck.checked_open(release.checks, path, "wb")
    return open(path, "ab" if append else "wb")


def _write(release, path, array, fmt):
    if fmt == "NPY":
        with _open_out(release, path) as handle:
            np.save(handle, array)
    elif fmt == "TXT":
        rows = array.reshape(-1, array.shape[-1])
        number = "%f" if rows.dtype in (np.float16, np.float32, np.float64) else "%d"
        with _open_out(release, path, append=release.txt_append) as handle:
            for row in rows:
                np.savetxt(handle, np.c_[row], fmt=number, newline=" ")
                handle.write(b"\n")
    else:
        with _open_out(release, path) as handle:
            array.tofile(handle)


def _save(release, o, prefix, outputs, files, index, summary):
    per_batch = len(files[0])
    samples = list(zip(*files))  # per sample: its file for each model input
    axis = o.output_batchsize_axis
    dropped = os.environ.get("FAKE_AIS_DROP_OUTPUT")
    for i, out in enumerate(outputs):
        out = np.asarray(out)
        if axis >= out.ndim:
            logger.error(f"error i:{i} ndata.shape:{out.shape} len:{out.ndim} <= output_batchsize_axis:{axis}  "
                         f"is invalid")
            raise RuntimeError()
        if per_batch != 1 and out.shape[axis] % per_batch != 0:
            logger.error(f"save out files error array shape:{out.shape} filesinfo:{files} "
                         f"files_count_perbatch:{per_batch} ndata.shape{axis}:{out.shape[axis]}")
            raise RuntimeError()
        parts = np.array_split(out, per_batch, axis)
        for j in range(per_batch):
            sample_id = index * per_batch + j
            first = samples[j][0]
            if release.naming == "stem":
                if first == PADDING:
                    continue
                stem = os.path.basename(first).split(".")[0]
                name = f"{stem}_{i}.{o.outfmt.lower()}"
            else:
                stem = os.path.basename(first or "").split(".")[0]
                name = f"sample_id_{sample_id}_output_{i}.{o.outfmt.lower()}"
            path = os.path.join(prefix, name)
            entry = summary.files.setdefault(sample_id, {"infiles": [], "outfiles": []})
            if not entry["infiles"]:
                entry["infiles"] = list(samples[j])
            entry["outfiles"].append(path)
            if dropped is not None and stem == dropped:  # FAKE_AIS_DROP_OUTPUT: a lost file
                continue
            _write(release, path, parts[j], o.outfmt)


# ---- timings and summary ----------------------------------------------------------------

class Summary:
    def __init__(self):
        self.files = {}
        self.reset()

    def reset(self):
        self.h2d, self.d2h, self.npu = [], [], []


def _stats(values, extras):
    block = {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0}
    if values:
        block = {"min": float(np.min(values)), "max": float(np.max(values)), "mean": float(np.mean(values)),
                 "median": float(np.median(values)), "percentile(99%)": float(np.percentile(values, 99))}
    if extras:
        block["count"] = len(values)
    return block


def _report(release, o, summary, prefix):
    npu = _stats(summary.npu, release.summary_extras)
    h2d = _stats(summary.h2d, release.summary_extras)
    d2h = _stats(summary.d2h, release.summary_extras)
    throughput = 0 if npu["mean"] == 0 else 1000 * o.batchsize / npu["mean"]
    line = "{name} (ms): min = {min}, max = {max}, mean = {mean}, median = {median}, percentile(99%) = {p99}"
    logger.info("-----------------Performance Summary------------------")
    if release.all_latency or o.display_all_summary:
        logger.info(line.format(name="H2D_latency", p99=h2d["percentile(99%)"], **h2d))
    logger.info(line.format(name="NPU_compute_time", p99=npu["percentile(99%)"], **npu))
    if release.all_latency or o.display_all_summary:
        logger.info(line.format(name="D2H_latency", p99=d2h["percentile(99%)"], **d2h))
    logger.info(release.throughput_line.format(batch=o.batchsize, mean=npu["mean"], value=throughput))
    logger.info("------------------------------------------------------")
    info = {"filesinfo": summary.files, "args": list(sys.argv), "NPU_compute_time": npu, "H2D_latency": h2d,
            "D2H_latency": d2h, "throughput": throughput}
    if release.summary_extras:
        info["npu_compute_time_list"] = list(summary.npu)
        info["pid"] = os.getpid()
    if prefix is not None:
        path = os.path.join(prefix, "sumary.json") if release.summary == "inside" else prefix + "_summary.json"
        if release.checks:
            with pathcheck.checked_open(release.checks, path, "w") as handle:
                json.dump(info, handle)
        else:
            with open(path, "w") as handle:
                json.dump(info, handle)
    return throughput


# ---- one run --------------------------------------------------------------------------------

def _progress(release, o, done):
    label = release.progress.format(mode={"array": "Inference array Processing",
                                          "files": "Inference files Processing",
                                          "tensor": "Inference tensor Processing",
                                          "full": "Inference Processing full"}[o.run_mode])
    print(f"{label}: 100%|{'#' * 10}| {done}/{done}", flush=True)


def _infer(release, session, o, array, summary, prefix, files, index):
    started = time.perf_counter()
    fed = np.array(array, copy=True)  # "host to device"
    summary.h2d.append((time.perf_counter() - started) * 1000.0)
    outputs = None
    if release.compute_time == "per_call":
        started = time.perf_counter()
        for _ in range(o.loop):
            outputs, _ms = session.execute(fed)
        summary.npu.append((time.perf_counter() - started) * 1000.0 / o.loop)
    else:
        for _ in range(o.loop):
            outputs, ms = session.execute(fed)
            summary.npu.append(ms)
    if release.d2h != "per_output_saved" or prefix is not None:
        copies, times = [], []
        for out in outputs:
            started = time.perf_counter()
            copies.append(np.array(out, copy=True))  # "device to host"
            times.append((time.perf_counter() - started) * 1000.0)
        if release.d2h == "per_batch":
            summary.d2h.append(sum(times))
        else:
            summary.d2h.extend(times)
    else:
        copies = [np.asarray(out) for out in outputs]
    if prefix is not None:
        _save(release, o, prefix, copies, files, index, summary)


def main(release, o, index=0, devices=None):
    if o.debug:
        logger.setLevel(logging.DEBUG)
    session = Session(o.model, o.device)
    if o.dym_batch:
        session.set_dynamic_batchsize(o.dym_batch)
    if release.batch_from_model:
        if o.batchsize is None:
            o.batchsize = o.dym_batch if o.dym_batch else session.model_batch
            logger.info(f"try get model batchsize:{o.batchsize}")
        if o.batchsize < 0 and not o.dym_batch:
            raise RuntimeError("dynamic batch om model detected, but dymbatch, dymdims or dymshape not set!")
    prefix = _output_prefix(release, o, index, devices)
    summary = Summary()
    if release.warmup[0] == "pure":
        _, count, level = release.warmup
        zero = session.check_input(_pure_bytes(session.realsize, o.pure_data_type))
        for _ in range(count):
            session.execute(zero)
        logger.log(logging.getLevelName(level.upper()), f"warm up {count} times done")
    batches = _infileslist(release, o, session)
    if release.warmup[0] == "flag":
        first = _batch_array(release, o, session, batches[0][0])
        for _ in range(o.warmup_count):
            session.execute(first)
        logger.info(f"warm up {o.warmup_count} done")
    summary.reset()
    for i, files in enumerate(batches):
        array = _batch_array(release, o, session, files[0])
        _infer(release, session, o, array, summary, prefix, files, i)
    _progress(release, o, len(batches))
    throughput = _report(release, o, summary, prefix)
    session.close()
    return throughput


def _divide(release, o, jobs):
    inputs = o.input.split(",")
    if os.path.isfile(inputs[0]):
        files = inputs
    elif os.path.isdir(inputs[0]):
        files = [f for folder in inputs for f in _dir_files(release, folder)]
    else:
        logger.error(f"error {inputs[0]} not file or dir")
        raise RuntimeError()
    shares = [[] for _ in range(jobs)]
    for chunk in _split(files, math.ceil(len(files) / NPU_INPUTS), None):
        each, left = divmod(len(chunk), jobs)
        head = 0
        for j in range(jobs):
            size = each + (1 if j < left else 0)
            shares[j].extend(chunk[head:head + size])
            head += size
    return [",".join(f for f in share if f) for share in shares]


def multidevice(release, o):
    devices = o.device
    logger.info(f"multidevice:{devices} run begin")
    splits = _divide(release, o, len(devices)) if o.input is not None and o.divide_input else None
    done = []
    for i, device in enumerate(devices):
        current = copy.deepcopy(o)
        current.device = int(device)
        if o.divide_input:
            current.input = None if splits is None else splits[i]
        logger.info(f"subprocess_{i} main run")
        try:
            started = time.time()
            throughput = main(release, current, i, devices)
            done.append((i, throughput, started, time.time()))
        except Exception as exc:  # the real tool runs each device in a Pool and only logs a failure
            logger.error(f"subprocess run failed error_callback:{exc!r}")
    result = 0 if len(done) == len(devices) else 1
    logger.info(f"multidevice run end qsize:{2 * len(done)} result:{result}")
    for i, throughput, started, ended in done:
        logger.info(f"i:{i} device_{devices[i]} throughput:{throughput} start_time:{started} end_time:{ended}")
    logger.info(f"summary throughput:{sum(d[1] for d in done)}")
    return result

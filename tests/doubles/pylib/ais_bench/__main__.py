# TEST DOUBLE for `python3 -m ais_bench` (Huawei's ais_bench / ais_infer).
#
# Takes the real tool's flags (--model --input --output --output_dirname
# --outfmt --loop --device --dymBatch --batchsize --warmup_count ...), loads
# the fake .om written by tests/doubles/bin/atc, runs its ONNX model with
# onnxruntime on every input file and writes outputs the way ais_bench does:
# <output>/<output_dirname>/<input stem>_<output index>.bin. Times are really
# measured (CPU wall clock), not invented.
#
# Summary JSON, as the real releases write it:
#   FAKE_AIS_LAYOUT unset/"2023": <output>/<dirname>_summary.json, "percentile(99%)"
#                                  keys plus "count" and "npu_compute_time_list"
#   FAKE_AIS_LAYOUT="p99":         same place, "P99" keys (newer releases)
#   FAKE_AIS_LAYOUT="2022":        <output>/<dirname>/sumary.json, no count, no list
# Other knobs: FAKE_NPU_COUNT (default 1): --device N >= count fails the way a
# missing device does; FAKE_AIS_FAIL_DEVICE=N makes device N fail at start;
# FAKE_AIS_DROP_OUTPUT=STEM skips writing that input's outputs (a lost file).
# Pure-inference mode (no --input) feeds random character ids, --loop times.
import argparse
import json
import os
import sys
import time

import numpy as np

import fake_om


def log(level, message):
    print(f"[{level}] {message}", flush=True)


def die(message, code=1):
    log("ERROR", message)
    sys.exit(code)


def positive(value):
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is an invalid positive int value")
    return number


def nonnegative(value):
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is an invalid nonnegative int value")
    return number


def str2bool(value):
    return str(value).lower() in ("yes", "true", "t", "y", "1")


def get_args(argv):
    parser = argparse.ArgumentParser(prog="ais_bench (test double)")
    parser.add_argument("--model", "-m", required=True)
    parser.add_argument("--input", "-i", default=None)
    parser.add_argument("--output", "-o", default=None)
    parser.add_argument("--output_dirname", default=None)
    parser.add_argument("--outfmt", default="BIN", choices=["NPY", "BIN", "TXT"])
    parser.add_argument("--loop", "-l", type=positive, default=1)
    parser.add_argument("--debug", type=str2bool, default=False)
    parser.add_argument("--device", "-d", type=nonnegative, default=0)
    parser.add_argument("--dymBatch", type=int, default=0)
    parser.add_argument("--batchsize", type=positive, default=None)
    parser.add_argument("--warmup_count", type=nonnegative, default=1)
    parser.add_argument("--display_all_summary", type=str2bool, default=False)
    parser.add_argument("--pure_data_type", default="random", choices=["zero", "random"])
    args = parser.parse_args(argv)
    if args.output is None and args.output_dirname is not None:
        log("ERROR", "parameter --output_dirname cann't be used alone. "
                     "Please use it together with the parameter --output!")
        raise RuntimeError("error bad parameters --output_dirname")
    return args


def open_device(device):
    count = int(os.environ.get("FAKE_NPU_COUNT", "1"))
    failing = os.environ.get("FAKE_AIS_FAIL_DEVICE")
    if device >= count or (failing is not None and int(failing) == device):
        log("INFO", "acl init success")
        print(f"EE1001: The argument is invalid. (test double: device {device}, FAKE_NPU_COUNT={count})", flush=True)
        print(f"        open device {device} failed, runtime result = 507033.", flush=True)
        raise RuntimeError("[-1][ACL: general failure] ")
    log("INFO", "acl init success")
    log("INFO", f"open device {device} success")


def input_files(spec):
    files = []
    for entry in spec.split(","):
        if os.path.isdir(entry):
            files += sorted(os.path.join(entry, n) for n in os.listdir(entry) if os.path.isfile(os.path.join(entry, n)))
        elif os.path.isfile(entry):
            files.append(entry)
        else:
            die(f"error {entry} not file or dir")
    return files


class Model:
    def __init__(self, path, dym_batch):
        import onnxruntime

        try:
            self.meta, onnx_bytes = fake_om.read(path)
        except (OSError, ValueError) as exc:
            die(f"load model from file failed, model file is {path} ({exc})")
        dims = list(self.meta["input_shape"])
        gears = self.meta.get("dynamic_batch_size") or []
        if dims[0] == -1:
            if dym_batch not in gears:
                die(f"check failed dym gearcount:{len(gears)} dymBatch:{dym_batch} not in gears {gears}")
            dims[0] = dym_batch
        elif dym_batch:
            die(f"set dynamic batch {dym_batch} failed: the model has a static batch of {dims[0]}")
        self.shape = dims
        self.need = int(np.prod(dims)) * 4
        self.session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0].shape[0]
        # atc overrides the ONNX batch dim; onnxruntime does not, so feed row by row.
        self.row_by_row = isinstance(first, int) and first != dims[0]

    def run(self, array):
        name = self.meta["input_name"]
        if not self.row_by_row:
            return self.session.run(None, {name: array})
        rows = [self.session.run(None, {name: array[i:i + 1]}) for i in range(array.shape[0])]
        return [np.concatenate([r[k] for r in rows], axis=0) for k in range(len(rows[0]))]


def save(outputs, folder, stem, fmt):
    for index, out in enumerate(outputs):
        base = os.path.join(folder, f"{stem}_{index}")
        if fmt == "BIN":
            np.asarray(out, dtype=np.float32).tofile(base + ".bin")
        elif fmt == "NPY":
            np.save(base + ".npy", out)
        else:
            np.savetxt(base + ".txt", np.asarray(out).reshape(-1))


def stats(values, layout):
    if not values:
        values = [0.0]
    p99 = "P99" if layout == "p99" else "percentile(99%)"
    out = {
        "min": float(np.min(values)), "max": float(np.max(values)), "mean": float(np.mean(values)),
        "median": float(np.median(values)), p99: float(np.percentile(values, 99)),
    }
    if layout != "2022":
        out["count"] = len(values)
    return out


def main(argv):
    args = get_args(argv)
    open_device(args.device)
    model = Model(args.model, args.dymBatch)
    batch = args.batchsize or model.shape[0]

    folder = None
    if args.output is not None:
        if not os.path.isdir(args.output):
            die(f"output path {args.output} does not exist")
        dirname = args.output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S")
        folder = os.path.join(args.output, dirname)
        os.makedirs(folder, 0o755, exist_ok=True)
        log("INFO", f"output path:{folder}")

    if args.input is None:
        rng = np.random.default_rng()
        data = rng.integers(0, 262, size=model.shape) if args.pure_data_type == "random" else np.zeros(model.shape)
        items = [("pure_infer_data", data.astype(np.int32))]
    else:
        items = []
        for path in input_files(args.input):
            size = os.path.getsize(path)
            if size != model.need:
                die(f"Check i:0 name:{model.meta['input_name']} in size:{size} needsize:{model.need} not match")
            stem = os.path.splitext(os.path.basename(path))[0]
            items.append((stem, np.fromfile(path, dtype=np.int32).reshape(model.shape)))

    for _ in range(args.warmup_count):
        model.run(items[0][1])
    log("INFO", f"warm up {args.warmup_count} done")

    compute, h2d, d2h = [], [], []
    for stem, array in items:
        for _ in range(args.loop):
            started = time.perf_counter()
            fed = np.array(array, copy=True)
            h2d.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            outputs = model.run(fed)
            compute.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            outputs = [np.array(o, copy=True) for o in outputs]
            d2h.append((time.perf_counter() - started) * 1000)
        if folder is not None and stem != os.environ.get("FAKE_AIS_DROP_OUTPUT"):
            save(outputs, folder, stem, args.outfmt)

    layout = os.environ.get("FAKE_AIS_LAYOUT", "2023")
    npu = stats(compute, layout)
    throughput = 1000 * batch / npu["mean"] if npu["mean"] else 0
    log("INFO", "-----------------Performance Summary------------------")
    line = "{name} (ms): min = {min}, max = {max}, mean = {mean}, median = {median}"
    if args.display_all_summary:
        log("INFO", line.format(name="H2D_latency", **stats(h2d, "2022")))
    log("INFO", line.format(name="NPU_compute_time", **npu) + f", percentile(99%) = {np.percentile(compute, 99)}")
    if args.display_all_summary:
        log("INFO", line.format(name="D2H_latency", **stats(d2h, "2022")))
    log("INFO", f"throughput 1000*batchsize.mean({batch})/NPU_compute_time.mean({npu['mean']}): {throughput}")
    log("INFO", "------------------------------------------------------")

    if folder is not None:
        summary = {
            "filesinfo": {str(i): {"infiles": [stem], "outfiles": []} for i, (stem, _) in enumerate(items)},
            "args": ["ais_bench"] + list(argv),
            "NPU_compute_time": npu,
            "H2D_latency": stats(h2d, layout),
            "D2H_latency": stats(d2h, layout),
            "throughput": throughput,
            "pid": os.getpid(),
        }
        if layout == "2022":
            path = os.path.join(folder, "sumary.json")
        else:
            summary["npu_compute_time_list"] = compute
            path = folder + "_summary.json"
        with open(path, "w") as handle:
            json.dump(summary, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

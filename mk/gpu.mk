# GPU session helpers. The GPU machine has no datasets and no Hydra: `make devdata` packs MNIST (gzipped, ~11 MB)
# into the git-ignored .devdata/ so that the device tool can carry it; scripts/gpu_check.py then runs there with torch
# and triton only:
#   python3 scripts/gpu_check.py --data-root .devdata --out $OUT --commit <sha of HEAD, written out here>
DEVDATA_SRC ?= $(or $(ANTISYM_DATA),./data)

.PHONY: devdata gpu-check-dry-run

devdata:
	@test -f $(DEVDATA_SRC)/MNIST/raw/train-images-idx3-ubyte || { \
		echo "No MNIST under $(DEVDATA_SRC)/MNIST/raw: set ANTISYM_DATA or DEVDATA_SRC to the data folder."; exit 2; }
	mkdir -p .devdata/MNIST/raw
	for f in $(DEVDATA_SRC)/MNIST/raw/*-ubyte; do gzip -c "$$f" > .devdata/MNIST/raw/$$(basename "$$f").gz; done

# Every code path of the GPU check on this CPU (tiny shapes, Triton interpreter), before spending device time.
gpu-check-dry-run: venv
	$(PY) scripts/gpu_check.py --dry-run --out /tmp/gpu_check_dry_run

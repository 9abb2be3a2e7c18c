# GPU session helpers. The GPU machine has no datasets and no Hydra: `make devdata` (campaign/mk/devdata.mk) splits the data
# into part folders under the git-ignored .devdata/ and prints the device calls that carry them over and unpack them
# into /tmp/antisym-data/root; campaign/gpu_check then runs there with torch and triton only, in the same call:
#   python3 -m campaign.gpu_check --data-root /tmp/antisym-data/root --out $OUT --commit <sha of HEAD, written out here>

.PHONY: gpu-check-dry-run

# Every code path of the GPU check on this CPU (tiny shapes, Triton interpreter), before spending device time.
gpu-check-dry-run: venv  ## every path of campaign/gpu_check on this CPU (Triton interpreter)
	$(PY) -m campaign.gpu_check --dry-run --out /tmp/gpu_check_dry_run

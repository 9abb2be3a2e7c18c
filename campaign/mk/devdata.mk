# Data sets for the GPU machine (included by the main Makefile). The device tool carries at most 64 MiB per call
# and a machine stays warm only ~30 s between calls, so campaign/devdata.py (standard library only) splits the data
# into one gzipped tar cut into part folders .devdata/p0, p1, ... (each <= DEVDATA_PART_MIB, with a copy of the
# manifest), one device call per part, each carrying only its own folder; it prints the exact calls:
#
#   make devdata                                  # MNIST: one part, one call
#   make devdata DEVDATA_SETS=mnist,cifar10       # both: 3 parts, 3 calls back to back
#   make devdata DEVDATA_SRC=../shared/data       # source folder (default $(ANTISYM_DATA), else ./data)
#   make devdata DEVDATA_OUT=/tmp/parts           # where the parts go (default .devdata: the device calls carry it)
#   make devdata-report DEVDATA_SETS=mnist,cifar10   # also times a local receive + assemble, compares gz/xz/tar
#                                                    # and writes results/devdata_transfer.md
#   make devdata-clean                            # remove .devdata/
#
# On the device, call k: python3 -m campaign.devdata receive --part .devdata/pK --dest /tmp/antisym-data
# (carry=[".devdata/pK"]); the last call adds && python3 -m campaign.devdata assemble --dest /tmp/antisym-data
# --root /tmp/antisym-data/root && <command> data.root=/tmp/antisym-data/root.
DEVDATA_SRC ?= $(or $(ANTISYM_DATA),./data)
DEVDATA_SETS ?= mnist
DEVDATA_PART_MIB ?= 60
DEVDATA_REPORT ?= results/devdata_transfer.md
DEVDATA_OUT ?= .devdata
DEVDATA_ARGS = split --src $(DEVDATA_SRC) --out $(DEVDATA_OUT) --sets $(DEVDATA_SETS) --part-mib $(DEVDATA_PART_MIB)

.PHONY: devdata devdata-report devdata-clean

devdata:  ## split data sets into .devdata/pK/ parts for the GPU machine (DEVDATA_SETS=mnist,cifar10)
	$(PYTHON) -m campaign.devdata $(DEVDATA_ARGS)

devdata-report:  ## split and measure the transfer into results/devdata_transfer.md
	$(PYTHON) -m campaign.devdata $(DEVDATA_ARGS) --report $(DEVDATA_REPORT) --compare

devdata-clean:  ## remove .devdata/
	rm -rf $(DEVDATA_OUT)

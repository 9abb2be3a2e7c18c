# The paper-length campaign (conf/campaign/paper.yaml): every GPU lease advances it by one prepared device call.
#
#   make gpu-campaign [DEVDATA_SRC=../shared/data]     # here: wheels + MNIST part; prints the device call
#   make gpu-campaign-rehearse                         # here, before the lease: that call on a scratch copy (CPU)
#   (device call: the printed command and carry list, timeout_s 600)
#   make gpu-campaign-collect FILES="<files_at>/records-*.tar.gz"   # check, unpack into results/runs, rebuild tables,
#                                      keep progress.md + campaign.log in results/leases/, print a commit message
#   make campaign-status                               # per block: runs completed, iterations done / planned
#
# The device has torch and triton but no Hydra: the wheels of hydra-core, omegaconf and antlr4-python3-runtime, at
# the versions in .venv, travel in the git-ignored .whl/campaign (antlr4 4.9.3 exists only as an sdist: pip wheel
# builds it, pure Python). The records in results/runs/ are tracked, so each lease's copy of the tree resumes them.
CAMPAIGN_PLAN ?= paper
CAMPAIGN_BUDGET_S ?= 540
REHEARSE_BUDGET_S ?= 180  # the rehearsed lease's seconds: its start, its 60 s margin and one short stretch of training
CAMPAIGN_CHECK_S ?= 0     # >0: campaign/gpu_check first (a new kernel or device); the lease picks its launcher from it
CAMPAIGN_RECORDS ?= results/runs
CAMPAIGN_TABLES ?= results/campaign
CAMPAIGN_WHEELS := hydra-core omegaconf antlr4-python3-runtime
FILES ?=

.PHONY: gpu-campaign gpu-campaign-rehearse gpu-campaign-collect campaign-status campaign-wheels

campaign-wheels: venv  ## build the Hydra wheels a GPU lease carries (.whl/campaign)
	rm -rf .whl/campaign && mkdir -p .whl/campaign
	$(PY) -m pip wheel -q --no-deps -w .whl/campaign \
		$(foreach w,$(CAMPAIGN_WHEELS),$(w)==$$($(PY) -m pip show $(w) | sed -n 's/^Version: //p'))

gpu-campaign: campaign-wheels  ## prepare a GPU lease: wheels, MNIST part, and print the one device call
	$(MAKE) --no-print-directory devdata DEVDATA_SETS=mnist >/dev/null
	$(PY) -m campaign command --plan $(CAMPAIGN_PLAN) --budget-s $(CAMPAIGN_BUDGET_S) --check-s $(CAMPAIGN_CHECK_S) \
		--records $(CAMPAIGN_RECORDS)

# The same call run here first, on a scratch copy of what travels (CPU, one thread, no GPU), its archives collected there.
gpu-campaign-rehearse: campaign-wheels  ## run the device call here first: wheels, data, lease, collect (REHEARSE_BUDGET_S=)
	$(MAKE) --no-print-directory devdata DEVDATA_SETS=mnist >/dev/null
	$(PY) -m campaign rehearse --plan $(CAMPAIGN_PLAN) --budget-s $(REHEARSE_BUDGET_S)

gpu-campaign-collect: venv  ## check and unpack a lease's archives into results/runs (FILES=...)
	@test -n "$(FILES)" || { echo 'FILES="..." names the records-*.tar.gz a lease returned'; exit 2; }
	$(PY) -m campaign collect $(FILES) --plan $(CAMPAIGN_PLAN) --records $(CAMPAIGN_RECORDS) \
		--tables $(CAMPAIGN_TABLES) --leases results/leases
	$(PY) -m campaign status --plan $(CAMPAIGN_PLAN) --records $(CAMPAIGN_RECORDS)

campaign-status: venv  ## per block: progress, the rate here and the time left; the CPU lane item by item, when each ends
	$(PY) -m campaign status --plan $(CAMPAIGN_PLAN) --records $(CAMPAIGN_RECORDS)

# The campaign's CPU lane (the plan's `lanes.cpu`: the noise-padded column first), trained here in the background
# into results/runs/ under a wall-clock budget; it stops cleanly before the budget ends (checkpoint at a step
# boundary), rebuilds results/campaign/ and ends its log with a commit message. Commit results/ afterwards.
# It trains the committed HEAD from a git worktree beside its pid file (logs/cpu-campaign.tree): edits to code or
# conf/ made while it trains never reach it, and its records name that commit, clean. Commit before starting it.
#   make cpu-campaign CPU_BUDGET_S=7200 CPU_THREADS=1 [ANTISYM_DATA=../shared/data]
#   make cpu-campaign-stop                   # SIGTERM: the run in training checkpoints and the lane ends
# A second lane on the other core (CPU_LANE=2, its own log, pid file and tree) trains the next run: a lane passes over
# a run whose lock another holds. One 1-thread run beside another costs 1.08x (results/bench_threads_cpu.md).
#   make cpu-campaign CPU_LANE=2 CPU_BUDGET_S=7200 CPU_THREADS=1; make cpu-campaign-stop CPU_LANE=2
CPU_LANE ?= 1
CPU_BUDGET_S ?= 3600
# torch threads: 1 while the machine does other work too; 2 on a quiet 2-core machine (results/bench_threads_cpu.md)
CPU_THREADS ?= 1
CPU_SUFFIX := $(if $(filter 1,$(CPU_LANE)),,-$(CPU_LANE))
CPU_LOG ?= logs/cpu-campaign$(CPU_SUFFIX).log
CPU_PID ?= logs/cpu-campaign$(CPU_SUFFIX).pid
# where the lane's progress.md / progress.json go
CPU_REPORT ?= logs/cpu-campaign$(CPU_SUFFIX)
# the frozen checkout of HEAD the lane runs from: one per pid file, so a second lane never replaces a running one's
CPU_TREE ?= $(basename $(CPU_PID)).tree

.PHONY: cpu-campaign cpu-campaign-stop

cpu-campaign: venv  ## train the campaign's CPU lane in the background (CPU_BUDGET_S= CPU_THREADS=)
	@mkdir -p $(dir $(CPU_LOG)) $(dir $(CPU_PID))
	@if [ -f $(CPU_PID) ] && kill -0 $$(cat $(CPU_PID)) 2>/dev/null; then \
		echo "the CPU lane is already training (pid $$(cat $(CPU_PID)), log $(CPU_LOG))"; exit 2; fi
	@git diff --quiet HEAD -- antisym conf || echo "NOTE: uncommitted changes to antisym/ or conf/ are not in the lane: it trains $$(git rev-parse --short HEAD)"
	@git worktree remove --force $(CPU_TREE) 2>/dev/null; git worktree prune; git worktree add -q --detach $(CPU_TREE) HEAD
	cd $(CPU_TREE) && OMP_NUM_THREADS=$(CPU_THREADS) nohup $(abspath $(PY)) -m campaign lane --plan $(CAMPAIGN_PLAN) \
		--lane cpu --budget-s $(CPU_BUDGET_S) --threads $(CPU_THREADS) --data-root $(abspath $(ANTISYM_DATA)) \
		--records $(abspath $(CAMPAIGN_RECORDS)) --tables $(abspath $(CAMPAIGN_TABLES)) --out $(abspath $(CPU_REPORT)) \
		> $(abspath $(CPU_LOG)) 2>&1 & echo $$! > $(CPU_PID)
	@echo "CPU lane started (pid $$(cat $(CPU_PID)), commit $$(git rev-parse --short HEAD), $(CPU_THREADS) threads, $(CPU_BUDGET_S) s): tail -f $(CPU_LOG)"

cpu-campaign-stop:  ## stop the CPU lane cleanly (the run in training checkpoints first)
	@test -f $(CPU_PID) && kill -TERM $$(cat $(CPU_PID)) && echo "SIGTERM sent to $$(cat $(CPU_PID))" || echo "no lane running"

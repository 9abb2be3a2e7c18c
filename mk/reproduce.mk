# Paper tables from real runs (included by the main Makefile, which defines PY and the venv target).
#
#   make reproduce-table                      # every row of Tables 1 and 2 x its seeds; skips what completed
#   make reproduce-table TABLE=1              # Table 1 only (TABLE=2: Table 2)
#   make reproduce-table LAUNCHER=joblib JOBS=4          # parallel local processes (hydra-joblib-launcher)
#   make reproduce-table LAUNCHER=submitit_local         # local processes through submitit
#   make reproduce-table LAUNCHER=packed OVERRIDES="hydra.launcher.pack_size=16"   # runs of one shape as one (GPU)
#   make reproduce-table LAUNCHER=submitit_slurm OVERRIDES="hydra.launcher.partition=gpu"   # a SLURM cluster
#   make reproduce-table QUICK=1 TABLE=1      # smoke run: tiny sizes, logs/quick + results/local/quick, marked QUICK
#   make reproduce-table PLAN=focus ROWS=asym_pmnist   # another plan of conf/campaign/: a row's focused grid
#   make reproduce-table PLAN=paper BLOCKS=fig2        # some blocks of a plan (the campaign's, here Figure 2's models)
#   make reproduce-tables-only                # rebuild results/local/ from logs/reproduce (else results/runs), train nothing
#   make reproduce-tables-only UPDATE=1       # rebuild the committed tables, results/campaign/, from results/runs/
#
# PLAN= names the runs (conf/campaign/<plan>.yaml; default tables: every row x seeds 0-2, into logs/reproduce/);
# SEEDS=5 (seeds 0-4; SEEDS=1 is seed 0 alone) or SEEDS=0,3 replaces the plan's seeds; DATA=dir sets
# data.root; LOGS=dir the log_dir; RESULTS=dir where the tables go (default results/local, git-ignored);
# ROWS=asym_mnist,gated_pmnist limits the rows;
# OVERRIDES="key=value ..." is passed to every run of the rows chosen (an override a row has no key for, such as
# model.eps on an LSTM row, stops before anything runs: limit the rows with ROWS=);
# REPRO_FLAGS="--dry-run" prints the plan only, "--rerun-diverged" trains diverged runs again.
# Rerunning the same command is safe: completed runs are skipped, failed or interrupted ones resume.

PLAN ?= tables
TABLE ?= all
LAUNCHER ?= basic
QUICK ?=
SEEDS ?=
ROWS ?=
BLOCKS ?=
JOBS ?=
DATA ?=
LOGS ?=
RESULTS ?= results/local
OVERRIDES ?=
REPRO_FLAGS ?=

REPRO_ARGS = --plan $(PLAN) --table $(TABLE) --launcher $(LAUNCHER) --results $(RESULTS) \
	$(if $(filter 1 true yes,$(QUICK)),--quick) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(ROWS),--rows $(ROWS)) $(if $(BLOCKS),--blocks $(BLOCKS)) $(if $(JOBS),--jobs $(JOBS)) \
	$(if $(DATA),--data $(DATA)) $(if $(LOGS),--logs $(LOGS)) $(REPRO_FLAGS)

.PHONY: reproduce-table reproduce-tables-only

reproduce-table: venv  ## train what Tables 1-2 miss, then rebuild them (TABLE= QUICK=1 SEEDS= ROWS= PLAN=)
	$(PY) -m antisym.results.reproduce $(REPRO_ARGS) -- $(OVERRIDES)

reproduce-tables-only: venv  ## rebuild the tables from the run directories, train nothing (UPDATE=1: the committed ones)
ifneq ($(filter 1 true yes,$(UPDATE)),)
	$(PY) -m antisym.results --table $(TABLE) --runs results/runs --out results/campaign
else
	@$(if $(LOCAL_RUNS),echo "no logs/reproduce here (make reproduce-table trains into it): tables of the committed records")
	$(PY) -m antisym.results --table $(TABLE) $(if $(LOGS),--logs $(LOGS)) $(if $(LOCAL_RUNS),--runs $(LOCAL_RUNS)) \
		$(if $(filter 1 true yes,$(QUICK)),--quick --out $(RESULTS)/quick,--out $(RESULTS))
endif
# with neither LOGS= nor a logs/reproduce of this checkout's own runs, the committed records stand in
LOCAL_RUNS = $(if $(LOGS)$(filter 1 true yes,$(QUICK))$(wildcard logs/reproduce),,results/runs)

# Re-check run records without retraining (antisym/results/verify.py): each summary against its metrics.jsonl and
# checkpoints, its provenance, and each finished run's best checkpoint evaluated again on its validation and test
# splits (DATA= or ANTISYM_DATA; a noise-padded run takes about a minute on one core). RUNS= the folders (default
# results/runs); VERIFY_FLAGS="--no-eval" checks the records only. UPDATE=1 writes the committed report; REUSE=1
# evaluates again only the runs whose files changed since the report's .json, or else the committed one's
# (results/verify_records.json), the others' counts carried over.
RUNS ?= results/runs
VERIFY_FLAGS ?=
VERIFY_OUT = $(if $(filter 1 true yes,$(UPDATE)),results/verify_records.md,$(RESULTS)/verify_records.md)

.PHONY: verify-records
verify-records: venv  ## re-check run records: summaries, checkpoints, accuracies re-evaluated (RUNS= DATA= UPDATE=1 REUSE=1)
	$(PY) -m antisym.results.verify $(RUNS) $(if $(DATA),--data-root $(DATA)) $(VERIFY_FLAGS) \
		$(if $(filter 1 true yes,$(REUSE)),--reuse) --out $(VERIFY_OUT)

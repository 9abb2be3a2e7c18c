# Figures 1-3 of the paper, regenerated into results/local/figures/ (git-ignored; PNG + PDF + a provenance JSON each);
# UPDATE=1 writes the committed ones in results/figures/.
#   make figures                               # fig1, fig3, and fig2 from models at initialisation (CPU, a few minutes)
#   make figures FIG2_SWEEP=logs/multiruns/<time>   # fig2 from the trained checkpoints of a sweep
#   make fig2 FIG2_ARGS="--batch 4 --hidden 128"     # any extra scripts/fig2.py options
#   make fig2-sweep [FIG2_STEPS=200] [FIG2_SWEEP_ARGS="LAUNCHER=joblib"]   # train Figure 2's 28 models
#   make fig2 FIG2_SWEEP=logs/paper/fig2             # then draw it from them
ANTISYM_DATA ?= ./data
FIGURES_DIR ?= $(if $(filter 1 true yes,$(UPDATE)),results/figures,results/local/figures)
FIG2_SWEEP ?=
FIG2_ARGS ?=
FIG2_STEPS ?=
FIG2_SWEEP_ARGS ?=

.PHONY: figures fig1 fig2 fig3 fig2-sweep

figures: fig1 fig3 fig2  ## Figures 1-3 into results/local/figures/ (UPDATE=1: results/figures; FIG2_SWEEP=<dir>)

fig1: venv  ## Figure 1 (2-D RNN trajectories; UPDATE=1: the committed one)
	$(PY) scripts/fig1.py --out $(FIGURES_DIR)

fig3: venv  ## Figure 3 (random 2-D RNNs, Appendix D; UPDATE=1: the committed one)
	$(PY) scripts/fig3.py --out $(FIGURES_DIR)

fig2: venv  ## Figure 2 (Jacobian eigenvalues; FIG2_SWEEP=<dir> from trained models)
	$(PY) scripts/fig2.py --out $(FIGURES_DIR) --data-root $(ANTISYM_DATA) $(if $(FIG2_SWEEP),--sweep $(FIG2_SWEEP)) $(FIG2_ARGS)

# The 28 training runs behind a trained Figure 2: the block fig2 of the campaign's plan (conf/campaign/paper.yaml),
# into logs/paper/fig2/; rerunning skips completed runs. FIG2_SWEEP_ARGS: any make reproduce-table variable.
fig2-sweep: venv  ## train Figure 2's 28 models (FIG2_STEPS= for a short version)
	$(MAKE) reproduce-table PLAN=paper BLOCKS=fig2 DATA=$(ANTISYM_DATA) \
		$(if $(FIG2_STEPS),OVERRIDES="trainer.max_steps=$(FIG2_STEPS)") $(FIG2_SWEEP_ARGS)

# Figures 1-3 of the paper, regenerated into results/figures/ (PNG + PDF + a provenance JSON each).
#   make figures                               # fig1, fig3, and fig2 from models at initialisation (CPU, a few minutes)
#   make figures FIG2_SWEEP=multirun/<date>/<time>   # fig2 from the trained checkpoints of a sweep
#   make fig2 FIG2_ARGS="--batch 4 --hidden 128"     # any extra scripts/fig2.py options
ANTISYM_DATA ?= ./data
FIGURES_DIR ?= results/figures
FIG2_SWEEP ?=
FIG2_ARGS ?=

.PHONY: figures fig1 fig2 fig3

figures: fig1 fig3 fig2

fig1: venv
	$(PY) scripts/fig1.py --out $(FIGURES_DIR)

fig3: venv
	$(PY) scripts/fig3.py --out $(FIGURES_DIR)

fig2: venv
	$(PY) scripts/fig2.py --out $(FIGURES_DIR) --data-root $(ANTISYM_DATA) $(if $(FIG2_SWEEP),--sweep $(FIG2_SWEEP)) $(FIG2_ARGS)

"""The config groups a run chooses from, as `python train.py --help` lists them (conf/hydra/default.yaml).

Hydra's own list ($APP_CONFIG_GROUPS) is every folder of the config search path, so it would offer the campaign's
plans (conf/campaign/), the part every sweep includes (sweep/_resumable) and the groups the dataset or the debug
preset chooses themselves (paper_length/, debug_dataset/) as if they were options of a run.
"""

from __future__ import annotations

# Hydra's own groups; the campaign's plans (python -m campaign); groups conf/config.yaml chooses by the dataset
NOT_OPTIONS = ("hydra", "campaign", "paper_length", "debug_dataset")


def run_groups() -> str:
    """'group: option, option' lines of the composing Hydra's search path (a user's searchpath included), without
    NOT_OPTIONS and without options whose names start with '_' (parts that other configs include)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    loader = GlobalHydra.instance().config_loader()
    lines: list[str] = []

    def walk(parent: str) -> None:
        for group in sorted(loader.list_groups(parent)):
            name = f"{parent}/{group}" if parent else group
            if name in NOT_OPTIONS:
                continue
            options = sorted(o for o in loader.get_group_options(name, ObjectType.CONFIG) if not o.startswith("_"))
            if options:
                lines.append(f"{name}: {', '.join(options)}")
            walk(name)

    walk("")
    return "\n".join(lines)

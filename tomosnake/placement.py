"""Where each rule's jobs run on SLURM: partition, GPUs, account and QoS (the rules declare, this decides).

A rule that reconstructs with a GPU backend goes to ``slurm.gpu_partition`` with one GPU; every
other job to ``slurm.cpu_partition``. `conversion_range` reconstructs only when it samples the
volume (conversion on, mode not 'manual').
"""

from __future__ import annotations

from tomosnake.config import TomoConfig

GPU_BACKENDS = frozenset({"tomocupy"})
# Rules whose jobs run the reconstruction backend.
RECONSTRUCTING = frozenset({"conversion_range", "recon_chunk", "try_center_scan", "try_lamino_scan"})


def reconstructs(cfg: TomoConfig, rule: str | None) -> bool:
    """Whether ``rule``'s jobs run the reconstruction backend under ``cfg`` (None: a rule that does not)."""
    if rule == "conversion_range":
        conv = cfg.recon.convert
        return conv.enabled and conv.mode != "manual"
    return rule in RECONSTRUCTING


def gpus(cfg: TomoConfig, rule: str | None) -> int:
    """GPUs a job of ``rule`` needs: one where it reconstructs with a GPU backend."""
    return int(cfg.recon.backend in GPU_BACKENDS and reconstructs(cfg, rule))


def slurm_resources(cfg: TomoConfig, rule: str | None = None) -> dict[str, str | int]:
    """The SLURM executor's resources of ``rule`` (None: any rule that does not reconstruct):
    ``slurm_partition``, ``gpu`` when one is needed, ``slurm_account`` and ``qos`` when configured."""
    n_gpu = gpus(cfg, rule)
    out: dict[str, str | int] = {"slurm_partition": cfg.slurm.gpu_partition if n_gpu else cfg.slurm.cpu_partition}
    if n_gpu:
        out["gpu"] = n_gpu
    if cfg.slurm.account:
        out["slurm_account"] = cfg.slurm.account
    if cfg.slurm.qos:
        out["qos"] = cfg.slurm.qos
    return out

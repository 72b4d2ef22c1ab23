"""The training loop: data stream -> SAE step(s) -> metrics, checkpoints, stop conditions. Single process or DDP.

Why one file: the loop, its checkpoint state and its finish records share the Trainer's state (rest: beside it).

One SAE, or several (`saes`) stepping on the same batches: an hf run hooks each distinct layer once in the same LM
forward, and each SAE reads its layer's columns of the batch (see `training.member`)."""

from __future__ import annotations

import ctypes
import inspect
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from training.checkpoint import latest_checkpoint, load_checkpoint, read_json, save_checkpoint
from training.config import ConfigError, TrainConfig, sae_configs
from training.data import (
    PURPOSE_EVAL,
    HFActivationSource,
    ShardSource,
    ShuffledStream,
    SyntheticSource,
    build_source,
    make_generator,
    rank_rows,
    remap_stream_states,
)
from training.evaluate import evaluate, feature_recovery, reconstruction_of
from training.heartbeat import write_heartbeat
from training.member import Member
from training.outputs import RunOutputs
from training.sae import SparseAutoencoder

THROUGHPUT_WARMUP_FRACTION = 0.1  # steps excluded from the steady-state vectors/s


@dataclass
class RunResult:
    state: str  # finished | stopped
    reason: str
    step: int
    summary: dict[str, Any]


class Distributed:
    """torchrun environment: NCCL on CUDA, gloo on CPU. Without WORLD_SIZE > 1 everything is a no-op."""

    def __init__(self, device_kind: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(values)
        return values

    def all_reduce_mean(self, values: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(values)
            values /= self.world
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


# BatchTopK's threshold buffer is each rank's own running estimate: equal at init, never broadcast per forward.
# torch 2.15 renamed the switch (the old one warns on every start); older torch on a node only knows the old name.
RANK_LOCAL_BUFFERS = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


def tune_cpu_allocator() -> None:
    """Keep freed large blocks in glibc's heap instead of returning them to the OS: the step allocates the same
    [batch, n_latents] tensors every time, and fresh mmap'd pages cost a page fault per 4 KiB (15-25 % of a CPU
    step here). Process-wide; a no-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def resolve_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    kind = cfg.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def centred_total(v: torch.Tensor) -> torch.Tensor:
    """The sum of squared deviations from the batch mean: `fvu_of`'s denominator, clamped the same way."""
    return (v - v.mean(0)).pow(2).sum().clamp_min(1e-12)


def global_batch_weights(x: torch.Tensor, residual: torch.Tensor, batch_size: int, dist: Distributed) -> torch.Tensor:
    """[w_fvu, w_auxk]: the mean over ranks of w * (this rank's FVU, AuxK) is the FVU (AuxK) of the whole global
    batch, however unevenly its rows are split, and so is DDP's gradient average of w_fvu * fvu + auxk_alpha *
    w_auxk * auxk. FVU is a ratio to the batch's variance, so a rank's weight is its share of the global batch's
    variance (about its share of rows, but not exactly: a weight by rows alone is wrong on small shares) times the
    world size, as DDP and all_reduce_mean average over ranks."""
    moments = torch.cat(
        [
            x.double().sum(0),
            x.double().pow(2).sum().reshape(1),
            residual.double().sum(0),
            residual.double().pow(2).sum().reshape(1),
        ]
    )
    dist.all_reduce_sum(moments)
    d = x.shape[1]
    total_x = (moments[d] - moments[:d].pow(2).sum() / batch_size).clamp_min(1e-12)
    total_r = (moments[2 * d + 1] - moments[d + 1 : 2 * d + 1].pow(2).sum() / batch_size).clamp_min(1e-12)
    shares = torch.stack([centred_total(x).double() / total_x, centred_total(residual).double() / total_r])
    return shares.float() * dist.world


def choose_decode_impl(sae: SparseAutoencoder, x: torch.Tensor) -> str:
    """Time one forward+backward of each decode path on this device and keep the faster."""
    timings = {}
    for impl in ("sparse", "dense"):
        sae.decode_impl = impl
        for repeat in range(2):
            start = time.perf_counter()
            sae(x).loss.backward()
            if x.is_cuda:
                torch.cuda.synchronize()
            timings[impl] = time.perf_counter() - start if repeat else 0.0
    sae.zero_grad(set_to_none=True)
    return min(timings, key=lambda k: timings[k])


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.dist = Distributed(
            "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
        )
        self.device = resolve_device(cfg, self.dist.local_rank)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
        self.precision = "bf16" if use_bf16 else "fp32"
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        if cfg.batch_size < self.dist.world:
            raise ConfigError(
                f"batch_size: {cfg.batch_size} gives a rank no rows; raise it to at least the number "
                f"of ranks ({self.dist.world})"
            )
        self.out_dir = Path(cfg.out_dir)
        # A finished run that this process relaunches keeps its status.json and summary.json until a step is taken
        # (a relaunch that fails first, or has nothing to train, leaves them as they were). Rank 0's reading counts.
        previous = read_json(self.out_dir / "status.json") or {}
        self.previous_status = self.dist.gather(previous)[0]
        self.was_finished = self.previous_status.get("state") == "finished"
        self.outputs = RunOutputs(self.out_dir) if self.dist.is_main else None
        layers = cfg.layers() if cfg.data_source == "hf" else None
        self.source = build_source(cfg, self.device, layers)
        if cfg.d_in is None:
            cfg.d_in = self.source.d_in
        elif cfg.d_in != self.source.d_in:
            raise ConfigError(f"d_in: config says {cfg.d_in} but the data has width {self.source.d_in}")
        cfg.validate()
        _, _, shuffle_seed = cfg.seeds()
        prefetch = cfg.prefetch == "on" or (
            cfg.prefetch == "auto" and self.device.type == "cuda" and cfg.data_source == "hf"
        )
        self.stream = ShuffledStream(
            self.source,
            rank_rows(cfg.batch_size, self.dist.world, self.dist.rank),
            cfg.shuffle_buffer,
            shuffle_seed,
            self.dist.rank,
            self.dist.world,
            prefetch=prefetch,
        )
        self.several = bool(cfg.saes)
        self.members = [
            Member(
                name,
                member_cfg,
                layers.index(str(member_cfg.hf_layer)) if layers else 0,
                self.device,
                (RunOutputs(Path(member_cfg.out_dir)) if self.several else self.outputs) if self.dist.is_main else None,
            )
            for name, member_cfg in sae_configs(cfg)
        ]
        self.total_steps = cfg.total_steps()
        self.step = 0
        self.steps_here = 0  # optimizer steps completed by this process (not counting the resumed ones)
        self.train_seconds = 0.0  # cumulative over resumes, for max_hours
        self.stop_signal: str | None = None
        self.eval_vectors: torch.Tensor | None = None

    @property
    def sae(self) -> SparseAutoencoder:
        """The first (with one SAE, the only) SAE."""
        return self.members[0].sae

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.members[0].optimizer

    # --- setup ---
    def _initialise_or_resume(self) -> int | None:
        """The world size of the checkpoint resumed from, or None for a fresh start."""
        ckpt_path = latest_checkpoint(self.out_dir / "checkpoints")
        if ckpt_path is not None:
            state = load_checkpoint(ckpt_path)
            self._load(state)
            return int(state["world"])
        first = self.stream.next_batch().to(self.device)
        for member in self.members:
            x = member.columns(first)
            member.sae.init_b_dec(x, member.cfg.b_dec_init)
            if member.cfg.decode_impl == "auto":  # rank 0's choice
                member.sae.decode_impl = self.dist.gather(choose_decode_impl(member.sae, x))[0]
        self.stream.load_state_dict({"epoch": 0, "window_start": 0, "offset": 0})
        return None

    def _state(self) -> dict[str, Any]:
        streams = self.dist.gather(self.stream.state_dict())
        state = {
            "step": self.step,
            "config": self.cfg.to_dict(),
            "streams": streams,
            "world": self.dist.world,
            "train_seconds": self.train_seconds,
            "torch_rng": torch.get_rng_state(),
        }
        if self.several:
            state["members"] = [{"name": m.name, **m.state()} for m in self.members]
        else:
            state.update(self.members[0].state())  # one SAE: the layout checkpoints always had
        return state

    def _load(self, state: dict[str, Any]) -> None:
        """Parameters, optimizer state, the BatchTopK threshold and the counters are the same on every rank, so a
        checkpoint of any world size loads as it is; only the data positions are per rank (remapped for another
        world size)."""
        self.step = state["step"]
        saved = state.get("members") or [{"name": "", **state}]
        names = [m.get("name", "") for m in saved]
        if names != [m.name for m in self.members]:
            raise ConfigError(
                f"saes: the checkpoint in {self.out_dir} holds SAEs {names}, this config trains "
                f"{[m.name for m in self.members]}; a changed list of SAEs needs a fresh out_dir"
            )
        for member, member_state in zip(self.members, saved, strict=True):
            member.load(member_state)
        streams = state["streams"]
        if state["world"] != self.dist.world:
            streams = remap_stream_states(streams, self.dist.world)
        self.stream.load_state_dict(streams[self.dist.rank])
        self.train_seconds = state["train_seconds"]
        torch.set_rng_state(state["torch_rng"])

    def checkpoint(self) -> None:
        state = self._state()  # collective (gathers stream states): every rank calls it
        if self.dist.is_main:
            save_checkpoint(self.out_dir / "checkpoints", self.step, state, self.cfg.keep_checkpoints)

    # --- the step ---
    def _train_step(self, member: Member, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg = member.cfg
        dead = member.dead_mask()
        with self.autocast:
            out = member.model(
                x, dead_mask=dead if bool(dead.any()) else None, k_aux=cfg.resolved_k_aux(), auxk_alpha=cfg.auxk_alpha
            )
        if self.dist.enabled:  # weigh each rank by its share of the global batch (see global_batch_weights)
            w = global_batch_weights(x, (x - out.recon).detach(), cfg.batch_size, self.dist)
            fvu, auxk = w[0] * out.fvu, w[1] * out.auxk
            loss, row_weight = fvu + cfg.auxk_alpha * auxk, len(x) * self.dist.world / cfg.batch_size
        else:
            fvu, auxk, loss, row_weight = out.fvu, out.auxk, out.loss, None
        loss.backward()
        member.sae.project_decoder_grad()
        member.optimizer.step()
        member.optimizer.zero_grad(set_to_none=True)
        member.sae.normalize_decoder()
        with torch.no_grad():
            member.note_fired(out.vals, out.idx, cfg.batch_size, self.dist.enabled)
            l0 = (out.vals > 0).sum(dim=1).float().mean()
            if row_weight is not None:
                l0 = l0 * row_weight
        return loss.detach(), fvu.detach(), auxk.detach(), l0, dead.float().mean()

    # --- the loop ---
    def run(self) -> RunResult:
        resumed_from = self._initialise_or_resume()
        resumed = resumed_from is not None
        self._prepare_eval(resumed)
        if self.outputs is not None:
            if resumed:
                for member in self.members:
                    if member.outputs is not None:
                        member.outputs.truncate_metrics_after(self.step)
            if not self.was_finished:
                self.outputs.write_status("running", self.step, self.total_steps)
            for member in self.members:
                mcfg = member.cfg
                self._log(
                    f"{_prefix(member)}{_start_line(self.step, resumed_from, self.dist.world)}: d_in={mcfg.d_in} "
                    f"n_latents={member.sae.n_latents} k={mcfg.k} {mcfg.architecture} "
                    f"decode={member.sae.decode_impl} {self.precision} on {self.device} x{self.dist.world} "
                    f"lr={mcfg.resolved_lr():.3g} steps={self.total_steps}"
                    + (f" layer={mcfg.hf_layer}" if self.several and mcfg.hf_layer else "")
                )
        for member in self.members:
            member.model = self.wrapped_model(member.sae)
        previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            state, reason = self._loop()
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            self.stream.close()
        if self.steps_here == 0:  # nothing was left to train: this launch came up all the same
            self.write_heartbeat()
            if self.was_finished:
                return self._already_finished()
        self.checkpoint()
        summary = self._finish(state, reason)
        self.dist.close()
        return RunResult(state, reason, self.step, summary)

    def wrapped_model(self, sae: SparseAutoencoder) -> torch.nn.Module:
        """The module the step runs: the SAE itself, or under DDP the SAE wrapped for gradient averaging."""
        if not self.dist.enabled:
            return sae
        return DistributedDataParallel(
            sae, device_ids=[self.device.index] if self.device.type == "cuda" else None, **RANK_LOCAL_BUFFERS
        )

    def _already_finished(self) -> RunResult:
        """A relaunch of a finished run with no step left: its files stay as they are."""
        summary = (read_json(self.out_dir / "summary.json") or {}) if self.dist.is_main else {}
        if self.dist.is_main:
            self._log(
                f"already finished at step {self.step}/{self.total_steps}: nothing to train (status.json and "
                "summary.json kept)"
            )
        self.dist.close()
        return RunResult("finished", self.previous_status.get("reason") or "completed", self.step, summary)

    def _after_first_step(self) -> None:
        if self.was_finished and self.outputs is not None:  # the relaunched finished run now really runs again
            self.outputs.write_status("running", self.step, self.total_steps)
        self.write_heartbeat()

    def write_heartbeat(self) -> None:
        write_heartbeat(self.out_dir, self.dist.rank, self.dist.world, self.step)

    def _on_sigterm(self, _signum: int, _frame: Any) -> None:
        self.stop_signal = "sigterm"

    def _loop(self) -> tuple[str, str]:
        cfg = self.cfg
        sums = torch.zeros(len(self.members), 5, device=self.device)
        interval_steps, interval_start = 0, time.perf_counter()
        steady_from = self.step + max(1, int((self.total_steps - self.step) * THROUGHPUT_WARMUP_FRACTION))
        steady_start: float | None = None
        self.steady_vectors, self.steady_seconds = 0, 0.0
        last = time.perf_counter()
        while self.step < self.total_steps:
            if self.step == steady_from:
                steady_start = time.perf_counter()
            lrs = [member.set_lr(self.step, self.total_steps) for member in self.members]
            x = self.stream.next_batch().to(self.device, non_blocking=True)
            for i, member in enumerate(self.members):
                sums[i] += torch.stack(self._train_step(member, member.columns(x)))
            self.step += 1
            self.steps_here += 1
            if self.steps_here == 1:
                self._after_first_step()
            interval_steps += 1
            now = time.perf_counter()
            self.train_seconds += now - last
            last = now
            if steady_start is not None:
                self.steady_vectors += cfg.batch_size
                self.steady_seconds = now - steady_start
            if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                means = self.dist.all_reduce_mean(sums / interval_steps).tolist()
                elapsed = time.perf_counter() - interval_start
                records = [
                    self._record(member, row, lr, interval_steps * cfg.batch_size / elapsed)
                    for member, row, lr in zip(self.members, means, lrs, strict=True)
                ]
                self._write_run_status(records)
                sums.zero_()
                interval_steps, interval_start = 0, time.perf_counter()
                plateaued = [member.plateaued(r["fvu"]) for member, r in zip(self.members, records, strict=True)]
                if all(plateaued):  # with several SAEs: once every one of them has plateaued
                    return "finished", "plateau"
            if self.step % cfg.checkpoint_every == 0 and self.step < self.total_steps:
                self.checkpoint()
            stop = self._stop_reason()
            if stop:
                return "stopped", stop
        return "finished", "completed"

    def _stop_reason(self) -> str | None:
        local = self.stop_signal
        if local is None and self.cfg.max_hours is not None and self.train_seconds > self.cfg.max_hours * 3600:
            local = "max_hours"
        if local is None and self.cfg.stop_after_steps is not None and self.step >= self.cfg.stop_after_steps:
            local = "stop_after_steps"
        if self.dist.any(local is not None, self.device):
            return local or "peer_stopped"
        return None

    def _record(self, member: Member, means: list[float], lr: float, vectors_per_second: float) -> dict[str, Any]:
        loss, fvu, auxk, l0, dead = means
        remaining = (self.total_steps - self.step) * self.cfg.batch_size / max(vectors_per_second, 1e-9)
        record = {
            "step": self.step,
            "vectors": self.step * self.cfg.batch_size,
            "loss": loss,
            "fvu": fvu,
            "auxk": auxk,
            "l0": l0,
            "dead_fraction": dead,
            "lr": lr,
            "vectors_per_second": vectors_per_second,
            "eta_seconds": remaining,
            "train_seconds": self.train_seconds,
        }
        if member.outputs is not None:
            member.outputs.append_metrics(record)
            member.outputs.write_status("running", self.step, self.total_steps, record)
            self._log(
                f"{_prefix(member)}step {self.step}/{self.total_steps} | {vectors_per_second:,.0f} vec/s | "
                f"loss {loss:.4f} | "
                f"FVU {fvu:.4f} | L0 {l0:.1f} | dead {dead:.2%} | lr {lr:.2e} | ETA {_duration(remaining)}"
            )
        return record

    def _write_run_status(self, records: list[dict[str, Any]]) -> None:
        """With several SAEs, the run's status.json: the first SAE's metrics, and every SAE's under `saes`."""
        if self.several and self.outputs is not None:
            self.outputs.write_status("running", self.step, self.total_steps, self._run_metrics(records))

    def _run_metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        if not records:
            return {}
        keys = ("fvu", "l0", "dead_fraction")
        return {
            **records[0],
            "saes": {m.name: {k: r.get(k) for k in keys} for m, r in zip(self.members, records, strict=True)},
        }

    def _log(self, line: str) -> None:
        print(line, flush=True)

    # --- evaluation and outputs ---
    def _prepare_eval(self, resumed: bool) -> None:
        if not isinstance(self.source, SyntheticSource) or not self.cfg.eval_vectors:
            return
        planted = self.source.planted
        self.eval_vectors = planted.sample(self.cfg.eval_vectors, make_generator(planted.seed, PURPOSE_EVAL))
        if not resumed:
            for member in self.members:
                member.init_recovery = feature_recovery(member.sae.W_dec.detach(), planted.dictionary)

    def _finish(self, state: str, reason: str) -> dict[str, Any]:
        if not self.dist.is_main or self.outputs is None:
            return {}
        held_out = None
        if isinstance(self.source, (ShardSource, HFActivationSource)):
            held_out = self.source.heldout()  # read (or computed) only now, once for every SAE
        summaries = [self._finish_member(member, state, reason, held_out) for member in self.members]
        if not self.several:
            return summaries[0]
        last = [(m.outputs.read_metrics() or [{}])[-1] for m in self.members if m.outputs is not None]
        summary = {
            "state": state,
            "reason": reason,
            "steps": self.step,
            "total_steps": self.total_steps,
            "vectors": self.step * self.cfg.batch_size,
            "vectors_per_second": summaries[0]["vectors_per_second"],  # of the shared stream: each SAE saw them all
            "wall_seconds": self.train_seconds,
            "world_size": self.dist.world,
            "saes": [
                {"name": m.name, "out_dir": m.cfg.out_dir, **one}
                for m, one in zip(self.members, summaries, strict=True)
            ],
        }
        self.outputs.write_summary(summary)
        self.outputs.write_status(state, self.step, self.total_steps, self._run_metrics(last), reason)
        return summary

    def _finish_member(self, member: Member, state: str, reason: str, held_out: torch.Tensor | None) -> dict[str, Any]:
        outputs, cfg, sae = member.outputs, member.cfg, member.sae
        assert outputs is not None
        history = outputs.read_metrics()
        last = history[-1] if history else {}
        summary: dict[str, Any] = {
            "state": state,
            "reason": reason,
            "steps": self.step,
            "total_steps": self.total_steps,
            "vectors": self.step * cfg.batch_size,
            "vectors_per_second": (
                self.steady_vectors / self.steady_seconds if self.steady_seconds > 0 else last.get("vectors_per_second")
            ),
            "wall_seconds": self.train_seconds,
            "fvu": last.get("fvu"),
            "l0": last.get("l0"),
            "dead_fraction": last.get("dead_fraction"),
            "metrics_source": "last log interval (training batches)",
            "decode_impl": sae.decode_impl,
            "precision": self.precision,
            "device": str(self.device),
            "world_size": self.dist.world,
            "lr": cfg.resolved_lr(),
            "n_latents": sae.n_latents,
            "d_in": cfg.d_in,
            "k": cfg.k,
            "architecture": cfg.architecture,
        }
        if self.several and cfg.hf_layer:
            summary["hf_layer"] = cfg.hf_layer
        if held_out is not None:
            summary.update(evaluate(sae, member.columns(held_out)))
            what = "shard rows" if isinstance(self.source, ShardSource) else "token windows' activations"
            summary["metrics_source"] = f"held-out {what} ({len(held_out)}, never trained on)"
        if isinstance(self.source, HFActivationSource):
            summary.update(self.source.lm_loss_with(reconstruction_of(sae), member.column))
        if self.eval_vectors is not None and isinstance(self.source, SyntheticSource):
            summary.update(evaluate(sae, self.eval_vectors))
            summary["metrics_source"] = f"held-out planted vectors ({len(self.eval_vectors)})"
            summary["recovery"] = feature_recovery(sae.W_dec.detach(), self.source.planted.dictionary)
            summary["recovery_at_init"] = member.init_recovery
        manifest = self.source.manifest if isinstance(self.source, ShardSource) else None
        outputs.export_sae(sae, member.sae_config(self.step, manifest))
        if cfg.plot:
            outputs.plot()
        outputs.write_summary(summary)
        outputs.write_status(state, self.step, self.total_steps, last, reason)
        self._log(
            f"{_prefix(member)}{state} ({reason}) at step {self.step}: FVU {summary['fvu']:.4f} L0 {summary['l0']:.1f} "
            f"dead {summary['dead_fraction']:.2%} {summary['vectors_per_second'] or 0:,.0f} vec/s"
        )
        return summary


def _prefix(member: Member) -> str:
    return f"[{member.name}] " if member.name else ""


def _start_line(step: int, resumed_from: int | None, world: int) -> str:
    if resumed_from is None:
        return "starting"
    if resumed_from == world:
        return f"resumed at step {step}"
    return f"resumed at step {step} (checkpoint from {resumed_from} ranks, now {world}: data position remapped)"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"

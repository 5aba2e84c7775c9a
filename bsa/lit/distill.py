"""DistillationModule: a frozen teacher and a trainable student (SPEC §3–§5).

Two kinds of stage, one module:
* ``guided`` (stage 0, Meng et al. 2023 §4.1): a w-conditioned student matches the classifier-free
  guided teacher x̂_s = x̂_∅ + s (x̂_c − x̂_∅) at every t, for s ~ U[s_min, s_max].
* ``progressive`` (Salimans & Ho 2022, Alg. 2): the student's one DDIM step t → t'' matches two
  teacher steps t → t' → t'' (``bsa.diffusion.distillation_target``).
The loss is w(SNR_t)·‖x̃ − x̂_η(z_t)‖² with w from ``bsa.diffusion.WEIGHTINGS``. Randomness (t, ε, s)
comes from a generator seeded by (seed, global step, global rank): a resumed run draws what an
uninterrupted one would have, and the W ranks of a DDP run draw W different batches of (t, ε, s).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext

import lightning.pytorch as pl
import torch

from bsa.diffusion import (
    classifier_free_guidance,
    distillation_target,
    get_weighting,
    sampling_grid,
    step_grid,
    student_step_triples,
)
from bsa.lit.guard import NonFiniteGuard
from bsa.lit.optim import adamw_warmup_cosine, clip_grad_norm, is_fused
from bsa.models.denoiser import Denoiser, RawOutput
from bsa.models.ema import EMA
from bsa.models.graphs import GraphedCall, release_graphs
from bsa.models.unet import autocast_dtype_group_norms, compile_repeated_blocks


def draw_seed(seed: int, global_step: int, rank: int) -> int:
    """The seed of the draws (t, ε, s) of one optimizer step on one rank. Rank 0 keeps the
    single-process seed (seed·1000003 + step); rank r adds r·0x9E3779B1 mod 2³² (Knuth's golden-ratio
    multiplier), which moves the low 32 bits — the only ones torch's CPU generator keeps — far
    from any step count, so no two (step, rank) pairs of a run share their draws."""
    return seed * 1_000_003 + global_step + (rank * 0x9E3779B1) % (1 << 32)


@contextmanager
def cudnn_heuristics():
    """cuDNN's heuristic choice of convolution algorithms, not its timing of each (``cudnn.benchmark``,
    on in the embedded-gpu preset): for the few calls of a new shape a stage's error profile makes,
    the timing costs more than it saves (on an H100, 2026-12-07: a population's first member's stage
    end took 27.4 s with the timing on, each of the next 16 about 1.6 s, and a profile of the same
    size 1.6 s on the first call of a fresh process without it: experiments/gpu/profile_speed.py)."""
    was = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = was


def profile_rows(ts: list, snr: list, weights: list, x_mse: list, grad_norms: list | None) -> list[dict]:
    """One student's rows of an error profile from its per-step numbers: the ε-space MSE is
    SNR · x-MSE (x = (z − σε)/α), the weighted error w · x-MSE, each step's share of the steps'
    weighted error and (where measured) of their gradient norms."""
    rows = [
        {
            "step": i,
            "t": int(t),
            "snr": s,
            "weight": w,
            "x_mse": e,
            "eps_mse": s * e,
            "weighted": w * e,
            **({"grad_norm": grad_norms[i]} if grad_norms is not None else {}),
        }
        for i, (t, s, w, e) in enumerate(zip(ts, snr, weights, x_mse, strict=True))
    ]
    total = sum(r["weighted"] for r in rows) or 1.0
    total_grad = sum(r.get("grad_norm", 0.0) for r in rows) or 1.0
    for r in rows:
        r["share"] = r["weighted"] / total
        if "grad_norm" in r:
            r["grad_share"] = r["grad_norm"] / total_grad
    return rows


class DistillationModule(NonFiniteGuard, pl.LightningModule):
    def __init__(
        self,
        teacher: Denoiser,
        student: Denoiser,
        null_text_emb: torch.Tensor,
        *,
        mode: str,
        student_steps: int,
        teacher_steps: int | None = None,
        base_steps: int | None = None,
        grid_power: float = 1.0,
        weighting: str = "bsa",
        weighting_kwargs: dict | None = None,
        guidance_scale: float = 2.5,
        guidance_range: tuple[float, float] = (1.0, 5.0),
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        ema_decay: float = 0.0,
        total_steps: int = 1000,
        warmup_steps: int = 0,
        seed: int = 0,
        compile: dict | None = None,
        fused_adamw: bool | None = None,
        teacher_float32: bool = False,
        cuda_graphs: bool = False,
        compile_regions: bool = False,
        low_precision_norms: bool = False,
    ):
        super().__init__()
        if mode not in ("guided", "progressive"):
            raise ValueError(f"mode must be 'guided' or 'progressive', got {mode!r}")
        if mode == "guided" and not student.takes_guidance:
            raise ValueError(
                "guided distillation needs a w-conditioned student (models.unet.with_guidance_input)"
            )
        self.save_hyperparameters(ignore=["teacher", "student", "null_text_emb"])
        self.teacher = teacher.requires_grad_(False).eval()
        self.student = student
        if low_precision_norms:  # GroupNorm in the autocast dtype, the EMA copy's too
            for denoiser in (teacher, student):
                autocast_dtype_group_norms(denoiser)
        self.ema = EMA(student, ema_decay) if ema_decay > 0 else None
        self.weight_fn = get_weighting(weighting, **(weighting_kwargs or {}))
        # torch.compile'd calls of the two denoisers, kept apart from the modules: the state dict,
        # checkpoints, the EMA copy and the exported teacher stay those of the eager modules
        # (a compiled module would rename every key ``_orig_mod.…``; ``nn.Module.compile`` would
        # be copied along by ``deepcopy`` and keep calling the original)
        self._calls = (
            {name: torch.compile(getattr(self, name).forward, **compile) for name in ("teacher", "student")}
            if compile and not compile_regions
            else {}
        )
        # regional compilation: only the UNets' repeated blocks, in place, after the EMA copy; with
        # CUDA graphs too, only the student's — the teacher's no-gradient calls are replayed from
        # graphs instead (a capture, not a compilation: half the graphs of the warm-up)
        if compile and compile_regions:
            for denoiser in (self.student,) if cuda_graphs else (self.teacher, self.student):
                compile_repeated_blocks(denoiser.unet, **compile)
        # CUDA graphs of the denoisers' training calls (``bsa.models.graphs``): both without compile;
        # with compile only beside regional compilation, for the teacher (compile's "reduce-overhead"
        # mode is the compiled way to the same graphs)
        graphed = ("teacher", "student") if not compile else ("teacher",) if compile_regions else ()
        self._graphed = {name: GraphedCall(getattr(self, name)) for name in graphed} if cuda_graphs else {}
        self.register_buffer("null_text_emb", null_text_emb.float().clone())
        if mode == "progressive":
            # the student's steps (t → t'' through the teacher's t') on the nested grids of the plan
            steps = teacher_steps or 2 * student_steps
            triples = student_step_triples(
                sampling_grid(steps, base_steps, teacher.schedule.num_train_timesteps, grid_power)
            )
            if triples[0].shape[0] != student_steps:
                raise ValueError(
                    f"a {steps}-step teacher distils into {triples[0].shape[0]} steps, not {student_steps}"
                )
            for name, value in zip(("step_t", "step_mid", "step_s"), triples, strict=True):
                self.register_buffer(name, value, persistent=False)

    def release_graphs(self) -> None:
        """Drops the CUDA graphs of the training calls and returns their memory. A process trains
        the plan's stages one after another, a module each: a population of 17 on an 80 GB H100
        ran out of memory entering its third stage with 49.7 GiB in graph pools, where the same
        stage resumed in a fresh process trained in 43 GB (2026-12-07). Called when the stage's
        training is over (its teardown; a population's stage end, before its members' exports and
        scores); the training's last gradients go with them (:meth:`GraphedCall.release`)."""
        release_graphs(self._graphed.values())

    def teardown(self, stage: str) -> None:
        self.release_graphs()

    # -- the frozen teacher stays frozen and in eval mode, whatever Lightning does with .train()
    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    @property
    def schedule(self):
        return self.student.schedule

    def _generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(
            draw_seed(self.hparams.seed, self.global_step, self.global_rank)
        )

    def _guidance(self, batch_size: int, g: torch.Generator) -> torch.Tensor:
        lo, hi = self.hparams.guidance_range
        return lo + (hi - lo) * torch.rand(batch_size, generator=g, device=self.device)

    def _with_guidance(self, name: str, text: torch.Tensor, scale: torch.Tensor):
        """x̂(z, t) of the ``name``d denoiser (teacher or student) at guidance ``scale`` [B]: one
        call if w-conditioned, CFG otherwise; its compiled call when ``compile`` was given, its
        graphed call in training when ``cuda_graphs`` was."""
        model = getattr(self, name)
        call = self._calls.get(name, model)
        if name in self._graphed and self.training and self._single_process():
            call = self._graphed[name]  # training only: evaluation runs other shapes
        return self._guided_call(model, text, scale, call)

    def _single_process(self) -> bool:
        return self._trainer is None or self.trainer.world_size == 1

    def teacher_target(self, teacher_fn, z_t: torch.Tensor, t: torch.Tensor, two_steps=None) -> torch.Tensor:
        """The x-space target: the (guided) teacher's x̂ at t (guided stage), or the x that takes
        z_t to the teacher's two DDIM steps t → t' → t'' in one step (``two_steps`` = (t', t''),
        Salimans & Ho 2022, Alg. 2). With ``teacher_float32`` computed outside autocast: a bf16
        target error at high noise is magnified by 1/α in x-space."""
        precision = (
            torch.autocast(self.device.type, enabled=False) if self.hparams.teacher_float32 else nullcontext()
        )
        with torch.no_grad(), precision:
            if two_steps is None:
                return teacher_fn(z_t, t)
            return distillation_target(teacher_fn, z_t, t, *two_steps, self.schedule)

    def distillation_loss(self, latents: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, dict]:
        b, g = latents.shape[0], self._generator()
        hp = self.hparams
        # a w-conditioned student learns every scale in the range; otherwise both run CFG at the fixed scale
        if self.student.takes_guidance:
            scale = self._guidance(b, g)
        else:
            scale = torch.full((b,), hp.guidance_scale, device=self.device)
        teacher_fn = self._with_guidance("teacher", text, scale)
        eps = torch.randn(latents.shape, generator=g, device=self.device, dtype=latents.dtype)
        if hp.mode == "guided":
            t = torch.randint(0, self.schedule.num_train_timesteps, (b,), generator=g, device=self.device)
        else:
            i = torch.randint(0, hp.student_steps, (b,), generator=g, device=self.device)
            t, t_mid, s = self.step_t[i], self.step_mid[i], self.step_s[i]
        alpha, sigma = (v.float().view(-1, 1, 1, 1) for v in self.schedule.alpha_sigma(t))
        z_t = alpha * latents + sigma * eps
        target = self.teacher_target(teacher_fn, z_t, t, None if hp.mode == "guided" else (t_mid, s))
        x_student = self._with_guidance("student", text, scale)(z_t, t)
        # [B], or [K, B] for a population of K students (bsa.lit.population): per member, its mean
        per_example = (x_student.float() - target.float()).pow(2).flatten(-3).mean(-1)
        weight = self.loss_weight(self.schedule.snr(t).float())
        if self.training:  # where the weighted loss sits, per noise level, over the stage's training
            level = i if hp.mode == "progressive" else self._guided_level(t)
            self._accumulate(level, (weight * per_example).detach())
        return (weight * per_example).mean(-1).sum(), {"train/x_mse": per_example.mean().detach()}

    def loss_weight(self, snr: torch.Tensor) -> torch.Tensor:
        """w(SNR) of the loss, per example [B] (a population: per member and example, [K, B])."""
        return self.weight_fn(snr)

    # -- the weighted loss per noise level during training (issue "A weighting study…", part 1)
    LEVELS_GUIDED = 25  # the guided stage's t ∈ [0, T) in equal bins, highest noise first

    def _levels(self) -> int:
        return self.hparams.student_steps if self.hparams.mode == "progressive" else self.LEVELS_GUIDED

    def _guided_level(self, t: torch.Tensor) -> torch.Tensor:
        T = self.schedule.num_train_timesteps
        return (T - 1 - t) * self.LEVELS_GUIDED // T

    def _accumulate(self, level: torch.Tensor, weighted: torch.Tensor) -> None:
        sums = getattr(self, "_level_sums", None)
        if sums is None or sums.device != weighted.device:  # [2, levels] ([2, K, levels]: a population)
            shape = (2, *weighted.shape[:-1], self._levels())
            sums = torch.zeros(shape, dtype=torch.float64, device=weighted.device)
            if getattr(self, "_level_sums_restored", None) is not None:  # from a resumed checkpoint
                sums += self._level_sums_restored.to(sums.device)
                self._level_sums_restored = None
        sums[0].index_add_(-1, level, weighted.double())
        sums[1].index_add_(-1, level, torch.ones_like(weighted, dtype=torch.float64))
        self._level_sums = sums

    def level_sums(self) -> torch.Tensor | None:
        """[2, levels] (a population: [2, K, levels]): the weighted loss summed per noise level over
        this stage's training so far, and the examples counted — the ones restored from a resumed
        checkpoint until training adds to them; None before any."""
        sums = getattr(self, "_level_sums", None)
        return sums if sums is not None else getattr(self, "_level_sums_restored", None)

    def training_profile(self) -> list[dict]:
        """Per noise level (student step, or guided bin), the mean weighted loss over this stage's
        training so far (resumes included) and its share of the summed means."""
        sums = self.level_sums()
        if sums is None:
            return []
        total, count = sums.cpu()
        mean = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
        share = mean / mean.sum() if float(mean.sum()) > 0 else mean
        return [
            {"level": k, "examples": int(count[k]), "weighted_loss": float(mean[k]), "share": float(share[k])}
            for k in range(len(mean))
        ]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        sums = getattr(self, "_level_sums", None)
        if sums is not None:
            checkpoint["bsa_loss_by_level"] = sums.cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._level_sums_restored = checkpoint.get("bsa_loss_by_level")
        self._level_sums = None

    def error_profile(
        self, latents: torch.Tensor, text: torch.Tensor, seed: int = 0, **options
    ) -> list[dict]:
        """The student's rows of :meth:`error_profiles` (a single student's only profile)."""
        profiles = self.error_profiles(latents, text, seed, **options)
        if len(profiles) != 1:
            raise ValueError(f"a population of {len(profiles)} students has a profile each: error_profiles")
        return profiles[0]

    @torch.no_grad()
    @cudnn_heuristics()
    def error_profiles(
        self,
        latents: torch.Tensor,
        text: torch.Tensor,
        seed: int = 0,
        points: int = 25,
        grad_clips: int = 16,
        batch_items: int = 1024,
        gradient_elements: int = 1 << 28,
    ) -> list[list[dict]]:
        """The distillation error per noise level of the current student (its EMA when kept), one
        list of rows per student (one; a population's K: :class:`bsa.lit.population.
        PopulationDistillationModule`, every member measured in the same calls): for each student
        step (progressive) or each of ``points`` timesteps of the step grid (guided), the x-space
        MSE against the teacher's target on the same (latents, noise), its ε-space MSE
        (= SNR · x-MSE), the loss weight, the share of the weighted loss, and the norm of the
        weighted loss's gradient with respect to the trained student's parameters (``grad_norm``,
        the live student even when an EMA is kept: it is what the optimizer moves) with its share
        of the steps' total, on the first ``grad_clips`` items (issue "A weighting study…", part 1).
        The guidance scale is the evaluation scale.

        The steps are batched: each call of a denoiser takes as many steps' items as fit
        ``batch_items`` (members' items counted; a step's rows are its own: its x-MSE is the mean
        over its items), and one backward pass gives every step's gradient
        (:meth:`_weighted_grad_norms`) — at a 100-step stage a few calls instead of 500
        launch-bound ones, which cost a population of 17 about 2.5 minutes a stage;
        ``gradient_elements`` bounds the steps' gradients held at once."""
        student = self.ema.module if self.ema is not None else self.student
        g = torch.Generator(device=self.device).manual_seed(seed)
        b = latents.shape[0]
        eps = torch.randn(latents.shape, generator=g, device=self.device, dtype=latents.dtype)
        scale = torch.full((b,), self.hparams.guidance_scale, device=self.device)
        if self.hparams.mode == "progressive":
            n = self.hparams.student_steps
            ts, two_steps = self.step_t[:n], (self.step_mid[:n], self.step_s[:n])
        else:
            ts, two_steps = step_grid(points, self.schedule.num_train_timesteps).to(self.device), None
        snr = self.schedule.snr(ts).float()
        weights = self.loss_weight(snr).float().view(-1, len(ts))  # [M, S]: M students
        k = min(grad_clips, b) if any(q.requires_grad for q in self.student.parameters()) else 0
        x_mse, z_k, target_k = [], [], []
        per_call = max(1, batch_items // (b * weights.shape[0]))
        for lo in range(0, len(ts), per_call):
            c = len(ts[lo : lo + per_call])
            tb = ts[lo : lo + c].repeat_interleave(b)  # step j's items are rows j·b … (j+1)·b − 1
            text_c, scale_c = text.repeat(c, *(1,) * (text.dim() - 1)), scale.repeat(c)
            alpha, sigma = (v.float().view(-1, 1, 1, 1) for v in self.schedule.alpha_sigma(tb))
            z_t = alpha * latents.repeat(c, 1, 1, 1) + sigma * eps.repeat(c, 1, 1, 1)
            two = None if two_steps is None else tuple(v[lo : lo + c].repeat_interleave(b) for v in two_steps)
            # [c·b, …], or [K, c·b, …] where the teachers or the students are a population of K
            target = self.teacher_target(self._with_guidance("teacher", text_c, scale_c), z_t, tb, two)
            with torch.no_grad():
                x = self._guided_call(student, text_c, scale_c)(z_t, tb)
            error = (x.float() - target.float()).pow(2).flatten(-3).mean(-1)  # [(K,) c·b]
            x_mse.append(error.unflatten(-1, (c, b)).mean(-1).view(-1, c))  # [M, c]
            z_k.append(z_t.view(c, b, *z_t.shape[1:])[:, :k])
            per_step = target.unflatten(-4, (c, b))[..., :k, :, :, :]  # [(K,) c, k, …]
            target_k.append(per_step.movedim(0, 1) if per_step.dim() == 6 else per_step)  # [c, (K,) k, …]
        x_mse = torch.cat(x_mse, 1).expand(weights.shape[0], -1).tolist()
        grad_norms = (
            self._weighted_grad_norms(
                text[:k], scale[:k], torch.cat(z_k), ts, torch.cat(target_k), weights, gradient_elements
            )
            if k
            else [None] * weights.shape[0]
        )
        return [
            profile_rows(ts.tolist(), snr.tolist(), w, e, n)
            for w, e, n in zip(weights.tolist(), x_mse, grad_norms, strict=True)
        ]

    def _guided_call(self, denoiser, text: torch.Tensor, scale: torch.Tensor, call=None):
        """x̂(z, t) of ``denoiser`` at guidance ``scale`` [B] through ``call`` (default: the module):
        one call if w-conditioned, CFG otherwise."""
        call = call or denoiser
        if denoiser.takes_guidance:
            return lambda z, t: call(z, t, text, scale)
        null = self.null_text_emb.to(text.dtype)
        return classifier_free_guidance(lambda z, t, c: call(z, t, c), text, null, scale)

    def _weighted_grad_norms(self, text, scale, z_t, t, target, weights, max_elements: int = 1 << 28) -> list:
        """Per student m and step i: ‖∇_θ w_mi · mean((x̂_θ(z_t[i]) − target[i])²)‖₂ for the trained
        student θ (z_t [S, k, …], target [S, k, …] or [S, K, k, …] per member, t [S], weights
        [M, S]; no optimizer step, nothing accumulated into ``.grad``) — [M][S]. The steps are a
        population of copies of θ (``bsa.models.population``; of a population of K students: K
        members each): one ``vmap``ped call of a batchable copy of the student's network gives each
        copy's raw output on its step's items — guidance included, CFG being linear in the output
        as the x̂ conversion is at one (z, t) — and the x̂ conversion and the loss follow outside
        ``vmap``, as a population's training does (the schedule sees ordinary timesteps). One
        backward pass gives every step's gradient in its row; ``max_elements`` bounds the
        gradients held at once (chunks of steps)."""
        from torch.func import functional_call, vmap

        from bsa.models.population import batchable

        student = self.student
        trained = {f"denoiser.{n}": q.detach() for n, q in student.named_parameters() if q.requires_grad}
        frozen = {f"denoiser.{n}": q.detach() for n, q in student.named_parameters() if not q.requires_grad}
        frozen.update({f"denoiser.{n}": b for n, b in student.named_buffers()})
        skeleton = RawOutput(batchable(student)).to("meta")  # the state comes from the student

        def network(params, z, step_t):  # one step's raw outputs, under vmap
            state = {**frozen, **params}
            call = lambda *args: functional_call(skeleton, state, args)  # noqa: E731
            return self._guided_call(student, text, scale, call)(z, step_t.expand(z.shape[0]))

        size = sum(q.numel() for q in trained.values())
        chunk = max(1, max_elements // max(size, 1))
        norms = []
        for lo in range(0, len(t), chunk):
            c = len(t[lo : lo + chunk])
            copies = {n: q.expand(c, *q.shape).requires_grad_() for n, q in trained.items()}
            z, t_c = z_t[lo : lo + c], t[lo : lo + c]
            with torch.enable_grad():
                out = vmap(network)(copies, z, t_c)  # [c, k, …], or [c, K, k, …] for K students
                lead = out.shape[:-3]
                if len(lead) == 3:
                    z = z.unsqueeze(1).expand(*lead, *z.shape[2:])
                steps = t_c.view(-1, *(1,) * (len(lead) - 1)).expand(lead)
                x = student.x_from_output(out.flatten(0, -4), z.flatten(0, -4), steps.flatten()).view(
                    out.shape
                )
                goal = target[lo : lo + c].float()
                goal = goal.unsqueeze(1) if goal.dim() < x.dim() else goal  # one teacher's, shared
                error = (x - goal).pow(2).flatten(len(lead) - 1).mean(-1)  # [c] or [c, K]
                losses = weights[:, lo : lo + c].movedim(0, -1).view(error.shape) * error
                grads = torch.autograd.grad(losses.sum(), list(copies.values()), allow_unused=True)
            norms.append(
                torch.sqrt(sum(g.float().pow(2).flatten(error.dim()).sum(-1) for g in grads if g is not None))
            )
        return torch.cat(norms).view(len(t), -1).movedim(0, -1).tolist()  # [M][S]

    def training_step(self, batch: dict, batch_idx: int):
        loss, logs = self.distillation_loss(batch["latents"], batch["text_emb"])
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict(logs)
        return self.guard(loss)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, logs = self.distillation_loss(batch["latents"], batch["text_emb"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        self.log("val/x_mse", logs["train/x_mse"], sync_dist=True)

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # the EMA follows the optimizer step at once: Lightning runs the callbacks' on_train_batch_end
        # (the periodic checkpoint among them) before the module's, so an update made there would
        # be one step behind in every checkpoint
        if self.ema is not None:
            self.ema.update(self.student)

    def _gradient_scaler_in_use(self) -> bool:
        if self._trainer is None:  # stepped by hand (tests, probes): no precision plugin
            return False
        return getattr(self.trainer.precision_plugin, "scaler", None) is not None

    def configure_optimizers(self):
        hp = self.hparams
        fused = hp.fused_adamw
        if fused is None:  # fused where it is faster and its gradients can be clipped (no fp16 scaler)
            fused = self.device.type == "cuda" and not self._gradient_scaler_in_use()
        return adamw_warmup_cosine(
            self.student.parameters(),
            hp.lr,
            hp.total_steps,
            hp.warmup_steps,
            weight_decay=self.hparams.weight_decay,
            fused=fused,
        )

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if (
            gradient_clip_val
            and is_fused(optimizer)
            and gradient_clip_algorithm in (None, "norm")
            and not self._gradient_scaler_in_use()
        ):
            clip_grad_norm(optimizer, gradient_clip_val)  # what Lightning would do, were it not fused
        else:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def export_teacher(self) -> Denoiser:
        """The next stage's teacher: a frozen copy of the student (its EMA if kept), not aliased."""
        source = self.ema.module if self.ema is not None else self.student
        return copy.deepcopy(source).float().eval().requires_grad_(False)

"""The Twin-GAN objective: adversarial losses, gradient penalties, and the per-step G and D losses.

What the original computes (../shared/research/twingan.md, section 2), per domain d and summed over domains:

- a same-domain reconstruction x -> E_d -> G_d, trained with an L1 loss (the original calls it "cycle") and,
  from 64x64 on, with a GAN loss of its own;
- translations x_s -> E_s -> G_t, trained with a non-saturating GAN loss against D_t;
- "semantic consistency": an L1 loss between E_s(x_s) and E_t(translation), with no stop-gradient;
- a DRAGAN gradient penalty on each discriminator, weight 0.25.

This module generalises that to any number of domains (every ordered pair s != t is a translation) and adds
options the original lacked: a hinge loss, an R1 penalty, lazy regularisation, and a true two-way pixel cycle.
The functions are pure so they can be checked against hand-computed values; `TwinGANObjective` assembles them
for one step against the model interface of `training.networks.TwinGAN` (see `TwinGANModel`).

Deliberate differences from the original, each documented where it happens:

- The DRAGAN perturbation uses the standard deviation of the batch; the original used the variance by mistake,
  which made the perturbation 3-5x smaller than its own comment intended.
- Pixel L1 losses are measured in the original's [0, 1] units (`PIXEL_L1_SCALE`), so that the default weights
  mean what the original's flags meant although our images are in [-1, 1].
- Translation terms are averaged over the targets of each source (divided by n - 1), so that a third domain
  does not multiply their weight; with two domains this is exactly the original's sum.

The weights and kinds are `core.params.LossParams` (train.loss), validated once when params.yaml is loaded.

Losses are computed in float32 whatever the dtype of the model's outputs (bf16 autocast included): a bf16
mean over a batch of softplus values, or a squared gradient norm, loses the precision the optimiser needs.
Only torch, the standard library and core.params (pydantic) are imported: this module runs on GPU machines
without the data stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from core.params import LossParams

ADVERSARIAL_KINDS: tuple[str, ...] = get_args(LossParams.model_fields["adversarial"].annotation)
GRADIENT_PENALTIES: tuple[str, ...] = get_args(LossParams.model_fields["gradient_penalty"].annotation)

# Images are in [-1, 1]; the original's were in [0, 1]. |x - y| in [-1, 1] is twice |x - y| in [0, 1], so pixel
# L1 losses are halved to keep the original's weights (recon_l1 = 1.0) at the original's strength relative to
# the GAN terms, whose values do not depend on the pixel range.
PIXEL_L1_SCALE = 0.5


class TwinGANModel(Protocol):
    """What the objective needs from a model: `training.networks.TwinGAN` implements it.

    `domain` is a domain name; `**grow` (resolution=..., alpha=...) is passed through unchanged. The latent is
    (B, C, 4, 4); `skips` are the UNet taps by resolution (None allowed by `decode`); images are in [-1, 1].
    """

    config: Any  # has .domains: tuple[str, ...]

    def encode(self, image: Tensor, domain: str, **grow: Any) -> tuple[Tensor, dict[int, Tensor]]: ...

    def decode(
        self, latent: Tensor, skips: dict[int, Tensor] | None, domain: str, tags: Tensor | None = None, **grow: Any
    ) -> Tensor: ...

    def discriminate(self, image: Tensor, domain: str, tags: Tensor | None = None, **grow: Any) -> Tensor: ...


# --------------------------------------------------------------------------------------------------------------
# Pure loss functions


def generator_adversarial(fake_logits: Tensor, kind: str = "nonsaturating") -> Tensor:
    """The generator's loss on D's logits for its outputs: it wants them judged real.

    Non-saturating: -log sigmoid(l) = softplus(-l), the original's sigmoid BCE with label 1. Hinge: -l.
    """
    logits = fake_logits.float()
    if kind == "nonsaturating":
        return F.softplus(-logits).mean()
    if kind == "hinge":
        return -logits.mean()
    raise ValueError(f"adversarial loss {kind!r}: not one of {', '.join(ADVERSARIAL_KINDS)}")


def discriminator_adversarial(real_logits: Tensor, fake_logits: Tensor, kind: str = "nonsaturating") -> Tensor:
    """The discriminator's loss: real judged real, fake judged fake. Each side is a mean over its own batch.

    Non-saturating: softplus(-real) + softplus(fake), the sigmoid BCE with labels 1 and 0. Hinge:
    relu(1 - real) + relu(1 + fake).
    """
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"adversarial loss {kind!r}: not one of {', '.join(ADVERSARIAL_KINDS)}")


def _per_sample(shape: torch.Size, ndim: int) -> tuple[int, ...]:
    return (shape[0],) + (1,) * (ndim - 1)


def _input_gradient(logits: Tensor, inputs: Tensor) -> Tensor:
    """d(sum of logits)/d(inputs), kept in the graph so the penalty trains D; float32 for the norms."""
    (grad,) = torch.autograd.grad(logits.float().sum(), inputs, create_graph=True)
    return grad.float().flatten(1)


def dragan_penalty(
    discriminate: Callable[[Tensor], Tensor],
    real: Tensor,
    scale: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DRAGAN (Kodali et al. 2017): mean over samples of (||grad D(x_hat)||_2 - 1)^2, near the real data.

    x_pert = real + scale * std(real) * U[-1, 1] (elementwise), alpha ~ U[0, 1] per sample, and
    x_hat = real + alpha * (x_pert - real). std is one number over the whole batch and all pixels, as the
    original, but it is the standard deviation (population, like tf.nn.moments): the original took
    `moments(...)[1]`, the variance, by mistake. The penalty is unweighted: multiply by gp_weight outside.

    `generator` makes the perturbation reproducible; its device is where the random numbers are drawn.
    """
    base = real.detach()
    device = generator.device if generator is not None else base.device
    noise = torch.rand(base.shape, generator=generator, device=device).to(base.device) * 2.0 - 1.0
    alpha = torch.rand(_per_sample(base.shape, base.ndim), generator=generator, device=device).to(base.device)
    as_float = base.float()
    perturbation = scale * as_float.std(correction=0) * noise
    x_hat = (as_float + alpha * perturbation).to(base.dtype).requires_grad_(True)
    grad = _input_gradient(discriminate(x_hat), x_hat)
    return (torch.linalg.vector_norm(grad, dim=1) - 1.0).square().mean()


def r1_penalty(discriminate: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): 0.5 * mean over samples of ||grad D(real)||^2.

    The 0.5 is part of the penalty so that gp_weight is StyleGAN's gamma: the D loss gets gamma / 2 * E||grad||^2.
    """
    inputs = real.detach().requires_grad_(True)
    return _r1_from_logits(discriminate(inputs), inputs)


def _r1_from_logits(logits: Tensor, inputs: Tensor) -> Tensor:
    return 0.5 * _input_gradient(logits, inputs).square().sum(dim=1).mean()


def pixel_l1(target: Tensor, output: Tensor) -> Tensor:
    """Mean absolute pixel error in the original's [0, 1] units (images are in [-1, 1]: see PIXEL_L1_SCALE)."""
    return PIXEL_L1_SCALE * (target.float() - output.float()).abs().mean()


def latent_l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference of two latents. Both sides keep their gradients, as the original."""
    return (a.float() - b.float()).abs().mean()


# --------------------------------------------------------------------------------------------------------------
# The objective of one training step


Batches = Mapping[str, Mapping[str, Tensor]]


class TwinGANObjective:
    """The generator and discriminator losses of one Twin-GAN step, for any number of domains.

    `batches[domain] = {"image": (B, 3, r, r), "tags": (B, V) or absent}`; extra keys are ignored. Domains are
    taken in the order of `model.config.domains`; a batch of a domain the model does not have is an error.

    Weighting, for n domains: per-domain terms (reconstruction L1 and GAN) are summed over domains, as the
    original summed its two domains. The n(n-1) translation terms (GAN, semantic, cycle) are summed and divided
    by n - 1, i.e. each source's translations are averaged over its targets. With two domains this is exactly
    the original; with three, translation terms keep the same weight relative to the reconstruction terms
    instead of doubling. The discriminator side mirrors it: D_t's loss on translations is averaged over the
    sources translated into t, and the losses of the (disjoint) discriminators are summed.

    The stats dicts hold unweighted term values, so `total` can be recomputed from them and the weights.

    The loop calls `generator_loss` then `discriminator_loss` in the same step: the translations and
    reconstructions of the G call are kept, detached, in `last_fakes[(s, t)]` and `last_recons[d]` (with the
    tags they were conditioned on) and are what the D call judges unless others are passed. The G loss also
    puts gradients on D's parameters (D judges the fakes): the loop must step only G's optimiser with it.
    """

    def __init__(
        self, model: TwinGANModel, config: LossParams | None = None, *, generator: torch.Generator | None = None
    ) -> None:
        self.model = model
        self.config = config if config is not None else LossParams()
        self.generator = generator  # for DRAGAN's random perturbation; None = torch's global RNG
        self.last_fakes: dict[tuple[str, str], Tensor] = {}
        self.last_recons: dict[str, Tensor] = {}
        self.last_tags: dict[str, Tensor | None] = {}

    # ----------------------------------------------------------------------------------------------------------

    def generator_loss(
        self, batches: Batches, *, grow: Mapping[str, Any] | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The encoder's and generator's loss: reconstructions, translations of every ordered pair, and their terms.

        Each translation s -> t is conditioned on the tags of the t batch: a real tag vector of the target
        domain, hence a plausible one, and D_t judges it against the same tags.
        """
        cfg, model, kw = self.config, self.model, dict(grow or {})
        domains = self._domains(batches)
        images = {d: batches[d]["image"] for d in domains}
        tags = {d: batches[d].get("tags") for d in domains}
        pairs = [(s, t) for s in domains for t in domains if s != t]
        terms: dict[str, Tensor] = {}
        weighted: list[Tensor] = []

        def add(key: str, value: Tensor, weight: float) -> None:
            terms[key] = value
            weighted.append(weight * value)

        translate = cfg.translation_gan > 0 or cfg.semantic > 0 or cfg.cycle > 0
        if translate:
            _check_batch_sizes(images, tags)
        encoded = {d: model.encode(images[d], d, **kw) for d in domains}
        self.last_fakes, self.last_recons, self.last_tags = {}, {}, dict(tags)

        if cfg.recon_l1 > 0 or cfg.recon_gan > 0:
            for d in domains:
                latent, skips = encoded[d]
                recon = model.decode(latent, skips, d, tags[d], **kw)
                self.last_recons[d] = recon.detach()
                if cfg.recon_l1 > 0:
                    add(f"g/recon_l1/{d}", pixel_l1(images[d], recon), cfg.recon_l1)
                if cfg.recon_gan > 0:
                    logits = model.discriminate(recon, d, tags[d], **kw)
                    add(f"g/recon_gan/{d}", generator_adversarial(logits, cfg.adversarial), cfg.recon_gan)

        pair_scale = 1.0 / (len(domains) - 1) if pairs else 0.0
        for s, t in pairs if translate else ():
            latent, skips = encoded[s]
            fake = model.decode(latent, skips, t, tags[t], **kw)
            self.last_fakes[(s, t)] = fake.detach()
            name = f"{s}->{t}"
            if cfg.translation_gan > 0:
                logits = model.discriminate(fake, t, tags[t], **kw)
                value = generator_adversarial(logits, cfg.adversarial)
                add(f"g/translation_gan/{name}", value, cfg.translation_gan * pair_scale)
            if cfg.semantic > 0 or cfg.cycle > 0:
                latent_back, skips_back = model.encode(fake, t, **kw)
                if cfg.semantic > 0:
                    add(f"g/semantic/{name}", latent_l1(latent, latent_back), cfg.semantic * pair_scale)
                if cfg.cycle > 0:
                    back = model.decode(latent_back, skips_back, s, tags[s], **kw)
                    add(f"g/cycle/{name}", pixel_l1(images[s], back), cfg.cycle * pair_scale)

        if not weighted:  # e.g. one domain and only translation terms
            raise ValueError(f"no generator term applies to domains {list(domains)} with {cfg}")
        total = torch.stack(weighted).sum()
        return total, _floats(terms, "g/total", total)

    # ----------------------------------------------------------------------------------------------------------

    def discriminator_loss(
        self,
        batches: Batches,
        *,
        fakes: Mapping[tuple[str, str], Tensor] | None = None,
        recons: Mapping[str, Tensor] | None = None,
        step: int = 0,
        grow: Mapping[str, Any] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """The discriminators' loss: each D_t on real x_t against the translations into t and t's reconstructions.

        Per domain t: translation_gan * mean over sources s of D-adv(x_t, s -> t) (the original's GAN term),
        plus recon_gan * D-adv(x_t, recon_t) (the original's second real and fake term, same weights as the
        G side so that a weight of 0 removes the game on both sides), plus the gradient penalty on x_t:
        gp_weight * gp_every * penalty when step % gp_every == 0 (lazy regularisation keeps the penalty's
        average strength). The penalty is per discriminator, on real data; the original attached it to the
        translation term, which is the same penalty on the same D.

        Fakes are always detached: this loss must never train the encoder or generator. By default they are
        the last `generator_loss` call's, judged with the tags they were generated with; passed `fakes` and
        `recons` are judged with the tags of `batches` (of the target domain).
        """
        cfg, model, kw = self.config, self.model, dict(grow or {})
        if cfg.translation_gan <= 0 and cfg.recon_gan <= 0:
            raise RuntimeError("translation_gan and recon_gan are both 0: the discriminators have no loss")
        domains = self._domains(batches)
        tags = {d: batches[d].get("tags") for d in domains}
        fake_tags = self.last_tags if fakes is None else tags
        recon_tags = self.last_tags if recons is None else tags
        fakes = self.last_fakes if fakes is None else fakes
        recons = self.last_recons if recons is None else recons
        penalise = cfg.gradient_penalty != "none" and cfg.gp_weight > 0 and step % cfg.gp_every == 0
        terms: dict[str, Tensor] = {}
        weighted: list[Tensor] = []

        for t in domains:
            real = batches[t]["image"]
            sources = [s for s in domains if s != t] if cfg.translation_gan > 0 else []
            missing = [f"{s}->{t}" for s in sources if (s, t) not in fakes]
            if missing or (cfg.recon_gan > 0 and t not in recons):
                what = ", ".join(missing) if missing else f"the reconstruction of {t}"
                raise RuntimeError(f"no {what} to judge: call generator_loss first, or pass fakes and recons")

            def judge(image: Tensor, cond: Tensor | None, t: str = t) -> Tensor:
                return model.discriminate(image, t, cond, **kw)

            penalty: Tensor | None = None
            if penalise and cfg.gradient_penalty == "r1":  # one D pass on real serves the loss and the penalty
                real_in = real.detach().requires_grad_(True)
                real_logits = judge(real_in, tags[t])
                penalty = _r1_from_logits(real_logits, real_in)
            else:
                real_logits = judge(real, tags[t])
            terms[f"d/real_logit/{t}"] = real_logits.detach().float().mean()

            if sources:
                fake_logits = [judge(fakes[(s, t)].detach(), fake_tags.get(t)) for s in sources]
                adv = torch.stack([discriminator_adversarial(real_logits, f, cfg.adversarial) for f in fake_logits])
                terms[f"d/adv/{t}"] = adv.mean()
                terms[f"d/fake_logit/{t}"] = torch.cat([f.detach().float().flatten() for f in fake_logits]).mean()
                weighted.append(cfg.translation_gan * adv.mean())
            if cfg.recon_gan > 0:
                recon_logits = judge(recons[t].detach(), recon_tags.get(t))
                value = discriminator_adversarial(real_logits, recon_logits, cfg.adversarial)
                terms[f"d/recon_adv/{t}"] = value
                terms[f"d/recon_logit/{t}"] = recon_logits.detach().float().mean()
                weighted.append(cfg.recon_gan * value)
            if penalise:
                if penalty is None:  # DRAGAN: its own D pass, on perturbed real data
                    penalty = dragan_penalty(lambda x, c=tags[t]: judge(x, c), real, cfg.dragan_scale, self.generator)
                terms[f"d/gp/{t}"] = penalty
                weighted.append(cfg.gp_weight * cfg.gp_every * penalty)

        total = torch.stack(weighted).sum()
        return total, _floats(terms, "d/total", total)

    # ----------------------------------------------------------------------------------------------------------

    def _domains(self, batches: Batches) -> tuple[str, ...]:
        known = tuple(self.model.config.domains)
        unknown = sorted(set(batches) - set(known))
        if unknown:
            raise ValueError(f"batches of unknown domains {unknown}: the model has {list(known)}")
        domains = tuple(d for d in known if d in batches)
        if not domains:
            raise ValueError("no batches given")
        return domains


def _check_batch_sizes(images: Mapping[str, Tensor], tags: Mapping[str, Tensor | None]) -> None:
    """A translation s -> t is conditioned on the t batch's tags: with tags, all batches must have one size."""
    sizes = {d: image.shape[0] for d, image in images.items()}
    sizes |= {f"{d} tags": t.shape[0] for d, t in tags.items() if t is not None}
    if len(set(sizes.values())) > 1 and any(t is not None for t in tags.values()):
        listed = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise ValueError(f"translations are conditioned on the target batch's tags: batch sizes must match ({listed})")


def _floats(terms: Mapping[str, Tensor], total_key: str, total: Tensor) -> dict[str, float]:
    """Stats as Python floats, read with one device sync rather than one per term."""
    keys = [*terms, total_key]
    values = torch.stack([v.detach().float().reshape(()) for v in (*terms.values(), total)]).tolist()
    return dict(zip(keys, values, strict=True))

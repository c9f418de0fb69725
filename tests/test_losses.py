"""Twin-GAN losses: hand-computed values of the pure functions, and the step objective on stand-in models.

The stand-ins implement the interface of `training.networks.TwinGAN` (encode / decode / discriminate /
config.domains) with a few tiny layers and record every call, so the tests can see which computations a
configuration runs and with which domain, tags and growing arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.params import LossParams
from training.losses import (
    PIXEL_L1_SCALE,
    TwinGANObjective,
    discriminator_adversarial,
    dragan_penalty,
    generator_adversarial,
    r1_penalty,
)

RES = 8
TAGS = 5
TWO = ("human", "anime")
THREE = ("human", "anime", "cat")
GENERATOR_TERMS = ("recon_l1", "recon_gan", "translation_gan", "semantic", "cycle")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The tensors are tiny: intra-op threads only contend (10x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class StandIn(nn.Module):
    """A tiny model with TwinGAN's interface: conv + pool encoder, per-domain-bias decoder, one small D per domain."""

    def __init__(self, domains: tuple[str, ...], channels: int = 6) -> None:
        super().__init__()
        self.config = SimpleNamespace(domains=domains)
        self.enc = nn.Conv2d(3, channels, 3, padding=1)
        self.dec_in = nn.Conv2d(channels, channels, 1)
        self.dec_out = nn.Conv2d(channels, 3, 3, padding=1)
        self.dec_bias = nn.ParameterDict({d: nn.Parameter(0.1 * torch.randn(channels, 1, 1)) for d in domains})
        self.tag_embed = nn.Linear(TAGS, channels, bias=False)
        self.disc = nn.ModuleDict(
            {
                d: nn.Sequential(
                    nn.Conv2d(3, 4, 3, padding=1),
                    nn.LeakyReLU(0.2),
                    nn.AdaptiveAvgPool2d(2),
                    nn.Flatten(),
                    nn.Linear(16, 1),
                )
                for d in domains
            }
        )
        self.disc_tags = nn.ParameterDict({d: nn.Parameter(0.1 * torch.randn(TAGS)) for d in domains})
        self.calls: list[tuple[str, str, Any, dict]] = []

    def encode(self, image: Tensor, domain: str, **grow: Any) -> tuple[Tensor, dict[int, Tensor]]:
        self.calls.append(("encode", domain, None, grow))
        features = F.leaky_relu(self.enc(image), 0.2)
        return F.adaptive_avg_pool2d(features, 4), {image.shape[-1]: features}

    def decode(
        self, latent: Tensor, skips: dict[int, Tensor] | None, domain: str, tags: Tensor | None = None, **grow: Any
    ) -> Tensor:
        self.calls.append(("decode", domain, tags, grow))
        resolution = grow.get("resolution", RES)
        h = F.interpolate(latent, size=resolution, mode="nearest") + self.dec_bias[domain]
        if tags is not None:
            h = h + self.tag_embed(tags)[:, :, None, None]
        if skips:
            h = h + skips[resolution]
        return self.dec_out(F.leaky_relu(self.dec_in(h), 0.2))

    def discriminate(self, image: Tensor, domain: str, tags: Tensor | None = None, **grow: Any) -> Tensor:
        self.calls.append(("discriminate", domain, tags, grow))
        logits = self.disc[domain](image).squeeze(1)
        if tags is not None:
            logits = logits + tags @ self.disc_tags[domain]
        return logits

    def generator_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("disc")]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name.startswith("disc")]

    def count(self, kind: str, domain: str | None = None) -> int:
        return sum(1 for call in self.calls if call[0] == kind and (domain is None or call[1] == domain))


class IdentityModel(nn.Module):
    """encode and decode are the identity whatever the domain: a translation re-encodes to its source latent."""

    def __init__(self, domains: tuple[str, ...]) -> None:
        super().__init__()
        self.config = SimpleNamespace(domains=domains)
        self.scale = nn.Parameter(torch.ones(()))

    def encode(self, image: Tensor, domain: str, **grow: Any) -> tuple[Tensor, dict[int, Tensor]]:
        return image * self.scale, {}

    def decode(self, latent: Tensor, skips: Any, domain: str, tags: Tensor | None = None, **grow: Any) -> Tensor:
        return latent

    def discriminate(self, image: Tensor, domain: str, tags: Tensor | None = None, **grow: Any) -> Tensor:
        return image.flatten(1).mean(1)


def make_batches(domains: tuple[str, ...], batch: int = 3, seed: int = 0) -> dict[str, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return {
        d: {
            "image": torch.rand(batch, 3, RES, RES, generator=g) * 2 - 1,
            "tags": (torch.rand(batch, TAGS, generator=g) > 0.5).float(),
        }
        for d in domains
    }


def pairs(domains: tuple[str, ...]) -> list[str]:
    return [f"{s}->{t}" for s in domains for t in domains if s != t]


def objective(domains: tuple[str, ...], seed: int = 0, **config: Any) -> tuple[StandIn, TwinGANObjective]:
    torch.manual_seed(seed)
    model = StandIn(domains)
    return model, TwinGANObjective(model, LossParams(**config), generator=torch.Generator().manual_seed(seed))


def only(term: str) -> dict[str, float]:
    """A config with one generator term on and the others off."""
    return {name: (1.0 if name == term else 0.0) for name in GENERATOR_TERMS}


# ----------------------------------------------------------------------------------------------------------------
# Adversarial losses


def test_generator_adversarial_hand_values() -> None:
    logits = torch.tensor([0.0, math.log(3.0)])
    # softplus(-0) = ln 2, softplus(-ln 3) = ln(1 + 1/3) = ln(4/3)
    assert generator_adversarial(logits, "nonsaturating").item() == pytest.approx(0.5 * math.log(8 / 3))
    assert generator_adversarial(torch.tensor([2.0, -1.0]), "hinge").item() == pytest.approx(-0.5)


def test_discriminator_adversarial_hand_values() -> None:
    real, fake = torch.tensor([0.0, math.log(3.0)]), torch.tensor([0.0, -math.log(3.0)])
    assert discriminator_adversarial(real, fake, "nonsaturating").item() == pytest.approx(math.log(8 / 3))
    # relu(1 - [2, 0.5]) = [0, 0.5] -> 0.25; relu(1 + [-2, 0.5]) = [0, 1.5] -> 0.75
    hinge = discriminator_adversarial(torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5]), "hinge")
    assert hinge.item() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["nonsaturating", "hinge"])
def test_adversarial_gradient_signs(kind: str) -> None:
    fake = torch.zeros(4, requires_grad=True)
    generator_adversarial(fake, kind).backward()
    assert (fake.grad < 0).all(), "G lowers its loss by raising D's logits on its outputs"

    real, fake = torch.zeros(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    discriminator_adversarial(real, fake, kind).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all(), "D raises real logits and lowers fake ones"


def test_adversarial_float32_from_bf16_and_unknown_kind() -> None:
    logits = torch.randn(6).to(torch.bfloat16)
    assert generator_adversarial(logits).dtype == torch.float32
    assert discriminator_adversarial(logits, logits, "hinge").dtype == torch.float32
    with pytest.raises(ValueError, match="wgan"):
        generator_adversarial(logits, "wgan")
    with pytest.raises(ValueError, match="wgan"):
        discriminator_adversarial(logits, logits, "wgan")


# ----------------------------------------------------------------------------------------------------------------
# Gradient penalties


def test_dragan_on_linear_d_is_exact_and_trains_d() -> None:
    w = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    real = torch.rand(5, 3, 4, 4) * 2 - 1

    penalty = dragan_penalty(lambda x: (x * w).flatten(1).sum(1), real, 0.5)
    norm = w.detach().norm()
    assert penalty.item() == pytest.approx((norm.item() - 1.0) ** 2, rel=1e-5)

    penalty.backward()  # create_graph: the penalty's gradient reaches D's weights
    assert torch.allclose(w.grad, 2 * (norm - 1) * w.detach() / norm, rtol=1e-4, atol=1e-6)


def test_dragan_perturbation_uses_std_not_variance() -> None:
    # std 2, variance 4: a perturbation scaled by the variance would reach twice the std bound.
    real = 2.0 * torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    std = real.std(correction=0).item()
    assert std == pytest.approx(2.0, rel=0.1)
    seen: list[Tensor] = []

    def linear(x: Tensor) -> Tensor:
        seen.append(x.detach().clone())
        return x.flatten(1).sum(1)

    scale = 0.5
    first = dragan_penalty(linear, real, scale, torch.Generator().manual_seed(3))
    offset = (seen[0] - real).abs()
    bound = scale * std
    assert offset.max().item() <= bound * (1 + 1e-5)
    assert offset.max().item() > 0.5 * bound, "the perturbation reaches the std bound, not a much smaller one"
    assert not torch.equal(seen[0], real)

    again = dragan_penalty(linear, real, scale, torch.Generator().manual_seed(3))
    assert torch.equal(seen[1], seen[0]) and again.item() == first.item(), "a seeded generator reproduces it"


def test_r1_on_quadratic_d() -> None:
    real = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    # grad of sum(x^2) is 2x: ||2x||^2 = 20 and 36, mean 28, times 0.5
    assert r1_penalty(lambda x: x.square().sum(1), real).item() == pytest.approx(14.0)


def test_penalties_are_float32_on_bf16_inputs() -> None:
    real = torch.randn(2, 3, 4, 4).to(torch.bfloat16)
    w = torch.randn(3, 4, 4).to(torch.bfloat16)
    assert dragan_penalty(lambda x: (x * w).flatten(1).sum(1), real).dtype == torch.float32
    assert r1_penalty(lambda x: (x * w).flatten(1).sum(1), real).dtype == torch.float32


# ----------------------------------------------------------------------------------------------------------------
# LossParams (train.loss)


def test_config_defaults_are_the_original_and_round_trip() -> None:
    config = LossParams()
    assert (config.recon_l1, config.semantic, config.gp_weight, config.adversarial, config.gradient_penalty) == (
        1.0,
        0.1,
        0.25,
        "nonsaturating",
        "dragan",
    )
    assert LossParams.model_validate(config.model_dump()) == config
    from_yaml = LossParams.model_validate({"recon_l1": 2, "gradient_penalty": "r1", "gp_weight": 10, "gp_every": 16})
    assert from_yaml.recon_l1 == 2.0 and isinstance(from_yaml.recon_l1, float) and from_yaml.gp_every == 16


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"adversarial": "wgan"}, "adversarial"),
        ({"gradient_penalty": "wgan-gp"}, "gradient_penalty"),
        ({"recon_l1": -1.0}, "recon_l1"),
        ({"semantic": float("nan")}, "semantic"),
        ({"translation_gan": float("inf")}, "translation_gan"),
        ({"cycle": True}, "cycle"),
        ({"gp_weight": "10"}, "gp_weight"),
        ({"gp_every": 0}, "gp_every"),
        ({"gp_every": 2.0}, "gp_every"),
        ({"recon_lambda": 1.0, "sematic": 0.1}, "(?s)recon_lambda.*sematic"),
        (only("none"), "generator has no loss"),
    ],
)
def test_config_rejects_bad_settings(data: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LossParams.model_validate(data)


# ----------------------------------------------------------------------------------------------------------------
# The objective


def expected_generator_keys(domains: tuple[str, ...]) -> set[str]:
    per_domain = {f"g/{term}/{d}" for term in ("recon_l1", "recon_gan") for d in domains}
    per_pair = {f"g/{term}/{p}" for term in ("translation_gan", "semantic", "cycle") for p in pairs(domains)}
    return per_domain | per_pair | {"g/total"}


def expected_discriminator_keys(domains: tuple[str, ...], gp: bool = True) -> set[str]:
    names = ["adv", "recon_adv", "real_logit", "fake_logit", "recon_logit"] + (["gp"] if gp else [])
    return {f"d/{name}/{d}" for name in names for d in domains} | {"d/total"}


def generator_total(stats: dict[str, float], config: LossParams, n: int) -> float:
    """The documented weighting: per-domain terms summed, pair terms summed and divided by n - 1."""
    total = 0.0
    for key, value in stats.items():
        term = key.split("/")[1]
        if term == "total":
            continue
        scale = 1.0 / (n - 1) if "->" in key else 1.0
        total += getattr(config, term) * scale * value
    return total


def discriminator_total(stats: dict[str, float], config: LossParams) -> float:
    weights = {"adv": config.translation_gan, "recon_adv": config.recon_gan, "gp": config.gp_weight * config.gp_every}
    return sum(weights[key.split("/")[1]] * value for key, value in stats.items() if key.split("/")[1] in weights)


@pytest.mark.parametrize("domains", [TWO, THREE], ids=["2-domains", "3-domains"])
@pytest.mark.parametrize("penalty", ["dragan", "r1"])
def test_stats_keys_and_totals(domains: tuple[str, ...], penalty: str) -> None:
    _, obj = objective(domains, cycle=0.5, gradient_penalty=penalty, gp_weight=2.0)
    batches = make_batches(domains)

    g_loss, g_stats = obj.generator_loss(batches)
    assert set(g_stats) == expected_generator_keys(domains)
    assert g_loss.item() == pytest.approx(g_stats["g/total"])
    assert g_stats["g/total"] == pytest.approx(generator_total(g_stats, obj.config, len(domains)), rel=1e-5)
    assert all(isinstance(v, float) and math.isfinite(v) for v in g_stats.values())

    d_loss, d_stats = obj.discriminator_loss(batches)
    assert set(d_stats) == expected_discriminator_keys(domains)
    assert d_loss.item() == pytest.approx(d_stats["d/total"])
    assert d_stats["d/total"] == pytest.approx(discriminator_total(d_stats, obj.config), rel=1e-5)


def test_pair_terms_are_averaged_over_targets_not_multiplied() -> None:
    """A third domain doubles the translations of each source; their weight per source stays the same."""
    for domains in (TWO, THREE):
        _, obj = objective(domains, **only("translation_gan"))
        loss, stats = obj.generator_loss(make_batches(domains))
        pair_values = [stats[f"g/translation_gan/{p}"] for p in pairs(domains)]
        assert loss.item() == pytest.approx(sum(pair_values) / (len(domains) - 1), rel=1e-5)


def test_pixel_l1_is_in_the_originals_units() -> None:
    _, obj = objective(TWO, **only("recon_l1"))
    batches = make_batches(TWO)
    _, stats = obj.generator_loss(batches)
    recon = obj.last_recons["human"]
    plain = (batches["human"]["image"] - recon).abs().mean().item()
    assert stats["g/recon_l1/human"] == pytest.approx(PIXEL_L1_SCALE * plain, rel=1e-5)


@pytest.mark.parametrize("domains", [TWO, THREE], ids=["2-domains", "3-domains"])
def test_zero_weights_remove_terms_and_their_compute(domains: tuple[str, ...]) -> None:
    n, p = len(domains), len(domains) * (len(domains) - 1)
    batches = make_batches(domains)

    model, obj = objective(domains, cycle=1.0)
    obj.generator_loss(batches)
    assert (model.count("encode"), model.count("decode"), model.count("discriminate")) == (n + p, n + 2 * p, n + p)

    model, obj = objective(domains)  # cycle = 0: no decode back; the re-encode stays for the semantic term
    _, stats = obj.generator_loss(batches)
    assert (model.count("encode"), model.count("decode")) == (n + p, n + p)
    assert not any(key.startswith("g/cycle/") for key in stats)

    model, obj = objective(domains, semantic=0.0)  # no semantic and no cycle: translations are not re-encoded
    _, stats = obj.generator_loss(batches)
    assert model.count("encode") == n
    assert not any(key.startswith("g/semantic/") for key in stats)

    model, obj = objective(domains, recon_l1=0.0, recon_gan=0.0)  # no reconstruction decoded at all
    _, stats = obj.generator_loss(batches)
    assert model.count("decode") == p and obj.last_recons == {}
    assert not any(key.startswith("g/recon") for key in stats)

    model, obj = objective(domains, recon_gan=0.0, gradient_penalty="none")
    _, stats = obj.generator_loss(batches)
    assert model.count("discriminate") == p  # translations only
    model.calls.clear()
    _, stats = obj.discriminator_loss(batches)
    assert model.count("discriminate") == n + p  # real once per domain, each translation once
    assert set(stats) == {f"d/{k}/{d}" for k in ("adv", "real_logit", "fake_logit") for d in domains} | {"d/total"}

    model, obj = objective(domains, translation_gan=0.0, semantic=0.0)  # no translation decoded at all
    _, stats = obj.generator_loss(batches)
    assert model.count("decode") == n and obj.last_fakes == {}
    _, stats = obj.discriminator_loss(batches)
    assert not any(key.startswith(("d/adv/", "d/fake_logit/")) for key in stats)


@pytest.mark.parametrize("term", GENERATOR_TERMS)
def test_every_generator_term_trains_encoder_and_decoder(term: str) -> None:
    model, obj = objective(THREE, **only(term))
    loss, stats = obj.generator_loss(make_batches(THREE))
    assert {key.split("/")[1] for key in stats} == {term, "total"}
    loss.backward()
    for name in ("enc.weight", "dec_in.weight", "dec_out.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, f"{term} does not reach {name}"


def test_discriminator_loss_never_trains_the_generator() -> None:
    model, obj = objective(TWO, cycle=1.0, gradient_penalty="dragan")
    batches = make_batches(TWO)
    obj.generator_loss(batches)
    assert all(not fake.requires_grad for fake in obj.last_fakes.values())
    assert all(not recon.requires_grad for recon in obj.last_recons.values())

    loss, _ = obj.discriminator_loss(batches)
    loss.backward()
    assert all(p.grad is None for p in model.generator_parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator_parameters())

    # Fakes passed in still attached to the generator's graph are detached as well.
    model.zero_grad(set_to_none=True)
    latent, skips = model.encode(batches["human"]["image"], "human")
    attached = model.decode(latent, skips, "anime", batches["anime"]["tags"])
    fakes = {("human", "anime"): attached, ("anime", "human"): attached}
    loss, _ = obj.discriminator_loss(batches, fakes=fakes, recons={d: attached for d in TWO})
    loss.backward()
    assert all(p.grad is None for p in model.generator_parameters())


@pytest.mark.parametrize("penalty", ["r1", "dragan"])
def test_lazy_gradient_penalty(penalty: str) -> None:
    _, obj = objective(TWO, gradient_penalty=penalty, gp_weight=10.0, gp_every=3)
    batches = make_batches(TWO)
    obj.generator_loss(batches)

    on, on_stats = obj.discriminator_loss(batches, step=6)
    off, off_stats = obj.discriminator_loss(batches, step=7)
    assert {f"d/gp/{d}" for d in TWO} <= set(on_stats)
    assert not any(key.startswith("d/gp/") for key in off_stats)
    penalties = sum(on_stats[f"d/gp/{d}"] for d in TWO)
    assert penalties > 0
    assert on.item() - off.item() == pytest.approx(10.0 * 3 * penalties, rel=1e-4)


def test_gradient_penalty_none_and_zero_weight() -> None:
    for config in ({"gradient_penalty": "none"}, {"gp_weight": 0.0}):
        _, obj = objective(TWO, **config)
        batches = make_batches(TWO)
        obj.generator_loss(batches)
        _, stats = obj.discriminator_loss(batches)
        assert not any(key.startswith("d/gp/") for key in stats)


def test_semantic_term_is_zero_when_translation_keeps_the_latent() -> None:
    model = IdentityModel(TWO)
    obj = TwinGANObjective(model, LossParams(cycle=1.0))
    _, stats = obj.generator_loss(make_batches(TWO))
    for p in pairs(TWO):
        assert stats[f"g/semantic/{p}"] == 0.0
        assert stats[f"g/cycle/{p}"] == 0.0
    assert stats["g/recon_l1/human"] == 0.0


def test_translations_are_conditioned_and_judged_on_target_tags() -> None:
    model, obj = objective(THREE)
    batches = make_batches(THREE)
    obj.generator_loss(batches)
    for s in THREE:
        latent_calls = [call for call in model.calls if call[0] == "decode" and call[1] == s]
        assert all(call[2] is batches[s]["tags"] for call in latent_calls), "decode into d uses d's tags"
        judged = [call for call in model.calls if call[0] == "discriminate" and call[1] == s]
        assert all(call[2] is batches[s]["tags"] for call in judged)

    # The D step judges the kept fakes with the tags they were generated with, even given other batches.
    model.calls.clear()
    other = make_batches(THREE, seed=1)
    obj.discriminator_loss(other)
    for t in THREE:
        judged = [call[2] for call in model.calls if call[0] == "discriminate" and call[1] == t]
        # real (other tags), then each fake into t and the reconstruction (this step's tags), then DRAGAN (real)
        assert judged[0] is other[t]["tags"] and judged[-1] is other[t]["tags"]
        assert all(tags is batches[t]["tags"] for tags in judged[1:-1])


def test_grow_arguments_reach_every_model_call() -> None:
    model, obj = objective(TWO, cycle=1.0)
    grow = {"resolution": RES, "alpha": 0.25}
    batches = make_batches(TWO)
    obj.generator_loss(batches, grow=grow)
    obj.discriminator_loss(batches, grow=grow)
    assert model.calls and all(call[3] == grow for call in model.calls)


def test_errors_name_the_problem() -> None:
    _, obj = objective(TWO)
    batches = make_batches(TWO)
    with pytest.raises(RuntimeError, match="generator_loss first"):
        obj.discriminator_loss(batches)
    with pytest.raises(ValueError, match="unknown domains"):
        obj.generator_loss({**batches, "dog": batches["human"]})
    short = {**batches, "anime": {**batches["anime"], "tags": batches["anime"]["tags"][:2]}}
    with pytest.raises(ValueError, match="batch sizes must match"):
        obj.generator_loss(short)
    _, obj = objective(TWO, recon_gan=0.0, translation_gan=0.0)
    with pytest.raises(RuntimeError, match="no loss"):
        obj.discriminator_loss(batches)


def test_without_tags_and_with_hinge() -> None:
    model, obj = objective(THREE, adversarial="hinge", gradient_penalty="r1", gp_weight=10.0, cycle=1.0)
    batches = {d: {"image": b["image"]} for d, b in make_batches(THREE).items()}
    g_loss, _ = obj.generator_loss(batches)
    d_loss, _ = obj.discriminator_loss(batches)
    assert math.isfinite(g_loss.item()) and math.isfinite(d_loss.item())
    assert all(call[2] is None for call in model.calls if call[0] != "encode")


def test_bf16_model_outputs_give_float32_losses() -> None:
    _, obj = objective(TWO, cycle=1.0)
    batches = make_batches(TWO)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g_loss, _ = obj.generator_loss(batches)
        d_loss, _ = obj.discriminator_loss(batches)
    assert g_loss.dtype == torch.float32 and d_loss.dtype == torch.float32
    assert math.isfinite(g_loss.item()) and math.isfinite(d_loss.item())

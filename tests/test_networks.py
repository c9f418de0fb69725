"""The Twin-GAN networks: shapes at every growing stage, the domain switch, tag conditioning, fade-in, init.

Small channel counts (channel_base 256, channel_max 32) keep every test fast on CPU; one test builds the original's
full 256x256 configuration to compare parameter counts, without running it.
"""

from __future__ import annotations

import json
import math

import pydantic
import pytest
import torch
import torch.nn.functional as F

from core.params import NetworkOptions, NetworkParams, TrainParams
from training.loop import network_config
from training.networks import (
    Discriminator,
    DomainNorm,
    Encoder,
    EqualizedConv2d,
    EqualizedLinear,
    Generator,
    MinibatchStdDev,
    NetworkConfig,
    PixelNorm,
    TwinGAN,
    count_parameters,
    resolve_domain,
)

SMALL = {"channel_base": 256, "channel_max": 32}
TWO = ("human", "anime")


def small_config(**overrides) -> NetworkConfig:
    kwargs = {"domains": TWO, "resolution": 32, **SMALL, **overrides}
    return NetworkConfig(**kwargs)


def build(config: NetworkConfig, seed: int = 0) -> TwinGAN:
    torch.manual_seed(seed)
    return TwinGAN(config)


def images(batch: int, resolution: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, resolution, resolution, generator=generator) * 2 - 1


def randomise_domain_parameters(model: torch.nn.Module, seed: int = 2) -> None:
    """Per-domain scales and shifts as training would leave them: different for each domain."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, DomainNorm):
                module.domain_gamma.copy_(torch.randn(module.domain_gamma.shape, generator=generator) * 0.3)
                module.domain_beta.copy_(torch.randn(module.domain_beta.shape, generator=generator) * 0.3)


# ------------------------------------------------------------------------------------------------ config


def test_config_round_trip_through_json() -> None:
    config = small_config(domains=("a", "b", "c"), tag_dim=7, norm="batch", max_skip_resolution=16, d_projection=True)
    data = json.loads(json.dumps(config.to_dict()))
    assert NetworkConfig.from_dict(data) == config
    assert isinstance(NetworkConfig.from_dict(data).domains, tuple)


def test_config_from_dict_names_unknown_and_missing_keys() -> None:
    data = small_config().to_dict()
    with pytest.raises(ValueError, match="chanel_max"):
        NetworkConfig.from_dict({**data, "chanel_max": 64})
    del data["resolution"]
    with pytest.raises(ValueError, match="resolution"):
        NetworkConfig.from_dict(data)


@pytest.mark.parametrize(
    "overrides",
    [
        {"domains": ()},
        {"domains": ("a", "a")},
        {"domains": ("a.b",)},
        {"resolution": 48},
        {"resolution": 4},
        {"norm": "group"},
        {"d_projection": True},
        {"mbstd_group": 0},
        {"channel_base": 32},
        {"tag_dim": -1},
        {"chanel_max": 64},
    ],
)
def test_config_rejects_invalid_values(overrides: dict) -> None:
    with pytest.raises(ValueError):
        small_config(**overrides)


def test_the_options_and_their_defaults_are_those_of_params_yaml() -> None:
    """NetworkConfig adds only what training derives to core.params.NetworkOptions, which train.network
    (NetworkParams) also extends: there is no second list of options or defaults to drift."""
    derived = {"domains", "resolution", "tag_dim", "feature_dim"}
    switches = {"condition_on_tags", "condition_on_features"}
    assert set(NetworkConfig.model_fields) - derived == set(NetworkParams.model_fields) - switches
    assert set(NetworkConfig.model_fields) - derived == set(NetworkOptions.model_fields)
    config = network_config(TrainParams(), TWO, tag_dim=5, feature_dim=7)
    defaults = NetworkParams()
    assert all(getattr(config, name) == getattr(defaults, name) for name in NetworkOptions.model_fields)
    assert config == NetworkConfig(domains=TWO, resolution=TrainParams().resolution, tag_dim=5)  # features off
    on = TrainParams(network={"condition_on_tags": False, "condition_on_features": True})
    assert (network_config(on, TWO, 5, 7).tag_dim, network_config(on, TWO, 5, 7).feature_dim) == (0, 7)


def test_channel_rule_matches_the_original() -> None:
    config = NetworkConfig(domains=TWO, resolution=256)
    assert config.resolutions == (4, 8, 16, 32, 64, 128, 256)
    assert [config.channels(r) for r in config.resolutions] == [256, 256, 256, 128, 64, 32, 16]
    assert small_config(resolution=256).channels(256) == 8  # never below 8


# ------------------------------------------------------------------------------------------------ shapes

SHAPE_CASES = {
    "1 domain, skips": {"domains": ("anime",)},
    "2 domains, batch norm, tags, no skips, SN, projection": {
        "norm": "batch",
        "tag_dim": 5,
        "unet_skips": False,
        "d_spectral_norm": True,
        "d_projection": True,
    },
    "3 domains, skips <= 16, tags, plain init, no pixel norm": {
        "domains": ("human", "anime", "cat"),
        "max_skip_resolution": 16,
        "tag_dim": 3,
        "equalized_lr": False,
        "pixel_norm": False,
    },
}


@pytest.mark.parametrize("case", list(SHAPE_CASES))
def test_shapes_at_every_resolution(case: str) -> None:
    config = small_config(resolution=128, **SHAPE_CASES[case])
    model = build(config)
    batch = 2
    tags = torch.rand(batch, config.tag_dim) if config.tag_dim else None
    c4 = config.channels(4)
    for r in config.resolutions:
        # The fade-in and skip-less variants once per case, at the top stage: they add no new shapes below it.
        top = r == config.resolution
        grow = {"resolution": r, "alpha": 0.5 if top else 1.0}
        latent, skips = model.encode(images(batch, r), config.domains[-1], **grow)
        assert latent.shape == (batch, c4, 4, 4)
        assert list(skips) == [s for s in config.resolutions[::-1] if 8 <= s <= r]
        for s, feature in skips.items():
            assert feature.shape == (batch, config.channels(s // 2), s, s)
        for skip_arg in (skips, None) if top else (skips,):
            out = model.decode(latent, skip_arg, config.domains[0], tags, **grow)
            assert out.shape == (batch, 3, r, r)
            assert torch.isfinite(out).all()
        for name in config.domains if top else config.domains[:1]:
            logits = model.discriminate(out, name, tags, **grow)
            assert logits.shape == (batch,)
            assert torch.isfinite(logits).all()


def test_shapes_at_256_with_tiny_channels() -> None:
    config = NetworkConfig(domains=TWO, resolution=256, channel_base=64, channel_max=8, tag_dim=2, d_projection=True)
    model = build(config)
    x = images(1, 256)
    tags = torch.rand(1, 2)
    latent, skips = model.encode(x, "human")
    assert latent.shape == (1, 8, 4, 4)
    assert skips[256].shape == (1, 8, 256, 256)
    out = model.translate(x, "human", "anime", tags)
    assert out.shape == (1, 3, 256, 256)
    assert model.discriminate(out, "anime", tags).shape == (1,)


def test_bad_inputs_are_refused_with_clear_errors() -> None:
    config = small_config(tag_dim=2)
    model = build(config)
    with pytest.raises(ValueError, match="expected images"):
        model.encode(images(1, 16), "human")  # config.resolution is 32
    with pytest.raises(ValueError, match="resolution 64"):
        model.encode(images(1, 64), "human", resolution=64)
    with pytest.raises(ValueError, match="unknown domain"):
        model.encode(images(1, 32), "cat")
    with pytest.raises(ValueError, match="tags must have shape"):
        model.decode(torch.zeros(1, 32, 4, 4), None, "human", torch.zeros(1, 3))
    with pytest.raises(ValueError, match="alpha"):
        model.decode(torch.zeros(1, 32, 4, 4), None, "human", resolution=4, alpha=0.5)
    with pytest.raises(ValueError, match="clash"):
        TwinGAN(small_config(domains=("keys", "values")))


# ------------------------------------------------------------------------------------------------ domains and tags


def test_domain_arguments_resolve_to_indices() -> None:
    assert resolve_domain(TWO, "anime") == 1
    assert resolve_domain(TWO, 0) == 0
    assert resolve_domain(TWO, torch.tensor(1)) == 1
    assert resolve_domain(TWO, torch.tensor([0, 1, 1])).tolist() == [0, 1, 1]
    with pytest.raises(ValueError):
        resolve_domain(TWO, 2)
    with pytest.raises(ValueError):
        resolve_domain(TWO, torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError):
        resolve_domain(TWO, 1.0)  # type: ignore[arg-type]


def test_domain_switch_changes_the_output_once_domain_parameters_differ() -> None:
    model = build(small_config()).eval()
    latent, skips = model.encode(images(2, 32), "human")
    with torch.no_grad():
        same = [model.decode(latent, skips, d) for d in TWO]
        assert torch.equal(same[0], same[1])  # at init every domain is the same network
        randomise_domain_parameters(model)
        latent, skips = model.encode(images(2, 32), "human")
        out_human = model.decode(latent, skips, "human")
        out_anime = model.decode(latent, skips, "anime")
        assert (out_human - out_anime).abs().mean() > 1e-2
        # Names, indices and tensors of indices pick the same parameters.
        torch.testing.assert_close(model.decode(latent, skips, 1), out_anime)
        torch.testing.assert_close(model.decode(latent, skips, torch.tensor([1, 1])), out_anime)


def test_mixed_domain_batch_equals_single_domain_calls() -> None:
    config = small_config(domains=("a", "b", "c"), tag_dim=4)
    model = build(config).eval()
    randomise_domain_parameters(model)
    x = images(3, 32)
    tags = torch.rand(3, 4)
    domains = torch.tensor([2, 0, 1])
    with torch.no_grad():
        latent, skips = model.encode(x, domains)
        mixed = model.decode(latent, skips, domains.flip(0), tags)
        for i, (source, target) in enumerate(zip(domains.tolist(), domains.flip(0).tolist(), strict=True)):
            lat_i, skips_i = model.encode(x[i : i + 1], source)
            torch.testing.assert_close(latent[i : i + 1], lat_i, atol=1e-4, rtol=1e-4)
            single = model.decode(lat_i, skips_i, target, tags[i : i + 1])
            torch.testing.assert_close(mixed[i : i + 1], single, atol=1e-4, rtol=1e-4)


def test_batch_norm_keeps_running_statistics_per_domain_and_refuses_mixed_batches() -> None:
    model = build(small_config(norm="batch"))
    norm = model.encoder.blocks["8"].conv0.norm
    before = [bn.running_mean.clone() for bn in norm.norm]
    model.encode(images(4, 32), "anime")
    assert torch.equal(norm.norm[0].running_mean, before[0])  # the human statistics are untouched
    assert not torch.equal(norm.norm[1].running_mean, before[1])
    model.encode(images(4, 32), torch.tensor([1, 1, 1, 1]))  # one domain given as a tensor is fine
    with pytest.raises(ValueError, match="mixed-domain"):
        model.encode(images(4, 32), torch.tensor([0, 1, 0, 1]))
    model.eval()
    latent, skips = model.encode(images(1, 32), "human")  # eval at batch 1 uses the running statistics
    assert torch.isfinite(model.decode(latent, skips, "anime")).all()


def test_tag_conditioning_starts_as_a_no_op_and_then_changes_the_output() -> None:
    model = build(small_config(tag_dim=6)).eval()
    latent, skips = model.encode(images(2, 32), "human")
    tags = torch.rand(2, 6)
    with torch.no_grad():
        plain = model.decode(latent, skips, "anime")
        torch.testing.assert_close(model.decode(latent, skips, "anime", tags), plain, atol=0, rtol=0)
        for module in model.generator.modules():
            if isinstance(module, DomainNorm):
                assert module.tag_gamma is not None
                module.tag_gamma.weight.normal_(0, 0.5)
        conditioned = model.decode(latent, skips, "anime", tags)
        assert (conditioned - plain).abs().mean() > 1e-2
        other = model.decode(latent, skips, "anime", torch.rand(2, 6))
        assert (conditioned - other).abs().mean() > 1e-3
    # The encoder reads images, not tags: it has no tag maps.
    assert all(m.tag_gamma is None for m in model.encoder.modules() if isinstance(m, DomainNorm))


def test_reference_features_enter_through_one_projection_and_zero_features_change_nothing() -> None:
    config = small_config(tag_dim=3, feature_dim=40, feature_embed_dim=8, d_projection=True)
    assert config.condition_dim == 43 and config.norm_condition_dim == 11
    model = build(config).eval()
    randomise_domain_parameters(model)
    for module in model.generator.modules():
        if isinstance(module, DomainNorm):
            assert module.tag_gamma is not None and module.tag_gamma.in_features == 11
            with torch.no_grad():
                module.tag_gamma.weight.normal_(0, 0.5)
    latent, skips = model.encode(images(2, 32), "human")
    tags = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    reference = torch.randn(2, 40)
    with torch.no_grad():
        without = model.decode(latent, skips, "anime", torch.cat([tags, torch.zeros(2, 40)], 1))
        with_reference = model.decode(latent, skips, "anime", torch.cat([tags, reference], 1))
        scaled = model.decode(latent, skips, "anime", torch.cat([tags, 4 * reference], 1))
    assert (with_reference - without).abs().mean() > 1e-2  # the reference changes the look
    # Features are compared by direction, not length. A power of two scales every rounding step exactly, so
    # the output is the same bit for bit on any CPU (with 3, one ulp of the normalised vector came out 1e-5).
    assert torch.equal(scaled, with_reference)
    assert model.discriminate(with_reference, "anime", torch.cat([tags, reference], 1)).shape == (2,)
    with pytest.raises(ValueError, match=r"tags must have shape \(2, 43\)"):
        model.decode(latent, skips, "anime", tags)


def test_generator_without_skips() -> None:
    model = build(small_config()).eval()
    latent = torch.randn(2, 32, 4, 4)
    with torch.no_grad():
        out = model.decode(latent, None, "anime")
        zeros = {r: torch.zeros(2, model.config.channels(r // 2), r, r) for r in (8, 16, 32)}
        torch.testing.assert_close(out, model.decode(latent, zeros, "anime"))
    no_skips = build(small_config(unet_skips=False))
    assert count_parameters(no_skips.generator) < count_parameters(model.generator)
    assert no_skips.decode(latent, {}, "anime").shape == (2, 3, 32, 32)


def test_max_skip_resolution_ignores_skips_above_it() -> None:
    model = build(small_config(max_skip_resolution=16)).eval()
    latent, skips = model.encode(images(2, 32), "human")
    with torch.no_grad():
        out = model.decode(latent, skips, "anime")
        changed = {**skips, 32: torch.randn_like(skips[32])}
        torch.testing.assert_close(model.decode(latent, changed, "anime"), out)
        changed = {**skips, 16: torch.randn_like(skips[16])}
        assert not torch.allclose(model.decode(latent, changed, "anime"), out)


# ------------------------------------------------------------------------------------------------ growing


def test_generator_fade_in() -> None:
    model = build(small_config(resolution=64)).eval()
    randomise_domain_parameters(model)
    latent, skips = model.encode(images(2, 64), "human")
    with torch.no_grad():
        for r in (8, 32, 64):
            plain = model.decode(latent, skips, "anime", resolution=r)
            torch.testing.assert_close(
                model.decode(latent, skips, "anime", resolution=r, alpha=1.0), plain, atol=0, rtol=0
            )
            low = model.decode(latent, skips, "anime", resolution=r // 2)
            faded = model.decode(latent, skips, "anime", resolution=r, alpha=0.0)
            torch.testing.assert_close(faded, F.interpolate(low, scale_factor=2, mode="nearest"), atol=0, rtol=0)
            half = model.decode(latent, skips, "anime", resolution=r, alpha=0.25)
            torch.testing.assert_close(half, 0.25 * plain + 0.75 * faded)
        torch.testing.assert_close(
            model.decode(latent, skips, "anime"), model.decode(latent, skips, "anime", resolution=64)
        )


def test_encoder_fade_in_uses_only_the_lower_path_at_alpha_zero() -> None:
    model = build(small_config()).eval()
    randomise_domain_parameters(model)
    x = images(2, 32)
    with torch.no_grad():
        latent, skips = model.encode(x, "anime", resolution=32)
        latent1, _ = model.encode(x, "anime", resolution=32, alpha=1.0)
        torch.testing.assert_close(latent1, latent, atol=0, rtol=0)
        latent0, skips0 = model.encode(x, "anime", resolution=32, alpha=0.0)
        latent_low, skips_low = model.encode(F.avg_pool2d(x, 2), "anime", resolution=16)
        torch.testing.assert_close(latent0, latent_low, atol=0, rtol=0)
        for r in (16, 8):
            torch.testing.assert_close(skips0[r], skips_low[r], atol=0, rtol=0)
        torch.testing.assert_close(skips0[32], skips[32])  # the new block's tap still feeds the generator
        assert not torch.allclose(latent0, latent)


def test_discriminator_fade_in_uses_only_the_lower_path_at_alpha_zero() -> None:
    model = build(small_config(tag_dim=3, d_projection=True)).eval()
    x = images(4, 32)
    tags = torch.rand(4, 3)
    with torch.no_grad():
        plain = model.discriminate(x, "anime", tags)
        torch.testing.assert_close(model.discriminate(x, "anime", tags, alpha=1.0), plain, atol=0, rtol=0)
        low = model.discriminate(F.avg_pool2d(x, 2), "anime", tags, resolution=16)
        torch.testing.assert_close(model.discriminate(x, "anime", tags, resolution=32, alpha=0.0), low, atol=0, rtol=0)


# ------------------------------------------------------------------------------------------------ building blocks


def test_equalized_layers_have_he_scaled_effective_weights_at_init() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(256, 256, 3)
    fan_in = 256 * 9
    assert conv.weight.std().item() == pytest.approx(1.0, rel=0.01)
    assert (conv.weight * conv.scale).std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.01)
    linear = EqualizedLinear(1024, 512)
    assert (linear.weight * linear.scale).std().item() == pytest.approx(math.sqrt(2 / 1024), rel=0.01)
    plain = EqualizedConv2d(256, 256, 3, equalized=False)
    assert plain.scale == 1.0
    assert plain.weight.std().item() == pytest.approx(0.02, rel=0.01)
    x = torch.randn(2, 256, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1))


def test_pixel_norm_gives_unit_rms_per_pixel() -> None:
    y = PixelNorm()(torch.randn(2, 16, 3, 3) * 5)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(2, 3, 3))


def test_minibatch_stddev_known_values() -> None:
    # Batch 4, group 2: samples {0, 2} and {1, 3} form the groups (sample n is in group n % 2).
    x = torch.zeros(4, 2, 2, 2)
    x[2] = 2.0  # group {0, 2}: values 0 and 2 everywhere -> std 1
    x[1, 0] = 1.0
    x[3, 0] = -1.0  # group {1, 3}: std 1 on channel 0, 0 on channel 1 -> mean 0.5
    y = MinibatchStdDev(group_size=2)(x)
    assert y.shape == (4, 3, 2, 2)
    torch.testing.assert_close(y[:, :2], x)
    expected = torch.tensor([1.0, 0.5, 1.0, 0.5]).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    torch.testing.assert_close(y[:, 2:], expected, atol=1e-4, rtol=0)
    # Any batch works: the group is the largest divisor of the batch <= group_size.
    layer = MinibatchStdDev(group_size=4)
    assert [layer.group(b) for b in (1, 2, 3, 4, 6, 7, 8)] == [1, 2, 3, 4, 3, 1, 4]
    assert MinibatchStdDev(4)(torch.randn(7, 5, 4, 4)).shape == (7, 6, 4, 4)


def test_spectral_norm_wraps_every_discriminator_weight() -> None:
    model = build(small_config(d_spectral_norm=True, tag_dim=2, d_projection=True))
    disc = model.discriminators["human"]
    weighted = [m for m in disc.modules() if isinstance(m, EqualizedConv2d | EqualizedLinear)]
    assert weighted
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") and m.scale == 1.0 for m in weighted)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in model.generator.modules())


# ------------------------------------------------------------------------------------------------ training concerns


def test_gradients_reach_the_active_layers_only() -> None:
    model = build(small_config(tag_dim=2))
    x = images(2, 16)
    out = model.translate(x, "human", "anime", torch.rand(2, 2), resolution=16, alpha=0.5)
    loss = out.square().mean() + model.discriminate(out, "anime", resolution=16, alpha=0.5).mean()
    loss.backward()
    enc, gen = model.encoder, model.generator
    assert enc.blocks["16"].conv0.conv.weight.grad is not None
    assert enc.from_rgb["8"].conv.weight.grad is not None  # the fade-in path
    assert enc.from_rgb["32"].conv.weight.grad is None  # above the stage
    assert gen.to_rgb["16"].weight.grad is not None and gen.to_rgb["8"].weight.grad is not None
    assert gen.blocks["32"].conv0.conv.weight.grad is None
    assert model.discriminators["anime"].out.weight.grad is not None
    assert model.discriminators["human"].out.weight.grad is None
    gen_ids = {id(p) for p in model.generator_parameters()}
    disc_ids = {id(p) for p in model.discriminator_parameters()}
    assert not gen_ids & disc_ids
    assert len(gen_ids) + len(disc_ids) == len(list(model.parameters()))


def test_deterministic_given_the_seed() -> None:
    config = small_config(tag_dim=2)
    a, b = build(config, seed=5), build(config, seed=5)
    x, tags = images(2, 32), torch.rand(2, 2)
    torch.testing.assert_close(a.translate(x, 0, 1, tags), b.translate(x, 0, 1, tags), atol=0, rtol=0)
    assert not torch.equal(
        build(config, seed=6).encoder.blocks["8"].conv0.conv.weight, a.encoder.blocks["8"].conv0.conv.weight
    )


def test_checkpoint_rebuilds_from_its_config_dict() -> None:
    config = small_config(norm="batch", d_spectral_norm=True, tag_dim=2, d_projection=True)
    model = build(config)
    model.encode(images(2, 32), "anime")  # moves running statistics
    state = {"config": config.to_dict(), "model": model.state_dict()}
    rebuilt = TwinGAN(NetworkConfig.from_dict(state["config"]))
    rebuilt.load_state_dict(state["model"])
    model.eval()
    rebuilt.eval()
    x = images(2, 32)
    torch.testing.assert_close(rebuilt.translate(x, "anime", "human"), model.translate(x, "anime", "human"))


def test_channels_last_and_bf16_autocast_on_cpu() -> None:
    config = small_config(resolution=16, tag_dim=2, d_projection=True)
    model = build(config).to(memory_format=torch.channels_last)
    x = images(2, 16).to(memory_format=torch.channels_last)
    tags = torch.rand(2, 2)
    reference = model.translate(x, "human", "anime", tags).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.translate(x, "human", "anime", tags)
        logits = model.discriminate(out, "anime", tags)
        out_mixed = model.translate(x, torch.tensor([0, 1]), torch.tensor([1, 0]), tags)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all() and torch.isfinite(logits).all() and torch.isfinite(out_mixed).all()
    assert (out.float() - reference).abs().mean() < 0.1 * reference.abs().mean()
    (out.float().square().mean() + logits.float().mean()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_parameter_counts_of_the_original_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    config = NetworkConfig(domains=TWO, resolution=256, channel_base=4096, channel_max=256)
    model = TwinGAN(config)
    counts = {
        "encoder": count_parameters(model.encoder),
        "generator": count_parameters(model.generator),
        "discriminator": count_parameters(model.discriminators["human"]),
    }
    with capsys.disabled():
        print(f"\nTwin-GAN 256x256, 2 domains: {counts} (original: E ~2.95 M, G ~5.7 M, each D ~4.6 M)")
    assert counts["encoder"] == pytest.approx(2.95e6, rel=0.05)
    assert counts["generator"] == pytest.approx(5.7e6, rel=0.05)
    assert counts["discriminator"] == pytest.approx(4.6e6, rel=0.05)
    assert count_parameters(model) == counts["encoder"] + counts["generator"] + 2 * counts["discriminator"]


def test_config_is_frozen() -> None:
    config = small_config()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.resolution = 64  # type: ignore[misc]


def test_encoder_generator_discriminator_build_alone() -> None:
    """The loop may build the parts separately (e.g. a G_ema copy of the generator)."""
    config = small_config(resolution=16)
    torch.manual_seed(0)
    latent, skips = Encoder(config)(images(2, 16), "human")
    out = Generator(config)(latent, skips, "anime")
    assert Discriminator(config)(out).shape == (2,)

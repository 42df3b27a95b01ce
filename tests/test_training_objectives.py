"""The codec's training objectives (lstmcodec/training/losses.py) and hidden-state priming, on a real photo crop."""
from __future__ import annotations

import math

import pytest
import torch

from lstmcodec.training import losses, runtime
from lstmcodec.nets.config import CodecConfig
from lstmcodec.nets.recurrent import GAIN_LR_SCALE, RecurrentCodec
from lstmcodec.training.runs import export_codec
from lstmcodec.models.zoo import DEFAULT_CODEC, load_codec, registry
from lstmcodec.nets.decoding import reconstruct


@pytest.fixture(scope="module")
def crop(parrots) -> torch.Tensor:
    """A 1 x 3 x 64 x 128 crop of the parrots photo in the model's range [-0.5, 0.5]."""
    return torch.from_numpy(parrots[64:128, 64:192].copy()).permute(2, 0, 1)[None].float() / 255 - 0.5


@pytest.mark.parametrize("name", losses.LOSSES)
def test_each_loss_is_zero_when_exact_and_grows_with_the_error(crop, name):
    fn = losses.distortion(name)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(crop.shape, generator=g)
    exact, mild, strong = (float(fn(crop, crop + s * noise)) for s in (0.0, 0.02, 0.08))
    assert abs(exact) < 1e-4 and 0 < mild < strong, (exact, mild, strong)


@pytest.mark.parametrize("size", [32, 64])
def test_every_loss_has_finite_gradients_on_training_crops(crop, size):
    x = crop[..., :size, :size]
    for name in losses.LOSSES:
        x_hat = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
        loss, logged = losses.over_iterations(losses.distortion(name), x, [x_hat, x_hat * 0.9])
        loss.backward()
        assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0, name
        assert set(logged) == {"l1_first", "l1_last", "unroll"} and logged["unroll"] == 2.0


def test_log_distortion_weighs_each_iteration_by_its_inverse_distortion(crop):
    """With log=True each iteration's gradient is fn's divided by its distortion d_t: L1's gradient has the same
    size at any error, so under the log a late reconstruction with a 10x smaller error gets a 10x larger one."""
    g = torch.Generator().manual_seed(2)
    early = (crop + 0.10 * torch.randn(crop.shape, generator=g)).requires_grad_(True)
    late = (crop + 0.01 * torch.randn(crop.shape, generator=g)).requires_grad_(True)
    plain, _ = losses.over_iterations(losses.l1, crop, [early, late])
    logged, _ = losses.over_iterations(losses.l1, crop, [early, late], log=True)
    d_early, d_late = float(losses.l1(crop, early.detach())), float(losses.l1(crop, late.detach()))
    assert logged.item() == pytest.approx((math.log(d_early) + math.log(d_late)) / 2, rel=1e-5)
    assert plain.item() == pytest.approx((d_early + d_late) / 2, rel=1e-5)
    plain_grads = torch.autograd.grad(plain, [early, late])
    log_grads = torch.autograd.grad(logged, [early, late])
    # L1's gradient has the same size for any error, so the plain mean weighs the two alike ...
    assert float(plain_grads[1].abs().sum()) == pytest.approx(float(plain_grads[0].abs().sum()), rel=1e-5)
    # ... and the log weighs the late one about d_early / d_late (~10) times more
    ratio = float(log_grads[1].abs().sum()) / float(log_grads[0].abs().sum())
    assert ratio == pytest.approx(d_early / d_late, rel=1e-4) and ratio > 5


def test_db_mix_under_the_log_is_the_two_decibel_scales_weighted_by_alpha(crop):
    """--loss db-mix --log-distortion: α·ln(1 − MS-SSIM) + (1 − α)·ln(MSE) per iteration, so that a blur which
    MS-SSIM hardly sees still costs through the MSE factor."""
    g = torch.Generator().manual_seed(3)
    x_hat = crop + 0.03 * torch.randn(crop.shape, generator=g)
    for alpha in (0.5, 0.84):
        logged, _ = losses.over_iterations(losses.distortion("db-mix", alpha), crop, [x_hat], log=True)
        ms, sq = float(losses.ms_ssim_loss(crop, x_hat)), float(losses.mse(crop, x_hat))
        assert logged.item() == pytest.approx(alpha * math.log(ms) + (1 - alpha) * math.log(sq), rel=1e-4)
    # without the log it is the weighted geometric mean of the two distortions (here of a 3x3 box blur)
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(crop, (1, 1, 1, 1), mode="replicate"), 3, 1)
    ms, sq = float(losses.ms_ssim_loss(crop, blurred)), float(losses.mse(crop, blurred))
    assert float(losses.distortion("db-mix", 0.5)(crop, blurred)) == pytest.approx(ms ** 0.5 * sq ** 0.5, rel=1e-4)


def test_ssim_weights_go_where_the_structure_is_lost(crop):
    """Left half: detail flattened to its mean (structure lost); right half: a small constant offset of about the
    same L1 error (structure kept). The SSIM weights, mean 1, favour the left half."""
    x_hat = crop.clone()
    left = x_hat[..., :64]
    x_hat[..., :64] = left.mean(dim=(2, 3), keepdim=True)
    offset = float((crop[..., :64] - x_hat[..., :64]).abs().mean())
    x_hat[..., 64:] = crop[..., 64:] + offset
    w = losses.ssim_weights(crop, x_hat)
    assert w.shape == (1, 1, 64, 128) and abs(float(w.mean()) - 1) < 1e-4
    assert float(w[..., 8:56, 8:56].mean()) > 3 * float(w[..., 8:56, 72:120].mean())
    assert float(losses.ssim_weighted_l1(crop, x_hat)) > float(losses.l1(crop, x_hat))


def test_both_phases_see_an_error_that_cancels_within_the_decoders_2x2_cells(crop):
    """An error that sums to zero inside every aligned 2x2 cell (top row +s, bottom row -s, s random per cell)
    reaches MS-SSIM's coarse scales only one pixel off the grid: the plain loss rates it far below noise of the same
    energy, the two-phase loss at least twice as high (its shifted half alone sees it as noise)."""
    g = torch.Generator().manual_seed(0)
    x = crop[:1, :, :64, :64].float()
    s = torch.randn(1, 3, 32, 32, generator=g).repeat_interleave(2, -1).repeat_interleave(2, -2)
    sign = torch.tensor([1.0, -1.0]).repeat(32)[:, None]
    cells = 0.03 * s * sign
    noise = torch.randn(x.shape, generator=g) * float(cells.pow(2).mean().sqrt())
    plain, both = losses.distortion("ms-ssim"), losses.distortion("ms-ssim", both_phases=True)
    assert float(plain(x, x + cells)) < 0.5 * float(plain(x, x + noise))
    assert float(both(x, x + cells)) > max(2 * float(plain(x, x + cells)), 0.5 * float(both(x, x + noise)))
    assert float(both(x, x)) == pytest.approx(0.0, abs=1e-6)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        losses.distortion("l2")


def _tiny(priming: int) -> RecurrentCodec:
    torch.manual_seed(0)
    return RecurrentCodec(CodecConfig(width=0.125, iterations=3, priming=priming)).eval()


def test_priming_runs_first_iteration_again_and_the_decoder_repeats_it(crop):
    plain, primed = _tiny(0), _tiny(2)
    primed.load_state_dict(plain.state_dict())
    calls = []
    hook = primed.decoder.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        steps = list(primed.iterate(crop, 3))
        assert len(calls) == 3 + 2
        rebuilt = list(reconstruct(primed, [b for b, _ in steps]))   # the decoder side alone
        unprimed = list(plain.iterate(crop, 3))
    hook.remove()
    assert all(torch.allclose(a, b, atol=1e-5) for (_, a), b in zip(steps, rebuilt))  # Decoder.project: to rounding
    assert not torch.equal(steps[0][1], unprimed[0][1])


def test_priming_is_part_of_the_fingerprint(tmp_path):
    plain, primed = _tiny(0), _tiny(1)
    primed.load_state_dict(plain.state_dict())
    assert export_codec(plain, tmp_path / "a.pt", "a") != export_codec(primed, tmp_path / "b.pt", "b")
    assert load_codec(str(tmp_path / "b.pt")).config.priming == 1
    # unprimed weights keep the fingerprint their files were written with (weights/index.json records it)
    assert load_codec(DEFAULT_CODEC).fingerprint.hex() == registry()["codec"][DEFAULT_CODEC]["fingerprint"]


def test_priming_out_of_range_is_refused():
    with pytest.raises(ValueError, match="priming"):
        CodecConfig(priming=-1)


def _gained(log_gain: list[float]) -> RecurrentCodec:
    torch.manual_seed(0)
    model = RecurrentCodec(CodecConfig(width=0.125, iterations=len(log_gain), residual_gain=True)).eval()
    with torch.no_grad():
        model.log_gain.copy_(torch.tensor(log_gain))
    return model


def test_residual_gain_starts_as_the_plain_recurrence_and_scales_what_each_iteration_sees(crop):
    plain, gained = _tiny(0), _gained([0.0, 0.0, 0.0])
    gained.load_state_dict({**plain.state_dict(), "log_gain": gained.log_gain.detach()})
    with torch.no_grad():
        same = list(gained.iterate(crop, 3))
        assert all(torch.equal(a, b) and torch.equal(x, y) for (a, x), (b, y) in zip(same, plain.iterate(crop, 3)))
        gained.log_gain.copy_(torch.tensor([0.0, 1.0, 2.0]))
        inputs = []
        hook = gained.encoder.register_forward_hook(lambda _m, inp, _o: inputs.append(inp[0]))
        steps = list(gained.iterate(crop, 4))                       # iteration 4 reuses the last gain
        hook.remove()
        rebuilt = list(reconstruct(gained, [b for b, _ in steps]))   # the decoder side alone divides by the same gains
    assert all(torch.allclose(x, y, atol=1e-5) for (_, x), y in zip(steps, rebuilt))  # to rounding (Decoder.project)
    torch.testing.assert_close(inputs[1], (crop - steps[0][1]) * math.e)
    torch.testing.assert_close(inputs[3], (crop - steps[2][1]) * math.e ** 2)
    assert not torch.equal(steps[1][1], same[1][1])


def test_residual_gain_is_its_own_parameter_group_with_a_higher_learning_rate():
    model = _gained([0.0, 0.0])
    groups = runtime.param_groups(model)
    by_scale = {g["lr_scale"]: g["params"] for g in groups}
    assert sorted(by_scale) == [1.0, GAIN_LR_SCALE] and by_scale[GAIN_LR_SCALE] == [model.log_gain]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_residual_gain_needs_additive_reconstruction():
    with pytest.raises(ValueError, match="additive"):
        CodecConfig(residual_gain=True, additive=False)


def test_sign_bits_train_on_what_inference_sends_with_a_straight_through_gradient(crop):
    """--sign-bits: in training the binarizer sends inference's sign (the paper's stochastic bits differ from it
    wherever tanh is not saturated), and its gradient is still tanh's."""
    model = _tiny(0)
    code, _ = model.encoder(crop, None)
    with torch.no_grad():
        y = torch.tanh(model.binarizer.conv(code))
        sent = model.eval().binarizer(code)
    model.train()
    torch.manual_seed(0)
    noisy = model.binarizer(code)
    assert (noisy != sent).float().mean() > 0.05            # stochastic bits: many differ from the sign
    model.binarizer.stochastic = False
    b = model.binarizer(code.detach().requires_grad_())
    assert torch.equal(b.detach(), sent)
    (grad,) = torch.autograd.grad(b.sum(), model.binarizer.conv.bias)
    torch.testing.assert_close(grad, (1 - y ** 2).sum(dim=(0, 2, 3)))


def _planes(n_iter: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """Bit planes (1 x 4 x 16 x 16, ±1) with known structure: channel 0 is random, channel 1 repeats it, channel 2
    is its opposite, and channel 3 is random in the first iteration and repeats itself after."""
    g = torch.Generator().manual_seed(seed)
    planes, prev = [], None
    for t in range(n_iter):
        c0 = torch.randint(0, 2, (1, 1, 16, 16), generator=g).float() * 2 - 1
        c3 = torch.randint(0, 2, (1, 1, 16, 16), generator=g).float() * 2 - 1 if prev is None else prev[:, 3:]
        planes.append(torch.cat([c0, c0, -c0, c3], 1))
        prev = planes[-1]
    return planes


def test_bit_rate_starts_at_one_bit_and_learns_what_earlier_channels_and_iterations_predict():
    """BitRate (the --rate-weight term) sees the bits the entropy coder's context sees: fitted on planes of known
    structure it reaches their entropy, (1 + 0 + 0 + 1/3) / 4 bits per bit, where a model blind to the earlier
    channels or to the previous iteration could not go below 0.75 or 0.67; bits of blocks that received no
    iteration (0) cost nothing."""
    rate = losses.BitRate(bits=4)
    assert float(rate(_planes()).detach()) == pytest.approx(1.0)
    assert runtime.param_groups(rate) == [{"params": list(rate.parameters()), "lr_scale": losses.BitRate.LR_SCALE}]
    opt = torch.optim.Adam(rate.parameters(), lr=0.1)
    for step in range(300):
        loss = rate(_planes(seed=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    fitted = float(rate(_planes(seed=1000)).detach())
    assert 0.30 < fitted < 0.40, fitted
    half = [p.clone() for p in _planes(seed=1000)]
    for p in half:
        p[..., 8:] = 0
    assert float(rate(half).detach()) == pytest.approx(fitted, abs=0.05)


def test_bit_rate_pulls_the_encoder_towards_predictable_bits(crop):
    """The rate term's gradient reaches the encoder through the straight-through sign: a few steps on it alone
    (the rate model fixed) make the codec's bits cheaper under that model."""
    torch.manual_seed(0)
    model = RecurrentCodec(CodecConfig(width=0.125, iterations=2)).train()
    model.binarizer.stochastic = False
    rate = losses.BitRate().requires_grad_(False)
    with torch.no_grad():  # a rate model that expects every bit to be +1
        rate.bias[:] = 3.0
    before = float(rate(model(crop, 2).bits).detach())
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(10):
        loss = rate(model(crop, 2).bits)
        opt.zero_grad()
        loss.backward()
        assert model.encoder.rnns[0].conv_x.weight.grad.abs().sum() > 0
        opt.step()
    after = float(rate(model(crop, 2).bits).detach())
    assert after < 0.8 * before, (before, after)


def test_log_rate_prices_each_iteration_by_the_prefixes_that_contain_it():
    """--rate-form log: the mean over prefixes i of ln(bits / raw bits of b_1..b_i). Its gradient on iteration t's
    bits is Σ_{i≥t} 1 / (T · bits of b_1..b_i), so with equal iterations of B bits the first's cost H_T / (T B) and the
    last's 1 / (T² B) are H_T · T apart (54 for T = 16), where the mean form prices every iteration alike; the two forms
    agree on the rate's value when every prefix has the same bits per raw bit."""
    T, raw = 16, 256.0
    bits = torch.full((T,), 0.5 * raw, requires_grad=True)
    count = torch.full((T,), raw)
    log_rate = losses.rate_term(bits, count, "log")
    assert float(log_rate.detach()) == pytest.approx(math.log(0.5))
    (grad,) = torch.autograd.grad(log_rate, bits)
    expected = torch.tensor([sum(1 / (T * 0.5 * raw * i) for i in range(t, T + 1)) for t in range(1, T + 1)])
    assert torch.allclose(grad, expected, rtol=1e-5)
    assert float(grad[0] / grad[-1]) == pytest.approx(T * sum(1 / i for i in range(1, T + 1)), rel=1e-5)
    mean_rate = losses.rate_term(bits, count, "mean")
    assert float(mean_rate.detach()) == pytest.approx(0.5)
    (grad,) = torch.autograd.grad(mean_rate, bits)
    assert torch.allclose(grad, torch.full((T,), 1 / (T * raw)))
    # BitRate's vectors feed it: their ratio is the rate model's bits per bit, and an empty plane (a block that got
    # no iteration) neither costs nor counts
    rate = losses.BitRate(bits=4)
    planes = _planes()
    planes.append(torch.zeros_like(planes[0]))
    with torch.no_grad():
        b, c = rate.per_iteration(planes)
    assert c.tolist() == [1024.0, 1024.0, 1024.0, 0.0] and float(b[-1]) == 0.0
    assert float(losses.rate_term(b, c, "log")) == pytest.approx(0.0, abs=1e-6)  # the untrained model: 1 bit per bit
    with pytest.raises(ValueError, match="unknown rate form"):
        losses.rate_term(b, c, "sum")

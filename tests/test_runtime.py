"""The shared training runtime: exact resume, export, and a tiny two-process DDP run on the CPU."""
from __future__ import annotations

import csv
import signal
import subprocess
import types
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
import torch

import lstmcodec
from lstmcodec.training import losses, runtime, runs as training
from lstmcodec.coding.codec import Codec
from lstmcodec.nets.config import CodecConfig
from lstmcodec.models.zoo import DEFAULT_CODEC, load_codec

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "scripts" / "train_codec.py"
TINY = ["--width", "0.125", "--crop", "32", "--batch", "2", "--iterations", "2", "--schedule", "constant",
        "--warmup", "0", "--eval-every", "0", "--log-every", "1", "--threads", "1", "--ema", "0.9"]


FINE_TUNE = TINY[2:6] + TINY[8:]  # TINY without its shape options (--width, --iterations), as a fine-tune of a file runs


def _train(out: Path, steps: int, *extra: str, options=TINY) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TRAIN), str(ROOT / "tests" / "data"), "--out", str(out),
                           "--steps", str(steps), *options, *extra], capture_output=True, text=True, timeout=300)


def _tune(out: Path, *extra: str) -> subprocess.CompletedProcess:
    """One step at learning rate 0 from --init weights: the exported network is the starting one."""
    return _train(out, 1, "--lr", "0", *extra, options=FINE_TUNE)


def test_resume_is_exact(tmp_path):
    r = _train(tmp_path / "straight", 4)
    assert r.returncode == 0, r.stderr
    assert _train(tmp_path / "resumed", 2).returncode == 0
    r = _train(tmp_path / "resumed", 4)
    assert r.returncode == 0 and "resumed from" in r.stderr
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k


def test_sigterm_stops_after_the_step_with_a_checkpoint_to_resume(tmp_path):
    """A run told to stop (SIGTERM, as a job scheduler or `kill` sends; Ctrl-C alike) finishes its step, saves and
    exits cleanly without exporting; run again, it resumes from that step."""
    out, export = tmp_path / "run", tmp_path / "w.pt"
    proc = subprocess.Popen([sys.executable, str(TRAIN), str(ROOT / "tests" / "data"), "--out", str(out),
                             "--steps", "100000", "--export", str(export), *TINY], stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("step 2/"):
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 0, rest
    finally:
        proc.kill()
    step = torch.load(out / "last.pt", weights_only=False)["step"]
    assert f"stopped by SIGTERM at step {step}; checkpoint saved" in rest
    assert step >= 2 and not export.exists()
    r = _train(out, step + 1)
    assert r.returncode == 0 and f"resumed from {out / 'last.pt'} at step {step}" in r.stderr, r.stderr
    assert torch.load(out / "last.pt", weights_only=False)["step"] == step + 1


def test_export_gives_a_loadable_codec(tmp_path):
    out = tmp_path / "w.pt"
    r = _train(tmp_path / "run", 2, "--export", str(out), "--name", "tiny", "--adaptive-fraction", "1.0")
    assert r.returncode == 0, r.stderr
    codec = load_codec(str(out))
    assert codec.name == "tiny" and codec.config.width == 0.125
    assert all(v.dtype == torch.float16 for v in torch.load(out, weights_only=True)["state_dict"].values())
    assert (tmp_path / "run" / "log.csv").read_text().startswith("step,")


def test_init_inherits_the_files_configuration(tmp_path):
    """Fine-tuning the default with no shape option keeps its exact configuration (and, at lr 0, its tensors)."""
    out = tmp_path / "same.pt"
    r = _tune(tmp_path / "run", "--init", DEFAULT_CODEC, "--export", str(out), "--name", "same")
    assert r.returncode == 0, r.stderr
    assert f"initialised from {DEFAULT_CODEC}" in r.stderr
    same, base = load_codec(str(out)), load_codec(DEFAULT_CODEC)
    assert same.config == base.config
    sd, base_sd = same.state_dict(), base.state_dict()
    assert sd.keys() == base_sd.keys() and all(torch.equal(sd[k], base_sd[k]) for k in sd)


def test_init_maps_kernels_to_a_cheaper_decoder(tmp_path):
    """--init ... --decoder-hidden-kernel 1 --resize: 3x3 hidden kernels become their centre taps."""
    torch.manual_seed(0)
    training.export_codec(Codec(CodecConfig(width=0.125)), tmp_path / "src.pt", "src")
    out = tmp_path / "cheap.pt"
    r = _tune(tmp_path / "run", "--init", str(tmp_path / "src.pt"), "--decoder-hidden-kernel", "1", "--resize",
              "--export", str(out), "--name", "cheap")
    assert r.returncode == 0, r.stderr
    cheap, full = load_codec(str(out)), load_codec(str(tmp_path / "src.pt"))
    assert cheap.config.decoder_hidden_kernel == 1 and full.config.decoder_hidden_kernel == 3
    for a, b in zip(cheap.decoder.rnns[2:], full.decoder.rnns[2:]):
        assert a.conv_h.weight.shape[2:] == (1, 1)
        assert torch.equal(a.conv_h.weight[:, :, 0, 0], b.conv_h.weight[:, :, 1, 1])
    assert torch.equal(cheap.encoder.conv.weight, full.encoder.conv.weight)


def test_init_shrinks_cells_keeping_the_channels_read_most(tmp_path):
    """--init with narrower --decoder-hidden / --encoder-hidden and --resize: each decoder cell keeps the groups of
    4 hidden channels that the next layer reads most strongly, with their gate rows, recurrent weights and the
    next layer's columns; each encoder cell the same with single channels."""
    out = tmp_path / "narrow.pt"
    r = _tune(tmp_path / "run", "--init", DEFAULT_CODEC, "--decoder-hidden", "128", "128", "48", "16",
              "--encoder-hidden", "48", "80", "128", "--resize", "--export", str(out), "--name", "narrow")
    assert r.returncode == 0, r.stderr
    narrow, full = load_codec(str(out)), load_codec(DEFAULT_CODEC)
    assert narrow.config.decoder_hidden == (128, 128, 48, 16) and full.config.decoder_hidden == (128, 128, 48, 24)
    n_out, f_out = narrow.decoder.conv_out.weight, full.decoder.conv_out.weight   # 3 x groups x 1 x 1
    kept = [next(j for j in range(f_out.shape[1]) if torch.equal(n_out[:, i], f_out[:, j])) for i in range(n_out.shape[1])]
    strength = f_out.float().pow(2).sum(dim=(0, 2, 3))
    dropped = sorted(set(range(f_out.shape[1])) - set(kept))
    assert kept == sorted(kept) and len(dropped) == 2 and strength[dropped].max() <= strength[kept].min()
    units = torch.tensor([4 * g + j for g in kept for j in range(4)])
    n4, f4 = narrow.decoder.rnns[3], full.decoder.rnns[3]
    for gate in range(4):
        rows = gate * 24 + units
        assert torch.equal(n4.conv_h.weight[gate * 16:(gate + 1) * 16], f4.conv_h.weight[rows][:, units])
        assert torch.equal(n4.conv_x.bias[gate * 16:(gate + 1) * 16], f4.conv_x.bias[rows])
    assert n4.conv_x.weight.shape == (4 * 16, 12, 3, 3)
    assert torch.equal(narrow.decoder.rnns[2].conv_x.weight, full.decoder.rnns[2].conv_x.weight)
    # The encoder: no depth-to-space, so a cell keeps single channels, those its successor reads most.
    assert narrow.config.encoder_hidden == (48, 80, 128)
    e1, e2 = narrow.encoder.rnns[1], narrow.encoder.rnns[2]
    assert e1.conv_h.weight.shape == (4 * 80, 80, 1, 1) and e2.conv_x.weight.shape == (4 * 128, 80, 3, 3)
    reads = full.encoder.rnns[2].conv_x.weight.float().pow(2).sum(dim=(0, 2, 3))
    kept = [next(j for j in range(96) if torch.equal(e2.conv_x.weight[:, i], full.encoder.rnns[2].conv_x.weight[:, j]))
            for i in range(80)]
    assert reads[sorted(set(range(96)) - set(kept))].max() <= reads[kept].min()
    assert torch.equal(narrow.binarizer.conv.weight, full.binarizer.conv.weight)


def test_residual_gain_trains_resumes_at_its_own_rate_and_exports(tmp_path, parrots):
    """The recipe of the default codec: residual gains with --log-distortion (whose logged loss, a mean of
    logs of distortions below 1, is negative where the plain mean is positive), here with --sign-bits."""
    assert _train(tmp_path / "run", 2, "--residual-gain", "--log-distortion", "--sign-bits").returncode == 0
    r = _train(tmp_path / "run", 3, "--residual-gain", "--log-distortion", "--sign-bits", "--export", str(tmp_path / "g.pt"),
               "--name", "g")
    assert r.returncode == 0 and "resumed from" in r.stderr, r.stderr
    rows = csv.DictReader((tmp_path / "run" / "log.csv").read_text().splitlines())
    logged = [float(row["loss"]) for row in rows if row["loss"]]
    assert len(logged) == 3 and all(v < 0 for v in logged), logged
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    groups = ck["optimizer"]["param_groups"]
    lr = {g["lr_scale"]: g["lr"] for g in groups}
    assert sorted(lr) == [1.0, 10.0] and lr[10.0] == pytest.approx(10 * lr[1.0])
    assert not torch.equal(ck["model"]["log_gain"], torch.zeros(2))
    blob = lstmcodec.encode(parrots[:48, :80], iterations=3, model=str(tmp_path / "g.pt"))
    assert lstmcodec.decode(blob, model=str(tmp_path / "g.pt")).size == (80, 48)


def test_rate_weight_trains_a_rate_model_beside_the_codec_and_exports_the_codec_alone(tmp_path, parrots):
    """--rate-weight: the rate model is trained (its own learning-rate group), checkpointed and resumed with
    the codec (here into --rate-form log), its bits per bit logged per step and on the held-back crops; exports
    carry the codec alone."""
    folder = tmp_path / "photos"  # 20 photos of 256 x 256, so that one is held back for validation
    folder.mkdir()
    photo = Image.fromarray(parrots).resize((256, 256))
    for i in range(20):
        photo.rotate(90 * (i % 4)).save(folder / f"{i:02d}.png")

    def train(steps: int, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(TRAIN), str(folder), "--out", str(tmp_path / "run"), "--steps", str(steps),
                               *TINY, "--sign-bits", "--rate-weight", "0.5", "--eval-every", "3", *extra],
                              capture_output=True, text=True, timeout=300)

    assert train(2).returncode == 0
    r = train(3, "--rate-form", "log", "--export", str(tmp_path / "r.pt"), "--name", "r")  # resumed in the log form
    assert r.returncode == 0 and "resumed from" in r.stderr, r.stderr
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").read_text().splitlines()))
    per_step = [float(row["bits_per_bit"]) for row in rows if row["loss"]]
    assert len(per_step) == 3 and per_step[0] == pytest.approx(1.0) and all(0 < v <= 1.5 for v in per_step), per_step
    held_back = [float(row["val_bits_per_bit"]) for row in rows if row.get("val_bits_per_bit")]
    assert len(held_back) == 2 and all(0 < v < 1.5 for v in held_back), rows  # at the end of each run
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert "encoder.conv.weight" in ck["model"] and set(ck["criterion"]) == {"rate.earlier", "rate.previous", "rate.bias"}
    assert not torch.equal(ck["criterion"]["rate.bias"], torch.zeros_like(ck["criterion"]["rate.bias"]))
    assert sorted(g["lr_scale"] for g in ck["optimizer"]["param_groups"]) == [1.0, losses.BitRate.LR_SCALE]
    r = train(3, "--export-only", "--export", str(tmp_path / "again.pt"), "--name", "r")
    assert r.returncode == 0, r.stderr
    for path in (tmp_path / "r.pt", tmp_path / "again.pt"):
        codec = load_codec(str(path))
        assert codec.name == "r" and not any(k.startswith("rate") for k in codec.state_dict())
        blob = lstmcodec.encode(parrots[:48, :80], iterations=2, model=str(path))
        assert lstmcodec.decode(blob, model=str(path)).size == (80, 48)


def test_init_and_resume_refuse_what_does_not_fit_in_one_line(tmp_path):
    """A shape change without --resize, a cell or gain that cannot change, and a resumed run told another shape:
    each one error line, exit status 1, no traceback."""
    cases = [
        (("--init", DEFAULT_CODEC, "--decoder-hidden", "192", "192", "128", "64"),
         f"error: --init {DEFAULT_CODEC}: --decoder-hidden 192 192 128 64 (it has 128 128 48 24) changes the network's "
         "shape; add --resize to grow or shrink it"),
        (("--init", DEFAULT_CODEC, "--cell", "gru"), f"error: --init {DEFAULT_CODEC}: cell lstm cannot become gru in fine-tuning"),
        (("--init", DEFAULT_CODEC, "--no-residual-gain"),
         f"error: --init {DEFAULT_CODEC}: it has learned residual gains; fine-tuning keeps them (drop --no-residual-gain)"),
        (("--init", "no-such-model"), "error: --init no-such-model: unknown model 'no-such-model' (bundled: "),
    ]
    for k, (extra, message) in enumerate(cases):
        r = _train(tmp_path / f"run{k}", 1, *extra, options=FINE_TUNE)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith(message), r.stderr
    assert _train(tmp_path / "run", 1).returncode == 0
    r = _train(tmp_path / "run", 2, "--width", "0.25", options=FINE_TUNE)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
        "error: the run was started with --width 0.125; a resumed run keeps its network (start a new run folder with "
        "--init to change it)")


def test_a_run_never_takes_a_bundled_models_name(tmp_path):
    out = tmp_path / "x.pt"
    r = _train(tmp_path / DEFAULT_CODEC, 1, "--export", str(out))
    assert r.returncode == 0, r.stderr
    assert load_codec(str(out)).name == f"run-{DEFAULT_CODEC}"
    assert training.default_name(tmp_path / "mine", "codec") == "mine"


@pytest.mark.parametrize("loss", ["ssim-l1", "mix"])
def test_losses_and_priming_train_into_a_codec_that_round_trips(tmp_path, parrots, loss):
    """--loss and --priming reach the exported model: its files decode, prefix by prefix, with the priming repeated."""
    out = tmp_path / "primed.pt"
    r = _train(tmp_path / "run", 2, "--loss", loss, "--priming", "1", "--export", str(out), "--name", "primed")
    assert r.returncode == 0, r.stderr
    assert load_codec(str(out)).config.priming == 1
    blob = lstmcodec.encode(parrots[:48, :80], iterations=2, model=str(out))
    assert lstmcodec.decode(blob, model=str(out)).size == (80, 48)
    assert lstmcodec.decode(blob, iterations=1, model=str(out)).size == (80, 48)


def test_two_process_ddp_on_cpu(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29571",
           str(TRAIN), str(ROOT / "tests" / "data"), "--out", str(tmp_path / "ddp"), "--steps", "2", *TINY]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)
    assert ck["step"] == 2


def test_two_process_ddp_trains_the_rate_model_on_both_ranks(tmp_path):
    """--rate-weight under DDP: the criterion's gradients are averaged over the ranks (the model's by DDP), and
    its trained rate model is checkpointed."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29572",
           str(TRAIN), str(ROOT / "tests" / "data"), "--out", str(tmp_path / "ddp"), "--steps", "2", *TINY,
           "--sign-bits", "--rate-weight", "0.5"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)
    assert ck["step"] == 2 and not torch.equal(ck["criterion"]["rate.bias"], torch.zeros_like(ck["criterion"]["rate.bias"]))


def test_learning_rate_schedules():
    cfg = runtime.FitConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert runtime.learning_rate(cfg, 0) == 0.1 and runtime.learning_rate(cfg, 9) == 1.0
    assert abs(runtime.learning_rate(cfg, 100) - 0.1) < 1e-9
    saw = runtime.FitConfig(steps=100, lr=1.0, warmup=0, schedule="sawtooth", cycle=10, min_lr_ratio=0.1)
    assert runtime.learning_rate(saw, 0) == 1.0 and runtime.learning_rate(saw, 10) == 1.0
    assert runtime.learning_rate(saw, 5) < 1.0
    warm = runtime.FitConfig(steps=100, lr=1.0, warmup=3, schedule="sawtooth", cycle=10, min_lr_ratio=0.1)
    assert runtime.learning_rate(warm, 10) == 1.0 and abs(runtime.learning_rate(warm, 9) - 0.19) < 1e-9  # teeth on epochs


def test_select_device_refuses_missing_cuda():
    if not torch.cuda.is_available():
        try:
            runtime.select_device("cuda")
        except ValueError as e:
            assert "CUDA" in str(e)
        else:
            raise AssertionError("asking for CUDA without one must fail")
    assert runtime.select_device("cpu").type == "cpu"


def test_ema_model_carries_the_batch_norm_statistics(tmp_path):
    torch.manual_seed(0)  # the net's initial weights: independent of what ran before
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(144, 1))

    def batch_fn(step):
        g = torch.Generator().manual_seed(step)
        return torch.randn(4, 3, 8, 8, generator=g) * 3 + 5, torch.zeros(4, 1)

    def loss_fn(model, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y), {}

    cfg = runtime.FitConfig(out_dir=str(tmp_path), steps=30, lr=1e-3, warmup=0, ema=0.99, log_every=100)
    result = runtime.fit(net, batch_fn, loss_fn, cfg)
    bn = result.model[1]
    assert result.model is not net and torch.equal(bn.running_mean, net[1].running_mean)
    assert (bn.running_mean != 0).all() and int(bn.num_batches_tracked) == 30  # tracked, not the start's zeros


def test_cpu_autocast_is_opt_in():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    cpu = torch.device("cpu")
    with runtime.autocast(cpu, True):  # the default: bf16 on CUDA only
        assert conv(x).dtype == torch.float32
    with runtime.autocast(cpu, True, cpu=True):
        assert conv(x).dtype == torch.bfloat16
    with runtime.autocast(cpu, False, cpu=True):  # --no-amp wins
        assert conv(x).dtype == torch.float32


def test_bf16_autocast_runs_the_bundled_codec_in_channels_last():
    """The 1x1 hidden-kernel fast path of the cells must accept bf16 gates with an fp32 state (--cpu-amp). Run as
    in training (grad mode: the layers themselves, which autocast reaches; inference calls oneDNN directly)."""
    net = load_codec(DEFAULT_CODEC, precision="fp32")   # the network as training builds it
    assert net.config.decoder_hidden_kernel == 1
    x = (torch.rand(1, 3, 32, 32) - 0.5).contiguous(memory_format=torch.channels_last)
    with torch.enable_grad():
        exact = net(x, 2).x_hats[-1].detach()
        with runtime.autocast(torch.device("cpu"), True, cpu=True):
            approx = net(x, 2).x_hats[-1].detach()
    assert 0 < (approx.float() - exact).abs().mean() < 0.02  # bf16 arithmetic did run, and stays close


def test_init_grows_cells_without_changing_what_the_codec_computes(tmp_path):
    """--init with wider --decoder-hidden / --encoder-hidden and --resize: the new hidden channels are appended, and
    nothing reads them yet (zero columns in the next layer and in the old channels' recurrent weights), so the wider
    network reconstructs a photo exactly as the bundled one does before training gives them a use."""
    out = tmp_path / "wide.pt"
    r = _tune(tmp_path / "run", "--init", DEFAULT_CODEC, "--decoder-hidden", "128", "128", "96", "48",
              "--encoder-hidden", "48", "96", "160", "--resize", "--export", str(out), "--name", "wide")
    assert r.returncode == 0, r.stderr
    wide, base = load_codec(str(out), precision="fp32"), load_codec(DEFAULT_CODEC, precision="fp32")
    assert wide.config.decoder_hidden == (128, 128, 96, 48) and base.config.decoder_hidden == (128, 128, 48, 24)
    d3 = wide.decoder.rnns[3]
    assert d3.conv_h.weight.shape == (4 * 48, 48, 1, 1) and wide.decoder.conv_out.weight.shape == (3, 12, 1, 1)
    assert not wide.decoder.conv_out.weight[:, 6:].any() and not d3.conv_h.weight[:24, 24:].any()
    assert d3.conv_h.weight[:24, :24].equal(base.decoder.rnns[3].conv_h.weight[:24])
    assert wide.encoder.rnns[2].conv_x.weight.shape == (4 * 160, 96, 3, 3) and not wide.binarizer.conv.weight[:, 128:].any()
    x = torch.from_numpy(np.asarray(Image.open(ROOT / "tests" / "data" / "parrots.png").convert("RGB"))[:64, :64].copy())
    x = x.permute(2, 0, 1)[None].float() / 255 - 0.5
    with torch.no_grad():
        for (bw, xw), (bb, xb) in zip(wide.iterate(x, 6), base.iterate(x, 6)):
            assert torch.equal(bw, bb) and torch.allclose(xw, xb, atol=1e-4)


def test_the_run_log_is_mirrored_to_tensorboard_when_it_is_installed(tmp_path, monkeypatch):
    """fit's log.csv rows (training steps and evaluations) reach TensorBoard as scalars at their step when the
    tensorboard package is there (a stand-in SummaryWriter here; CI does not install it), and without it the
    run writes the CSV alone."""
    written: list[tuple[str, float, int]] = []

    class SummaryWriter:  # records what torch.utils.tensorboard.SummaryWriter would write
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def flush(self):
            pass

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    net = torch.nn.Linear(2, 1)

    def batch_fn(step):
        return torch.ones(4, 2) * (step % 3)

    def loss_fn(model, x):
        return model(x).square().mean(), {"extra": 0.5}

    cfg = runtime.FitConfig(out_dir=str(tmp_path / "run"), steps=4, lr=1e-2, warmup=0, log_every=1, eval_every=2)
    runtime.fit(net, batch_fn, loss_fn, cfg, evaluate=lambda model, step: {"score": float(step)})
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").read_text().splitlines()))
    assert [step for tag, _, step in written if tag == "loss"] == [1, 2, 3, 4]
    assert [(v, step) for tag, v, step in written if tag == "val_score"] == [(2.0, 2), (4.0, 4)]
    losses_csv = [float(r["loss"]) for r in rows if r["loss"]]
    assert [v for tag, v, _ in written if tag == "loss"] == pytest.approx(losses_csv, rel=1e-5)
    assert {"lr", "extra", "s_per_step"} <= {tag for tag, _, _ in written}

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed: importing it fails
    log = runtime.RunLog(tmp_path / "plain")
    assert log.tensorboard is None
    (tmp_path / "plain").mkdir()
    log.write({"step": 1, "loss": 0.25})
    assert (tmp_path / "plain" / "log.csv").exists() and not (tmp_path / "plain" / "tensorboard").exists()


def test_validation_reports_the_last_iteration_beside_the_usual_counts(parrots):
    """A run of 12 iterations is judged at -i 12 too, not only at 1, 2, 4, 8 (and 16)."""
    crops = [torch.from_numpy(np.ascontiguousarray(parrots[:64, :64])).permute(2, 0, 1)]
    with torch.no_grad():
        report = training.validate_codec(load_codec(), crops, 3)
    assert {"msssim_i1", "msssim_i2", "msssim_i3", "psnr_i3"} <= report.keys() and "msssim_i4" not in report
    assert 0 < report["msssim_i1"] < report["msssim_i3"] <= 1

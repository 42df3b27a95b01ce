"""Round trips on real photographs through the Python API."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import lstmcodec
from lstmcodec import metrics
from lstmcodec.format import tables
from lstmcodec.training import runs as training
from lstmcodec.format.mixer import Mixer, logit_tables
from lstmcodec.models.zoo import DEFAULT_CODEC, load_codec

# Quality bands measured with the default bundled weights (fast) on tests/data/parrots.png
# (see weights/README.md); each floor sits a little under the measured value.
MSSSIM_FLOOR = {1: 0.86, 2: 0.91, 4: 0.945, 8: 0.96}  # measured: 0.886, 0.939, 0.968, 0.9833


def _decode_rgb(data: bytes, iterations=None) -> np.ndarray:
    return np.asarray(lstmcodec.decode(data, iterations=iterations).convert("RGB"))


def test_round_trip_size_mode_and_quality_per_iteration(parrots, parrots_lstm):
    h, w = parrots.shape[:2]
    scores = {}
    for t in MSSSIM_FLOOR:
        out = lstmcodec.decode(parrots_lstm, iterations=t)
        assert out.size == (w, h) and out.mode == "RGB"
        scores[t] = metrics.ms_ssim(np.asarray(out), parrots)
        assert scores[t] >= MSSSIM_FLOOR[t], (t, scores[t])
    assert scores[1] < scores[2] < scores[4] < scores[8], scores


def test_rate_grows_with_iterations_and_is_below_raw_bits(parrots):
    h, w = parrots.shape[:2]
    sizes = [len(lstmcodec.encode(parrots, iterations=t)) for t in (1, 2, 4)]
    assert sizes[0] < sizes[1] < sizes[2]
    raw_bits_bytes = 4 * 32 * (-(-h // 16)) * (-(-w // 16))  # 0.125 bpp per iteration
    assert sizes[2] < raw_bits_bytes + 100  # header and framing are under 100 bytes


def test_truncated_after_k_chunks_equals_decoding_k_iterations(parrots_lstm):
    fi = lstmcodec.info(parrots_lstm)
    meta = fi.file_bytes - sum(fi.iteration_bytes)
    for k in (1, 3, 5):
        prefix = parrots_lstm[: meta + sum(fi.iteration_bytes[:k])]
        assert lstmcodec.info(prefix).iterations == k
        assert np.array_equal(_decode_rgb(prefix), _decode_rgb(parrots_lstm, iterations=k))


def test_repeated_decodes_are_bit_identical(parrots_lstm):
    first = _decode_rgb(parrots_lstm)
    for _ in range(2):
        assert np.array_equal(first, _decode_rgb(parrots_lstm))


def test_encoding_is_deterministic(parrots):
    assert lstmcodec.encode(parrots, iterations=3) == lstmcodec.encode(parrots, iterations=3)


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (1000, 3), (3, 1000), (16, 16)])
def test_odd_sizes(parrots, size):
    w, h = size
    src = np.asarray(Image.fromarray(parrots).resize((w, h), Image.BILINEAR))
    out = lstmcodec.decode(lstmcodec.encode(src, iterations=2))
    assert out.size == (w, h) and out.mode == "RGB"


def test_grayscale_decodes_to_grayscale(parrots):
    gray = Image.fromarray(parrots).convert("L")
    out = lstmcodec.decode(lstmcodec.encode(gray, iterations=6))
    assert out.mode == "L" and out.size == gray.size
    assert metrics.psnr(np.asarray(out), np.asarray(gray)) > 20


def test_rgba_alpha_is_lossless(parrots):
    h, w = parrots.shape[:2]
    alpha = (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)
    rgba = np.dstack([parrots, alpha])
    out = lstmcodec.decode(lstmcodec.encode(rgba, iterations=2))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_la_keeps_alpha(parrots):
    la = Image.fromarray(parrots).convert("LA")
    alpha = np.zeros(la.size[::-1], np.uint8)
    alpha[::2] = 200
    la.putalpha(Image.fromarray(alpha))
    out = lstmcodec.decode(lstmcodec.encode(la, iterations=2))
    assert out.mode == "LA" and np.array_equal(np.asarray(out.getchannel("A")), alpha)


def test_palette_and_16bit_inputs_are_converted(parrots):
    pal = Image.fromarray(parrots).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    assert lstmcodec.decode(lstmcodec.encode(pal, iterations=2)).mode == "RGB"
    g16 = Image.fromarray(np.asarray(Image.fromarray(parrots).convert("L")).astype(np.uint16) * 257)
    assert g16.mode.startswith("I;16")
    out = lstmcodec.decode(lstmcodec.encode(g16, iterations=4))
    assert out.mode == "L"
    assert metrics.psnr(np.asarray(out), np.asarray(Image.fromarray(parrots).convert("L"))) > 20


def test_exif_orientation_is_applied(parrots):
    im = Image.fromarray(parrots)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    out = lstmcodec.decode(lstmcodec.encode(buf.getvalue(), iterations=1))
    assert out.size == (im.height, im.width)


def test_icc_profile_is_carried_through(parrots):
    from PIL import ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(parrots).save(buf, format="PNG", icc_profile=icc)
    out = lstmcodec.decode(lstmcodec.encode(buf.getvalue(), iterations=1))
    assert out.info.get("icc_profile") == icc


def test_pillow_plugin_opens_lstm_files(tmp_path, parrots_lstm):
    p = tmp_path / "x.lstm"
    p.write_bytes(parrots_lstm)
    with Image.open(p) as im:
        assert im.format == "LSTM" and im.size == (256, 192)
        assert np.array_equal(np.asarray(im.convert("RGB")), _decode_rgb(parrots_lstm))


def test_api_errors_are_codec_errors(parrots, parrots_lstm):
    with pytest.raises(lstmcodec.CodecError):
        lstmcodec.decode(b"")
    with pytest.raises(lstmcodec.CodecError):
        lstmcodec.decode(parrots_lstm, iterations=9)
    with pytest.raises(lstmcodec.CodecError):
        lstmcodec.encode(parrots, iterations=0)
    with pytest.raises(lstmcodec.CodecError):
        lstmcodec.encode(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(lstmcodec.CodecError):
        lstmcodec.encode(b"not an image")
    with pytest.raises(lstmcodec.CodecError, match="unknown model"):
        lstmcodec.encode(parrots, model="no-such-model")
    assert issubclass(lstmcodec.CodecError, ValueError)


def test_file_made_with_other_weights_is_refused(tmp_path, parrots):
    from lstmcodec.coding.codec import Codec
    from lstmcodec.nets.config import CodecConfig

    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    training.export_codec(Codec(CodecConfig(width=0.125)), other, DEFAULT_CODEC)  # same name, other weights
    data = lstmcodec.encode(parrots, iterations=2, model=str(other))
    with pytest.raises(lstmcodec.CodecError, match=f"made with model '{DEFAULT_CODEC}' .*, not with the bundled weights "
                                                   "of that name .*; pass its weights file with --model PATH"):
        lstmcodec.decode(data)
    assert lstmcodec.decode(data, model=str(other)).size == (256, 192)
    with pytest.raises(lstmcodec.CodecError, match="model mismatch"):
        lstmcodec.decode(data, model=DEFAULT_CODEC)


def test_the_codec_object_compresses_and_decompresses(parrots, parrots_lstm):
    """load_model gives the Codec that encode / decode use: the same bytes, any prefix, and its forward trains."""
    codec = lstmcodec.load_model("default")
    assert isinstance(codec, lstmcodec.Codec) and codec.name == DEFAULT_CODEC and codec is load_codec(DEFAULT_CODEC)
    data = codec.compress(parrots, iterations=8)
    assert data == parrots_lstm
    assert np.array_equal(np.asarray(codec.decompress(data, iterations=2)), _decode_rgb(parrots_lstm, iterations=2))
    images = list(codec.decompress_progressive(data, iterations=3))
    assert len(images) == 3 and np.array_equal(np.asarray(images[-1]), _decode_rgb(parrots_lstm, iterations=3))
    x = torch.from_numpy(parrots[:32, :32].copy()).permute(2, 0, 1)[None].float() / 255 - 0.5
    with torch.no_grad():
        x_hats = codec(x, 3).x_hats
    assert len(x_hats) == 3 and x_hats[0].shape == x.shape


def test_encoder_skips_the_last_decoder_run_without_changing_the_bits(parrots):
    """encode needs x̂_t only to form the next residual: iterate(decode_last=False) runs the
    decoder T-1 times and yields the same bits."""
    model = load_codec(DEFAULT_CODEC)
    x = torch.from_numpy(parrots[:64, :64].copy()).permute(2, 0, 1)[None].float() / 255 - 0.5
    calls = []
    hook = model.decoder.register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode():
        full = list(model.iterate(x, 4))
        n_full = len(calls)
        lean = list(model.iterate(x, 4, decode_last=False))
    hook.remove()
    assert (n_full, len(calls) - n_full) == (4, 3)
    assert lean[-1][1] is None and all(torch.equal(a[0], b[0]) for a, b in zip(full, lean))


def test_reexporting_loaded_weights_keeps_their_fingerprint(tmp_path):
    """A loaded codec runs channels-last; exporting it again writes the same tensors (same fingerprint),
    so files coded with the original still decode with the copy."""
    loaded = load_codec(DEFAULT_CODEC)
    assert loaded.decoder.conv_out.weight.is_contiguous(memory_format=torch.channels_last)
    fp = training.export_codec(loaded, tmp_path / "copy.pt", loaded.name, entropy_prior=loaded.prior,
                               entropy_mixer=loaded.mixer, tail=loaded.tail)
    assert fp == loaded.fingerprint == load_codec(str(tmp_path / "copy.pt")).fingerprint
    without = training.export_codec(loaded, tmp_path / "net.pt", loaded.name, entropy_prior=loaded.prior,
                                    entropy_mixer=loaded.mixer)   # the same weights without their linear tail
    assert without == loaded.network_fingerprint == load_codec(str(tmp_path / "net.pt")).fingerprint


def test_weights_carry_their_entropy_mixer(tmp_path, parrots):
    """A mixer is saved with the weights, loaded back checked, and part of their fingerprint."""
    loaded = load_codec(DEFAULT_CODEC)
    groups = tables.BUCKETS * 32
    w2 = np.zeros((groups, 6), np.int16)
    w2[:, 4] = 256   # the table's own logit, unchanged
    stretch, squash = logit_tables()
    mixer = Mixer.from_arrays({"w1": np.zeros((groups, 64, 4), np.int16), "b1": np.zeros((groups, 4), np.int16),
                               "w2": w2, "stretch": stretch, "squash": squash}, 32)
    plain = training.export_codec(loaded, tmp_path / "plain.pt", "m", entropy_prior=loaded.prior)
    mixed = training.export_codec(loaded, tmp_path / "mixed.pt", "m", entropy_prior=loaded.prior, entropy_mixer=mixer)
    assert plain != mixed
    back = load_codec(str(tmp_path / "mixed.pt"))
    assert back.fingerprint == mixed and np.array_equal(back.mixer.w2, mixer.w2)
    data = lstmcodec.encode(parrots, iterations=2, model=str(tmp_path / "mixed.pt"))
    assert lstmcodec.decode(data, model=str(tmp_path / "mixed.pt")).size == (256, 192)
    with pytest.raises(lstmcodec.CodecError, match="model mismatch"):
        lstmcodec.decode(data, model=str(tmp_path / "plain.pt"))
    blob = torch.load(tmp_path / "mixed.pt", weights_only=True)
    blob["entropy_mixer"]["w1"] = blob["entropy_mixer"]["w1"][:, :63]
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(lstmcodec.CodecError, match="bad entropy mixer"):
        load_codec(str(tmp_path / "bad.pt"))


def test_one_byte_tables_halve_the_table_and_code_as_well(tmp_path, parrots):
    """A table stored a byte per entry (tables.pack_prior) takes half the bytes of int16, is loaded back as the
    int16 table the coder uses, re-exports to the same fingerprint, and codes parrots within 0.5 % of the bytes."""
    loaded = load_codec(DEFAULT_CODEC)
    two_bytes = training.export_codec(loaded, tmp_path / "int16.pt", "m", entropy_prior=loaded.prior,
                                      entropy_mixer=loaded.mixer, table_bytes=2)
    fp = training.export_codec(loaded, tmp_path / "byte.pt", "m", entropy_prior=loaded.prior,
                               entropy_mixer=loaded.mixer, table_bytes=1)
    assert fp != two_bytes
    saved = (tmp_path / "int16.pt").stat().st_size - (tmp_path / "byte.pt").stat().st_size
    assert abs(saved - loaded.prior.size) < 4096, saved
    back = load_codec(str(tmp_path / "byte.pt"))
    assert back.fingerprint == fp and back.prior.dtype == np.int16 and np.array_equal(back.prior, loaded.prior)
    again = training.export_codec(back, tmp_path / "again.pt", "m", entropy_prior=back.prior,
                                  entropy_mixer=back.mixer, table_bytes=1)
    assert again == fp
    full = lstmcodec.encode(parrots, iterations=8, model=str(tmp_path / "int16.pt"))
    small = lstmcodec.encode(parrots, iterations=8, model=str(tmp_path / "byte.pt"))
    assert len(small) == len(full)  # the bundled table is already on the one-byte levels: the same probabilities
    assert np.array_equal(np.asarray(lstmcodec.decode(small, model=str(tmp_path / "byte.pt"))),
                          np.asarray(lstmcodec.decode(full, model=str(tmp_path / "int16.pt"))))
    stored = tables.stored(np.clip(loaded.prior.astype(np.int64) + 7, 1, tables.ONE - 1).astype(np.int16), 1)
    logit = lambda p: np.log(p / (tables.ONE - p.astype(np.float64)))  # noqa: E731
    assert np.abs(logit(stored) - logit(np.clip(loaded.prior.astype(np.int64) + 7, 1, tables.ONE - 1))).max() < 0.06
    blob = torch.load(tmp_path / "byte.pt", weights_only=True)
    del blob["entropy_prior_levels"]
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(lstmcodec.CodecError, match="bad entropy table"):
        load_codec(str(tmp_path / "bad.pt"))


def test_the_best_model_decodes_without_an_option_and_beats_the_default_at_equal_bytes(parrots):
    # parrots: best at -i 8 (3,793 bytes, MS-SSIM 0.9874) against the default at the most iterations whose file is
    # not larger (-i 12: 3,757 bytes, 0.9868); see weights/README.md
    data = lstmcodec.encode(parrots, iterations=8, model="best")
    assert lstmcodec.info(data).model == "best"
    best = metrics.ms_ssim(_decode_rgb(data), parrots)
    default = next(d for d in (lstmcodec.encode(parrots, iterations=i) for i in range(16, 0, -1)) if len(d) <= len(data))
    assert lstmcodec.info(default).iterations >= 10
    assert best > metrics.ms_ssim(_decode_rgb(default), parrots) and best > 0.975


def test_read_only_pixels_are_copied_not_handed_to_torch(parrots, monkeypatch):
    """np.asarray of a PIL image is read-only; torch.from_numpy of such an array warns (once per process) that
    writing to it is undefined. to_tensor copies it first, and the tensor is the same."""
    from lstmcodec.coding.tensors import to_tensor

    rgb = parrots   # np.asarray of the PIL image
    assert not rgb.flags.writeable
    expected = to_tensor(rgb.copy())
    real = torch.from_numpy

    def checked(a):
        assert a.flags.writeable, "a read-only array reached torch.from_numpy"
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", checked)
    assert torch.equal(to_tensor(rgb), expected)

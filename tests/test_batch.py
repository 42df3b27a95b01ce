"""Several images through the networks at once (coding.batching: compress_many / decompress_many): the files and the pixels are
the ones the one-image calls give, whatever the grouping."""
from __future__ import annotations

import numpy as np
import pytest

from lstmcodec.coding import batching
from lstmcodec.models import zoo
from lstmcodec.errors import CodecError


@pytest.fixture(scope="module")
def codec():
    return zoo.load_codec("fast")


@pytest.fixture(scope="module")
def images(parrots, houses):
    """Two sizes; three images of parrots' padded size, one of them smaller inside it; a flat one that the linear
    tail's gate stops after the networks' iterations (no block gains from a stage)."""
    return [parrots, houses, np.ascontiguousarray(parrots[::-1, ::-1]), np.ascontiguousarray(parrots[:183, :250]),
            np.full_like(parrots, 128)]


@pytest.mark.parametrize("iterations", [3, 14])
def test_batched_files_are_the_files_of_one_image_at_a_time(codec, images, iterations):
    one_by_one = [codec.compress(im, iterations) for im in images]
    assert batching.compress_many(codec, images, iterations, batch=3) == one_by_one
    if iterations == 14:   # the flat image ends where the gate stopped it, the others hold every iteration
        counts = [codec.read(f).header.iterations for f in one_by_one]
        assert counts[0] == counts[2] == counts[3] == 14 and counts[4] == codec.tail.start


def test_batched_decoding_gives_the_pixels_of_one_file_at_a_time(codec, images, monkeypatch):
    files = [codec.compress(im, n) for im, n in zip(images, (14, 3, 14, 6, 14))]
    files += [files[0], codec.compress(images[0], 14, tiles=128)]   # a tiled file decodes alone, beside the batch
    batches = []
    batch_of = codec.reconstruct_batch
    monkeypatch.setattr(codec, "reconstruct_batch", lambda ds: batches.append(len(ds)) or batch_of(ds))
    batched = batching.decompress_many(codec, files, batch=4)
    assert batches == [2]   # files 0 and 2 (14 planes; 3 and 4 hold 6 and 12); 5 shares the next group with the tiled 6
    assert [im.size for im in batched] == [(256, 192), (160, 160), (256, 192), (250, 183), (256, 192), (256, 192),
                                           (256, 192)]
    for f, im in zip(files, batched):
        assert np.array_equal(np.asarray(im), np.asarray(codec.decompress(f)))
    prefix = batching.decompress_many(codec, files[:1], iterations=5, batch=2)[0]
    assert np.array_equal(np.asarray(prefix), np.asarray(codec.decompress(files[0], iterations=5)))


def test_batch_errors_are_codec_errors(codec, parrots):
    with pytest.raises(CodecError, match="batch must be at least 1"):
        batching.compress_many(codec, [parrots], 2, batch=0)
    with pytest.raises(CodecError, match="iterations must be between"):
        batching.compress_many(codec, [parrots], 0)
    data = codec.compress(parrots, 2)
    with pytest.raises(CodecError, match="batch must be at least 1"):
        batching.decompress_many(codec, [data], batch=0)
    with pytest.raises(CodecError, match="2 iterations, 3 requested"):
        batching.decompress_many(codec, [data], iterations=3)


def test_batches_group_images_of_one_padded_size_within_a_pixel_budget():
    from lstmcodec.coding import batching
    from lstmcodec.format import tiling

    sizes = [(512, 768)] * 20 + [(500, 760), (768, 512), (1088, 1920), (1080, 1920), (1078, 1911), (1081, 1920),
                                 (1088, 1936)]
    groups = list(batching.groups(sizes, 16, lambda s: s))
    assert sorted(i for g in groups for i in g) == list(range(len(sizes)))
    # each group one padded size, at most 16 images and BATCH_PIXELS pixels; the largest untiled size 3 at a time
    assert [len(g) for g in groups] == [1, 16, 5, 1, 3, 1]
    for g in groups:
        assert len({(-(-sizes[i][0] // 16), -(-sizes[i][1] // 16)) for i in g}) == 1
    assert 1088 * 1936 > tiling.THRESHOLD and groups[0] == [len(sizes) - 1]   # tiled: alone, as it comes
    assert [len(g) for g in batching.groups(sizes, 1, lambda s: s)] == [1] * len(sizes)


def test_the_command_line_batches_many_files_with_the_same_bytes_and_errors(tmp_path, parrots_path, parrots, houses):
    """`encode`/`decode --batch N` (CUDA's default is 16): the files and images of one file at a time; a bad input in
    a group is reported against its own name and the others are still written."""
    from PIL import Image

    from conftest import run_cli

    names = []
    for name, rgb in (("a", parrots), ("b", houses), ("c", parrots[::-1]), ("d", parrots[:, ::-1])):
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp_path / f"{name}.png")
        names.append(tmp_path / f"{name}.png")
    (tmp_path / "e.png").write_bytes(b"not an image")
    inputs = names[:2] + [tmp_path / "e.png"] + names[2:]
    one, many = tmp_path / "one", tmp_path / "many"
    r = run_cli("encode", *names, "-d", one, "-i", "3", "-q")
    assert r.returncode == 0, r.stderr.decode()
    r = run_cli("encode", *inputs, "-d", many, "-i", "3", "--batch", "3")
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err
    assert f"error: {tmp_path / 'e.png'}" in err and "1 of 5 files failed" in err
    assert sorted(p.name for p in many.iterdir()) == ["a.lstm", "b.lstm", "c.lstm", "d.lstm"]
    for p in one.iterdir():
        assert (many / p.name).read_bytes() == p.read_bytes(), p.name

    files = sorted(one.glob("*.lstm"))
    broken = tmp_path / "broken.lstm"   # its header reads, its payload does not: the group falls back to one at a time
    data = files[0].read_bytes()
    broken.write_bytes(data[:-40])
    decoded_one, decoded_many = tmp_path / "png-one", tmp_path / "png-many"
    assert run_cli("decode", *files, "-d", decoded_one, "-q").returncode == 0
    r = run_cli("decode", files[0], broken, *files[1:], "-d", decoded_many, "--batch", "4")
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err and f"error: {broken}" in err and "1 of 5 files failed" in err
    assert sorted(p.name for p in decoded_many.iterdir()) == sorted(p.name for p in decoded_one.iterdir())
    for p in decoded_one.iterdir():
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(decoded_many / p.name))), p.name

    r = run_cli("encode", names[0], "--batch", "2", "--bpp", "0.5", "-o", tmp_path / "x.lstm")
    assert r.returncode == 2 and "--batch" in r.stderr.decode() and not (tmp_path / "x.lstm").exists()
    r = run_cli("decode", files[0], "--batch", "0", "-o", tmp_path / "x.png")
    assert r.returncode == 2 and not (tmp_path / "x.png").exists()


def test_run_batch_groups_by_count_and_pixels_and_falls_back_one_at_a_time(capsys):
    """cliio.run_batch's grouped path: a group ends at `size` inputs or once it holds `max_pixels`; a group whose
    coding fails goes again through `work`, one input at a time; a load failure is that input's alone."""
    from lstmcodec.cli.cliio import Batched, run_batch

    groups, written, alone = [], [], []

    def load(inp):
        if inp == "bad":
            raise CodecError("bad: cannot read")
        return inp

    def code(items):
        groups.append(list(items))
        if "boom" in items:
            raise CodecError("the group failed")
        return [x.upper() for x in items]

    def work(inp, out):
        alone.append(inp)
        if inp == "boom":
            raise CodecError("boom: too large")

    inputs = ["a", "b", "big", "c", "bad", "d", "boom", "e"]
    batched = Batched(3, load, code, lambda inp, out, item, res: written.append((out, res)),
                      lambda item: 8 if item == "big" else 1, 9)
    assert run_batch(inputs, [f"{i}.out" for i in inputs], work, True, batched) == 1
    assert groups == [["a", "b", "big"], ["c", "d", "boom"], ["e"]]
    assert alone == ["c", "d", "boom"]   # the failed group, again one by one
    assert written == [("a.out", "A"), ("b.out", "B"), ("big.out", "BIG"), ("e.out", "E")]
    err = capsys.readouterr().err
    assert "error: bad: cannot read" in err and "error: boom: too large" in err and "2 of 8 files failed: bad, boom" in err

    groups.clear()
    assert run_batch(["a", "big", "b", "c"], ["1", "2", "3", "4"], work, True,
                     Batched(4, load, code, lambda *a: None, lambda item: 8 if item == "big" else 1, 9)) == 0
    assert groups == [["a", "big"], ["b", "c"]]   # 9 pixels held: the group is full

"""The recurrent cells: the fast inference arithmetic equals the training arithmetic."""
from __future__ import annotations

import pytest
import torch

from lstmcodec.nets.cells import ConvLSTMCell


def _run(cell: ConvLSTMCell, xs: list[torch.Tensor], channels_last: bool, grad: bool) -> list[torch.Tensor]:
    """Three steps of the cell; returns every h and c."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    cell = cell.to(memory_format=fmt)
    out, state = [], None
    with torch.set_grad_enabled(grad):
        for x in xs:
            h, state = cell(x.contiguous(memory_format=fmt), state)
            out += [h.detach(), state[1].detach()]
    return out


@pytest.mark.parametrize("kernel,stride,hidden_kernel", [(3, 2, 1), (3, 1, 1), (3, 1, 3)])
def test_inference_path_equals_training_path(kernel, stride, hidden_kernel):
    """Inference (no autograd) uses in-place activations, tanh as 2·sigmoid(2x) - 1 and, channels-last
    with a 1x1 hidden kernel, an in-place matrix product for the hidden state: the same numbers as the
    plain training arithmetic, in either memory layout."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(8, 12, kernel=kernel, stride=stride, hidden_kernel=hidden_kernel)
    xs = [torch.randn(2, 8, 16, 24) for _ in range(3)]
    reference = _run(cell, xs, channels_last=False, grad=True)
    for channels_last in (False, True):
        fast = _run(cell, xs, channels_last=channels_last, grad=False)
        for a, b in zip(fast, reference):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert _run(cell, xs, channels_last=True, grad=False)[0].is_contiguous(memory_format=torch.channels_last)


def test_training_path_still_has_gradients_through_the_hidden_state():
    """The in-place hidden-state product is also taken in training when tensors are channels-last:
    gradients must reach the hidden-state weights."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(4, 8, kernel=3, stride=1, hidden_kernel=1).to(memory_format=torch.channels_last)
    state = None
    for _ in range(2):
        h, state = cell(torch.randn(1, 4, 8, 8).contiguous(memory_format=torch.channels_last), state)
    h.sum().backward()
    assert cell.conv_h.weight.grad is not None and cell.conv_h.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("stride,height", [(1, 23), (2, 23), (2, 24)])
def test_inference_in_bands_of_rows_equals_the_whole_image(monkeypatch, stride, height):
    """Large images run each inference step in bands of output rows (cells.STRIPS_ABOVE): bands whose
    input rows reach past the top or bottom edge are padded like the whole-image convolution, so
    h and c are the same numbers whatever the band height."""
    from lstmcodec.nets import cells

    torch.manual_seed(0)
    cell = ConvLSTMCell(8, 12, kernel=3, stride=stride, hidden_kernel=1)
    xs = [torch.randn(1, 8, height, 20) for _ in range(3)]
    whole = _run(cell, xs, channels_last=True, grad=False)
    monkeypatch.setattr(cells, "STRIPS_ABOVE", 0)
    for band_rows in (4, 5, 64):   # bands of 4 and 5 rows (the last one shorter), and one band for all
        monkeypatch.setattr(cells, "STRIP_BYTES", band_rows * cell.gates * cell.hidden * (20 // stride) * 4)
        assert cell._strip_rows(xs[0].contiguous(memory_format=torch.channels_last), None) == band_rows
        banded = _run(cell, xs, channels_last=True, grad=False)
        for a, b in zip(banded, whole):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def _run_bf16(cell: ConvLSTMCell, xs: list[torch.Tensor], fp32_state: bool) -> list[torch.Tensor]:
    cell.fp32_state = fp32_state
    try:
        return _run(cell, [x.to(torch.bfloat16) for x in xs], channels_last=True, grad=False)
    finally:
        cell.fp32_state = False


def test_bf16_inference_keeps_the_cell_state_in_fp32(monkeypatch):
    """In bf16 inference (fp32_state, set by RecurrentCodec.set_precision) c_t, which sums over every iteration, is
    kept in fp32 while h_t, what the convolutions read, is bf16; the bands of rows give the same numbers as the whole
    image. (What it buys: tests/test_precision.py.)"""
    from lstmcodec.nets import cells

    torch.manual_seed(0)
    cell = ConvLSTMCell(8, 12, kernel=3, stride=1, hidden_kernel=1)
    xs = [torch.randn(1, 8, 23, 20) for _ in range(4)]
    kept, rounded = _run_bf16(cell, xs, True), _run_bf16(cell, xs, False)
    assert kept[-1].dtype == torch.float32 and kept[-2].dtype == torch.bfloat16 and rounded[-1].dtype == torch.bfloat16
    monkeypatch.setattr(cells, "STRIPS_ABOVE", 0)
    monkeypatch.setattr(cells, "STRIP_BYTES", 5 * cell.gates * cell.hidden * 20 * 2)
    assert cell._strip_rows(xs[0].to(torch.bfloat16).contiguous(memory_format=torch.channels_last), None) == 5
    for a, b in zip(_run_bf16(cell, xs, True), kept):
        assert a.dtype == b.dtype and torch.equal(a, b)

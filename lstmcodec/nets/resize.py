"""Growing and shrinking a codec network's recurrent cells, and 3x3 hidden kernels made 1x1, so that a network
of another shape can start from trained weights (train_codec.py --init ... --resize)."""
from __future__ import annotations

import torch

# Each recurrent cell, the weight that reads its hidden state, and how many hidden channels make one
# input channel of that reader (4 in the decoder, where depth-to-space follows every cell).
CELL_READERS = [
    ("encoder.rnns.0.", "encoder.rnns.1.conv_x.weight", 1),
    ("encoder.rnns.1.", "encoder.rnns.2.conv_x.weight", 1),
    ("encoder.rnns.2.", "binarizer.conv.weight", 1),
    ("decoder.rnns.0.", "decoder.rnns.1.conv_x.weight", 4),
    ("decoder.rnns.1.", "decoder.rnns.2.conv_x.weight", 4),
    ("decoder.rnns.2.", "decoder.rnns.3.conv_x.weight", 4),
    ("decoder.rnns.3.", "decoder.conv_out.weight", 4),
]


def centre_taps(sd: dict, target: dict) -> dict:
    """`sd` with every k x k kernel that is 1 x 1 in `target` replaced by its centre tap."""
    sd = dict(sd)
    for key, value in sd.items():
        if value.dim() == 4 and key in target and value.shape[2:] != target[key].shape[2:] == (1, 1):
            k = value.shape[2] // 2
            sd[key] = value[:, :, k:k + 1, k:k + 1]
    return sd


def resize_cells(sd: dict, fresh: dict) -> dict:
    """Resize the recurrent cells of a codec state dict to the hidden widths of `fresh` (a newly initialised state
    dict of the target shape).

    Narrower: a cell keeps the groups of hidden channels that its reader reads most strongly (largest sum
    of squared weights), with their gate rows and recurrent weights, and the reader keeps the matching
    input channels. Wider: the new hidden channels are appended with the gate rows of `fresh`; the old channels'
    recurrent weights and the reader get zero columns for them, so the resized network computes exactly what the
    original did until training gives the new channels a use."""
    sd = dict(sd)
    for cell, reader, group in CELL_READERS:
        old, new = sd[cell + "conv_h.weight"].shape[1], fresh[cell + "conv_h.weight"].shape[1]
        if new == old:
            continue
        gates = sd[cell + "conv_x.weight"].shape[0] // old
        if new > old:  # (new - old) is a multiple of group: CodecConfig keeps decoder cells multiples of 4
            sd[cell + "conv_h.weight"] = _zero_columns(sd[cell + "conv_h.weight"], new - old)
            for key in ("conv_h.weight", "conv_x.weight", "conv_x.bias"):
                old_rows, new_rows = sd[cell + key].chunk(gates), fresh[cell + key].to(sd[cell + key].dtype).chunk(gates)
                sd[cell + key] = torch.cat([torch.cat([o, n[old:]]) for o, n in zip(old_rows, new_rows)])
            sd[reader] = _zero_columns(sd[reader], (new - old) // group)
            continue
        strength = sd[reader].float().pow(2).sum(dim=(0, 2, 3))  # one value per input channel of the reader
        inputs = strength.topk(new // group).indices.sort().values
        keep = (inputs[:, None] * group + torch.arange(group)).flatten()
        rows = torch.cat([g * old + keep for g in range(gates)])
        sd[cell + "conv_x.weight"] = sd[cell + "conv_x.weight"][rows]
        sd[cell + "conv_x.bias"] = sd[cell + "conv_x.bias"][rows]
        sd[cell + "conv_h.weight"] = sd[cell + "conv_h.weight"][rows][:, keep]
        sd[reader] = sd[reader][:, inputs]
    return sd


def _zero_columns(w: torch.Tensor, n: int) -> torch.Tensor:
    """A convolution weight with n more input channels, all of whose weights are zero."""
    return torch.cat([w, w.new_zeros(w.shape[0], n, *w.shape[2:])], 1)

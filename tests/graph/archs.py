"""Small test networks covering the structures the graph analysis must understand."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResNetMini(nn.Module):
    """Residual stream with BatchNorm, a projection shortcut and global pooling."""

    def __init__(self, c: int = 8, num_classes: int = 5):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.a1, self.abn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.a2, self.abn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.b1, self.bbn1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c)
        self.b2, self.bbn2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, bias=False), nn.BatchNorm2d(2 * c)
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 1, stride=2, bias=False), nn.BatchNorm2d(2 * c))
        self.fc = nn.Linear(2 * c, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(x + self.abn2(self.a2(F.relu(self.abn1(self.a1(x))))))
        x = F.relu(self.down(x) + self.bbn2(self.b2(F.relu(self.bbn1(self.b1(x))))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class DenseMini(nn.Module):
    """Concatenation of feature maps (DenseNet style) and flatten -> Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1)
        self.c3 = nn.Conv2d(10, 5, 3, padding=1)
        self.fc = nn.Linear(15 * 4 * 4, 3)

    def forward(self, x):
        a = F.relu(self.c1(x))
        b = F.relu(self.c2(a))
        c = F.relu(self.c3(torch.cat([a, b], 1)))
        y = F.max_pool2d(torch.cat([a, b, c], 1), 2)
        return self.fc(y.flatten(1))


class GroupedMini(nn.Module):
    """Grouped and depthwise convolutions, GroupNorm, Hardswish."""

    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(3, 8, 1)
        self.gn = nn.GroupNorm(4, 8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=2)
        self.bn = nn.BatchNorm2d(12)
        self.project = nn.Conv2d(12, 6, 1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = F.hardswish(self.gn(self.expand(x)))
        x = F.relu6(self.dw(x))
        x = F.relu(self.bn(self.grouped(x)))
        return self.fc(self.project(x).mean((2, 3)))


class BertLayer(nn.Module):
    """Self-attention from separate q/k/v Linear layers, LayerNorm (post-norm), GELU MLP."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads, self.dh = heads, dim // heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.attn_out = nn.Linear(dim, dim)
        self.ln1 = nn.LayerNorm(dim)
        self.intermediate, self.output = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.ln2 = nn.LayerNorm(dim)

    def split(self, t):
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dh).permute(0, 2, 1, 3)

    def forward(self, x, mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dh) + mask
        ctx = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(x.shape)
        x = self.ln1(x + self.attn_out(ctx))
        return self.ln2(x + self.output(F.gelu(self.intermediate(x))))


class BertMini(nn.Module):
    """Token + position embeddings, two encoder layers, pooled classifier."""

    def __init__(self, vocab: int = 50, dim: int = 16, heads: int = 4, layers: int = 2, seq: int = 12, classes: int = 3):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(seq, dim)
        self.ln = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(BertLayer(dim, heads, 2 * dim) for _ in range(layers))
        self.pool, self.cls = nn.Linear(dim, dim), nn.Linear(dim, classes)

    def forward(self, ids, attention_mask):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.ln(self.tok(ids) + self.pos(pos)[None])
        mask = (1.0 - attention_mask[:, None, None, :].float()) * -1e4
        for layer in self.layers:
            x = layer(x, mask)
        return self.cls(torch.tanh(self.pool(x[:, 0])))


class ViTMHA(nn.Module):
    """Patch embedding, class token, positional embedding, pre-norm nn.MultiheadAttention blocks."""

    def __init__(self, dim: int = 24, heads: int = 3, depth: int = 2, patch: int = 4, image: int = 16, classes: int = 5):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        n = (image // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(nn.ModuleDict({
                "ln1": nn.LayerNorm(dim), "attn": nn.MultiheadAttention(dim, heads, batch_first=True),
                "ln2": nn.LayerNorm(dim), "fc1": nn.Linear(dim, 2 * dim), "fc2": nn.Linear(2 * dim, dim)}))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for blk in self.blocks:
            h = blk["ln1"](x)
            x = x + blk["attn"](h, h, h, need_weights=False)[0]
            x = x + blk["fc2"](F.gelu(blk["fc1"](blk["ln2"](x))))
        return self.head(self.norm(x)[:, 0])


class Untraceable(nn.Module):
    """Moves channels into space (pixel shuffle): an operation the analysis must refuse."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(1, 2)

    def forward(self, x):
        y = F.pixel_shuffle(self.c(x), 2)
        return self.fc(y.mean((2, 3)))


class Cumulative(nn.Module):
    """A cumulative sum over channels: order matters, so those channels must stay put."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.d = nn.Conv2d(4, 5, 1)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        y = self.c(x).cumsum(1)
        return self.fc(self.d(y).mean((2, 3)))


def bert_inputs(batch: int = 2, seq: int = 12, vocab: int = 50):
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, -3:] = 0
    return ids, mask

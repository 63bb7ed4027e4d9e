#!/usr/bin/env python3
"""The workloads of `dia bench`, in PyTorch, with the same JSON lines.

Run beside `dia bench --json` on the same machine, one after the other:

    target/release/dia bench --json; python scripts/bench_torch.py --json

Same models (ResNet-18 with the CSI heads, CIFAR and ImageNet stems, input normalisation
(x - 0.5) / 0.5), same batch (64 images: 8 x 4 rotations x 2 views for training), same step as `dia train`
(NT-Xent with tau 0.5 and the reference's +1e-8 terms, plus the shift cross-entropy, then LARS
over SGD as torchlars computes it: momentum 0.9, weight decay 1e-6, trust 0.001), same timing
(median of --runs after --warmup).
unet-dissolve-32 runs denoising_diffusion_pytorch 0.27.12's own GaussianDiffusion.p_sample (the
call DIA makes); dissolve-224 adds the reference's resizes around it (224 -> 32 -> 224, bilinear,
no antialias: torchvision's tensor Resize(antialias=None)); dia-train-cifar32 is the DIA step
(two clean groups, p_sample once per rotation at t = 40/55/70/85, NT-Xent-neg with the
reference's "shifted removed" mask, shift CE, LARS); csi-score is the reference's formula on
random features. The *-imagenet224 workloads are the CSI step and evaluation at the paper's
224 px. `scripts/bench_table.py` turns both outputs into one table.
Needs torch (and denoising_diffusion_pytorch==0.27.12 for unet-dissolve-32); uses 2 threads
unless --threads says otherwise. `--device cuda` runs every workload on the GPU (timed with
torch.cuda.synchronize after each step), beside `dia bench --device cuda`.

ATEN_CPU_CAPABILITY=avx2 holds only ATen's own kernels to AVX2: the convolutions run in oneDNN
and the matrix products in MKL, which read ONEDNN_MAX_CPU_ISA and MKL_ENABLE_INSTRUCTIONS
instead. With ATEN_CPU_CAPABILITY=avx2 this script sets those two to AVX2 as well (unless they
are set already) and reports "isa": "avx2", so that both sides of `DIA_ISA=avx2` comparisons are
AVX2 throughout (measured on a 2-vCPU AVX-512 Xeon: without them, the CIFAR evaluation ran at
214 images/s, with them at 119).
"""
import argparse
import json
import os
import resource
import statistics
import time

# Before torch is imported: oneDNN and MKL read these once, at start-up.
ISA = os.environ.get("ATEN_CPU_CAPABILITY", "default")
if ISA == "avx2":
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
    os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEV = torch.device("cpu")


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize(DEV)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, imagenet):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.short is None else self.short(x)))


class ResNet18(nn.Module):
    def __init__(self, imagenet, width=64, classes=2, k_shift=4, simclr_dim=128):
        super().__init__()
        self.imagenet = imagenet
        k, s, p = (7, 2, 3) if imagenet else (3, 1, 1)
        self.conv1 = nn.Conv2d(3, width, k, s, p, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage, mult in enumerate([1, 2, 4, 8]):
            for j in range(2):
                stride = 2 if stage > 0 and j == 0 else 1
                blocks.append(BasicBlock(cin, width * mult, stride, imagenet))
                cin = width * mult
        self.blocks = nn.Sequential(*blocks)
        last = 8 * width
        self.linear = nn.Linear(last, classes)
        self.simclr_layer = nn.Sequential(nn.Linear(last, last), nn.ReLU(), nn.Linear(last, simclr_dim))
        self.shift_cls_layer = nn.Linear(last, k_shift)
        self.joint_distribution_layer = nn.Linear(last, 4 * classes)

    def forward(self, x):
        x = (x - 0.5) / 0.5
        h = F.relu(self.bn1(self.conv1(x)))
        if self.imagenet:
            h = F.max_pool2d(h, 3, 2, 1)
        h = self.blocks(h)
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1) if self.imagenet else F.avg_pool2d(h, 4), 1)
        return self.linear(h), self.simclr_layer(h), self.shift_cls_layer(h), self.joint_distribution_layer(h)


def nt_xent(sim, tau=0.5):
    n = sim.shape[0]
    m = n // 2
    e = torch.exp(sim / tau) * (1 - torch.eye(n, device=sim.device))
    l = -torch.log(e / (e.sum(1, keepdim=True) + 1e-8) + 1e-8)
    idx = (torch.arange(n, device=sim.device) + m) % n
    return l[torch.arange(n, device=sim.device), idx].sum() / n


def nt_xent_neg(sim, tau=0.5):
    # DIA's NT_xent_neg, "shifted removed": the dissolved copy of an anchor's image under the
    # same shift is masked; dissolved rows are never anchors.
    n = sim.shape[0]
    m = n // 3
    keep = 1 - torch.eye(n, device=sim.device)
    i = torch.arange(m, device=sim.device)
    for a, b in ((i, 2 * m + i), (m + i, 2 * m + i)):
        keep[a, b] = 0
        keep[b, a] = 0
    e = torch.exp(sim / tau) * keep
    l = -torch.log(e / (e.sum(1, keepdim=True) + 1e-8) + 1e-8)
    idx = (torch.arange(2 * m, device=sim.device) + m) % (2 * m)
    return l[torch.arange(2 * m, device=sim.device), idx].sum() / (3 * m)


def diffusion_model():
    # The library the DIA reference uses (spec 2.1); needs denoising_diffusion_pytorch==0.27.12.
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet
    unet = Unet(dim=64, dim_mults=(1, 2, 4, 8))
    return GaussianDiffusion(unet, image_size=32, timesteps=1000, loss_type="l1").eval().to(DEV)


def dissolve_224_workload():
    diffusion = diffusion_model()
    x = torch.rand(64, 3, 224, 224, device=DEV)

    def step():
        y = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
        y = diffusion.p_sample(y, 50)[1]
        F.interpolate(y, size=(224, 224), mode="bilinear", align_corners=False).sum()

    return step, 64


def unet_workload():
    diffusion = diffusion_model()
    x = torch.rand(64, 3, 32, 32, device=DEV)

    def step():
        diffusion.p_sample(x, 50)[1].sum()

    return step, 64


def csi_workload():
    # The reference's CSI score (evals/ood_pre.py) on random features: per shift k, axes are
    # the normalised training features, score = mean_k w_sim*max_m <z, axis_m> + w_shi*logit_k.
    train = [(torch.randn(5000, 128, device=DEV), torch.randn(5000, 4, device=DEV) + 3) for _ in range(4)]
    test = [(torch.randn(1000, 128, device=DEV), torch.randn(1000, 4, device=DEV) + 3) for _ in range(4)]
    axes = [z / (z.norm(dim=1, keepdim=True) + 1e-8) for z, _ in train]
    w_sim = [1 / z.norm(dim=1).mean() for z, _ in train]
    w_shi = [1 / l[:, k].mean() for k, (_, l) in enumerate(train)]

    def step():
        s = 0
        for k, (z, l) in enumerate(test):
            s = s + w_sim[k] * (z @ axes[k].t()).max(dim=1)[0] + w_shi[k] * l[:, k]
        return s / 4

    return step, 1000


def workload(name):
    torch.manual_seed(0)
    if name == "unet-dissolve-32":
        return unet_workload()
    if name == "csi-score":
        return csi_workload()
    if name == "dissolve-224":
        return dissolve_224_workload()
    dia = name == "dia-train-cifar32"
    imagenet = "imagenet" in name
    size = int(name.split("imagenet")[1]) if imagenet else 32
    model = ResNet18(imagenet).to(DEV)
    x = torch.rand(64, 3, size, size, device=DEV)
    if dia:
        diffusion = diffusion_model()
        originals = torch.rand(8, 3, 32, 32, device=DEV)
    if name.startswith("encoder-eval"):
        model.eval()

        def step():
            with torch.no_grad():
                model(x)[1].sum()

        return step, 64
    model.train()
    params = list(model.parameters())
    bufs = [None] * len(params)
    # 8 images x 4 shifts x 2 views (x 3 groups for DIA)
    labels = torch.arange(4, device=DEV).repeat_interleave(8).repeat(3 if dia else 2)

    def lars_step(lr=0.1):
        with torch.no_grad():
            for i, p in enumerate(params):
                if p.grad is None:
                    continue
                g = p.grad
                pn, gn = p.norm(), g.norm()
                a = 0.001 * pn / (gn + 1e-6 * pn + 1e-8) if pn > 0 and gn > 0 else 1.0
                d = (g + 1e-6 * p) * a
                bufs[i] = d.clone() if bufs[i] is None else bufs[i].mul_(0.9).add_(d)
                p.sub_(lr * bufs[i])

    def step():
        images = x
        if dia:
            parts = [x]
            for k, t in enumerate((40, 55, 70, 85)):
                parts.append(torch.rot90(diffusion.p_sample(originals, t)[1], k, (2, 3)))
            images = torch.cat(parts)
        _, z, shift, _ = model(images)
        z = z / (z.norm(dim=1, keepdim=True) + 1e-8)
        sim = z @ z.t()
        loss = (nt_xent_neg(sim) if dia else nt_xent(sim)) + F.cross_entropy(shift, labels)
        model.zero_grad(set_to_none=True)
        loss.backward()
        lars_step()

    return step, 96 if dia else 64


WORKLOADS = ["encoder-train-cifar32", "encoder-eval-cifar32", "encoder-train-imagenet64",
             "encoder-train-imagenet224", "encoder-eval-imagenet224", "unet-dissolve-32",
             "dissolve-224", "dia-train-cifar32", "csi-score"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", nargs="?")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    a = ap.parse_args()
    global DEV
    DEV = torch.device(a.device)
    torch.set_num_threads(a.threads)
    names = [a.workload] if a.workload else WORKLOADS
    if not a.json:
        print(f"{'workload':<26} {'images/s':>10} {'median s':>10} {'runs':>5} {'peak RSS MiB':>14}   (torch {torch.__version__}, threads {a.threads})")
    for name in names:
        step, images = workload(name)
        for _ in range(a.warmup):
            step()
        sync()
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if a.json:
            print(json.dumps({"workload": name, "images_per_s": images / med, "median_s": med, "runs": a.runs,
                              "peak_rss_mib": peak, "impl": f"torch {torch.__version__}", "isa": ISA,
                              "device": str(DEV) if DEV.type == "cpu" else torch.cuda.get_device_name(DEV)}))
        else:
            print(f"{name:<26} {images / med:>10.1f} {med:>10.4f} {a.runs:>5} {peak:>14.0f}")


if __name__ == "__main__":
    main()

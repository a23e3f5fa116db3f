"""CNN, training (single process, real 2-process DDP, kill and resume) and Grad-CAM.
The classifier on real quenched configurations: tests/test_learn_stages.py."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam

from glassdist.learn.gradcam import grad_cam
from glassdist.learn.model import GlassCNN, InputNorm
from glassdist.learn.train import TrainConfig, epoch_generator, global_batches, translate

VENV = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")

# a training run as its own process: single, or one rank of a torchrun job
SCRIPT = """
import sys, time, numpy as np, torch
from hpc.ddp import ddp_context, is_worker, worker
from glassdist.learn.model import GlassCNN
from glassdist.learn.train import TrainConfig, rank_and_world, train
torch.set_num_threads(1)
data, out, checkpoint, epochs, pause = sys.argv[1:6]
d = {k: torch.from_numpy(v) for k, v in np.load(data).items()}

def main():
    with ddp_context() as device:
        torch.manual_seed(0)
        model = GlassCNN(2, 12, [4, 6, 6], [5, 3, 3], 16, 0.5)
        train(model, (d["x"], d["y"]), (d["xv"], d["yv"]),
              TrainConfig(int(epochs), 5, 3e-3, 1e-3, 7, augment=True),
              checkpoint=checkpoint if checkpoint != "-" else None, device=device,
              on_epoch=lambda epoch, history: time.sleep(float(pause)))
        if rank_and_world()[0] == 0:
            torch.save(model.state_dict(), out)

worker(main) if is_worker() else main()
"""


@pytest.fixture(scope="module")
def random_data(tmp_path_factory):
    """21 training images (batches of 5 leave a last batch of 1: one DDP rank gets none)."""
    path = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 21)
    x = (rng.normal(size=(21, 1, 12, 12)) + y[:, None, None, None]).astype(np.float32)
    np.savez(path / "data.npz", x=x, y=y, xv=x[:6], yv=y[:6])
    (path / "train.py").write_text(SCRIPT)
    return path


def run_script(path, out, checkpoint="-", epochs=3, pause=0.0, ddp=False):
    launcher = [str(VENV / "torchrun"), "--standalone", "--nproc_per_node", "2"] if ddp else [sys.executable]
    return launcher + [
        str(path / "train.py"),
        str(path / "data.npz"),
        str(out),
        str(checkpoint),
        str(epochs),
        str(pause),
    ]


def load_weights(path):
    return torch.load(path, weights_only=True)


def test_ddp_two_processes_equal_one(random_data):
    one, two = random_data / "one.pt", random_data / "two.pt"
    subprocess.run(run_script(random_data, one), check=True, env=ENV, timeout=120)
    subprocess.run(run_script(random_data, two, ddp=True), check=True, env=ENV, timeout=120, capture_output=True)
    a, b = load_weights(one), load_weights(two)
    start = GlassCNN(2, 12, [4, 6, 6], [5, 3, 3], 16, 0.5)  # trained weights really moved
    assert not torch.allclose(a["output.weight"], start.state_dict()["output.weight"])
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key


def test_killed_training_resumes_to_the_same_weights(random_data):
    ref, resumed, ckpt = random_data / "ref.pt", random_data / "resumed.pt", random_data / "ckpt.pt"
    subprocess.run(run_script(random_data, ref, epochs=4), check=True, env=ENV, timeout=120)
    proc = subprocess.Popen(run_script(random_data, resumed, ckpt, epochs=4, pause=30), env=ENV)
    try:
        deadline = time.monotonic() + 60
        while not ckpt.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # well inside the 30 s pause after epoch 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not resumed.exists()
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    subprocess.run(run_script(random_data, resumed, ckpt, epochs=4), check=True, env=ENV, timeout=120)
    a, b = load_weights(ref), load_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(torch.load(ckpt, weights_only=True)["history"][0]["val_loss"]) == 4


def test_stop_inside_an_epoch_abandons_it_and_resumes_exactly(random_data, tmp_path):
    """A stop request in the middle of a long epoch ends train() within STOP_POLL batches, the
    checkpoint keeps the epoch before, and the rerun gives the uninterrupted weights."""
    from glassdist.learn.train import STOP_POLL, train

    d = {k: torch.from_numpy(v) for k, v in np.load(random_data / "data.npz").items()}
    x, y = d["x"].repeat(4, 1, 1, 1), d["y"].repeat(4)  # 84 images: 17 batches of 5 per epoch
    config = TrainConfig(3, 5, 3e-3, 1e-3, 7, augment=True)

    def run(checkpoint, stop=lambda: False):
        torch.manual_seed(0)
        model = GlassCNN(2, 12, [4, 6, 6], [5, 3, 3], 16, 0.5)
        history = train(model, (x, y), (d["xv"], d["yv"]), config, checkpoint=checkpoint, stop=stop)
        return model.state_dict(), history

    reference, _ = run(None)
    polls = []
    stop_in_epoch_2 = lambda: polls.append(1) or len(polls) > 3  # noqa: E731  (epoch 1: 2 polls + 1 after it)
    _, history = run(tmp_path / "ckpt.pt", stop_in_epoch_2)
    assert len(history["train_loss"]) == 1 and STOP_POLL < 17
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["epoch"] == 1
    resumed, history = run(tmp_path / "ckpt.pt")
    assert len(history["train_loss"]) == 3 and all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_global_batches_cover_the_set_once():
    batches = global_batches(23, 5, epoch_generator(1, 2))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert sorted(torch.cat(batches).tolist()) == list(range(23))
    assert torch.equal(torch.cat(batches), torch.cat(global_batches(23, 5, epoch_generator(1, 2))))


@pytest.mark.parametrize("head", ["dense", "gap"])
@pytest.mark.parametrize("dim", [2, 3])
def test_grad_cam_equals_captum(dim, head):
    torch.manual_seed(dim)
    model = GlassCNN(dim, 8, [3, 4, 5], [5, 3, 3], 8, 0.5, head=head)
    x = torch.rand((6, 1) + (8,) * dim)
    for target in (0, 1, torch.tensor([0, 1, 1, 0, 1, 0])):
        ours = grad_cam(model, x, target)
        theirs = LayerGradCam(model, model.features[-1]).attribute(x, target=target, relu_attributions=True)
        assert ours.shape == (6,) + (8,) * dim
        assert torch.allclose(ours, theirs[:, 0], rtol=1e-5, atol=1e-8)
    assert grad_cam(model, x, 0).abs().sum() + grad_cam(model, x, 1).abs().sum() > 0


@pytest.mark.parametrize("mode", ["image", "dataset", "standard"])
def test_input_norm(mode):
    images = torch.rand(10, 1, 6, 6) * 3 + 2
    norm = InputNorm(mode)
    norm.fit(images)
    out = norm(images)
    if mode == "image":
        assert torch.allclose(out.amin((1, 2, 3)), torch.zeros(10)) and torch.allclose(
            out.amax((1, 2, 3)), torch.ones(10)
        )
    elif mode == "dataset":
        assert out.min() == 0 and out.max() == 1
    else:
        assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-5


def test_translate_rolls_each_image():
    images = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    out = translate(images, torch.tensor([[1, 0], [2, 3]]))
    assert torch.equal(out[0, 0], torch.roll(images[0, 0], 1, 0))
    assert torch.equal(out[1, 0], torch.roll(images[1, 0], (2, 3), (0, 1)))


def test_model_sizes_and_3d():
    model = GlassCNN(3, 6, [2, 3, 4], [3, 3, 1], 5, 0.5)
    x = torch.rand(2, 1, 6, 6, 6)
    assert model(x).shape == (2, 2)
    assert model.features(x).shape == (2, 4, 6, 6, 6)
    assert grad_cam(model, x, torch.tensor([0, 1])).shape == (2, 6, 6, 6)


@pytest.mark.parametrize("dim", [2, 3])
def test_gap_head_is_the_same_network_for_every_grid(dim):
    """'gap': the first dense layer sees the channel means, so one set of weights takes any
    grid; the mean over a periodically replicated image equals the mean over the image."""
    sizes = {
        sum(p.numel() for p in GlassCNN(dim, g, [2, 3, 4], [3, 3, 1], 5, 0.5, head="gap").parameters())
        for g in (6, 12, 30)
    }
    assert len(sizes) == 1
    dense = sum(p.numel() for p in GlassCNN(dim, 6, [2, 3, 4], [3, 3, 1], 5, 0.5).parameters())
    assert dense - sizes.pop() == 4 * 5 * (6**dim - 1)  # (channels * grid^dim - channels) * hidden
    model = GlassCNN(dim, 6, [2, 3, 4], [3, 3, 1], 5, 0.5, head="gap").eval()
    x = torch.rand((2, 1) + (6,) * dim)
    tiled = x.repeat((1, 1) + (2,) * dim)
    assert torch.allclose(model(x), model(tiled), atol=1e-6)
    with pytest.raises(ValueError, match="head"):
        GlassCNN(dim, 6, [2, 3, 4], [3, 3, 1], 5, 0.5, head="flat")


PAPER_SEQUENCE = ["InputNorm", "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU", "Linear", "Dropout", "Linear"]


@pytest.mark.parametrize("preset", ["paper-kam", "paper-abm", "demo-kam", "demo-abm"])
def test_layer_sequence_of_the_presets(preset):
    """Fig. S1 / Supp. I B: three Conv-ReLU, then Dense, Dropout, Dense with no ReLU between the
    dense layers. The paper presets build exactly that; the demo presets add the ReLU after the
    first dense layer (documented in the preset), and nothing else differs."""
    from glassdist.learn.model import build_model, layer_sequence
    from glassdist.spec import loads, preset_text

    spec = loads(preset_text(preset))
    model = build_model(spec)
    expected = list(PAPER_SEQUENCE)
    if preset.startswith("demo"):
        assert spec.model.hidden_activation == "relu"
        expected.insert(expected.index("Linear") + 1, "ReLU")
    assert layer_sequence(model) == expected
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert all(c.padding_mode == "circular" and c.stride == (1, 1) for c in convs)
    assert model.dropout.p == 0.5


def test_linear_head_gives_input_independent_gradcam_weights():
    """Without the ReLU between the dense layers y^C is linear in the last feature maps A, so the
    Grad-CAM weights alpha_m (eq. 3) are the same for every input; with it they are not."""
    for activation, same in (("none", True), ("relu", False)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = GlassCNN(2, 8, [3, 4, 5], [5, 3, 3], 8, 0.5, hidden_activation=activation).eval()
        weights = []
        for seed in range(4):  # large signed inputs: the hidden units' ReLU pattern depends on them
            x = 10 * torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
            a = model.features(model.norm(x)).detach().requires_grad_(True)
            model.output(model.dropout(model.hidden(a)))[0, 1].backward()
            weights.append(a.grad.mean(dim=(2, 3)))
        equal = [torch.allclose(weights[0], w, rtol=1e-5, atol=1e-7) for w in weights[1:]]
        assert all(equal) if same else not all(equal)

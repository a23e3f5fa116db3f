"""CNN, training (single process, real 2-process DDP, kill and resume) and Grad-CAM."""

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

from glassdist import spec as specmod
from glassdist.learn.gradcam import grad_cam
from glassdist.learn.model import GlassCNN, build_model
from glassdist.learn.train import TrainConfig, evaluate, global_batches, epoch_generator, train
from glassdist.md.quench import quench
from glassdist.structure.grid import gridize, normalise_image, to_particles

VENV = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")

# a training run as its own process: single, or one rank of a torchrun job
SCRIPT = """
import sys, time, numpy as np, torch
from hpc.ddp import ddp_context
from glassdist.learn.model import GlassCNN
from glassdist.learn.train import TrainConfig, rank_and_world, train
torch.set_num_threads(1)
data, out, checkpoint, epochs, pause = sys.argv[1:6]
d = {k: torch.from_numpy(v) for k, v in np.load(data).items()}
with ddp_context() as device:
    torch.manual_seed(0)
    model = GlassCNN(2, 12, [4, 6, 6], [5, 3, 3], 16, 0.5)
    train(model, (d["x"], d["y"]), (d["xv"], d["yv"]), TrainConfig(int(epochs), 5, 3e-3, 1e-3, 7),
          checkpoint=checkpoint if checkpoint != "-" else None, device=device,
          on_epoch=lambda epoch, history: time.sleep(float(pause)))
    if rank_and_world()[0] == 0:
        torch.save(model.state_dict(), out)
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
    return launcher + [str(path / "train.py"), str(path / "data.npz"), str(out), str(checkpoint),
                       str(epochs), str(pause)]


def load_weights(path):
    return torch.load(path, weights_only=True)


def test_ddp_two_processes_equal_one(random_data):
    one, two = random_data / "one.pt", random_data / "two.pt"
    subprocess.run(run_script(random_data, one), check=True, env=ENV, timeout=120)
    subprocess.run(run_script(random_data, two, ddp=True), check=True, env=ENV, timeout=120,
                   capture_output=True)
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
    assert len(torch.load(ckpt, weights_only=True)["history"]["val_loss"]) == 4


def test_global_batches_cover_the_set_once():
    batches = global_batches(23, 5, epoch_generator(1, 2))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert sorted(torch.cat(batches).tolist()) == list(range(23))
    assert torch.equal(torch.cat(batches), torch.cat(global_batches(23, 5, epoch_generator(1, 2))))


def tiny_spec(**over):
    sets = ["system.n_particles=200", "system.counts=[130,70]", "quench.equilibration_time=2.0",
            "quench.snapshot_replicas=0", "quench.replicas=16", "quench.split=[10,2,4]",
            "dataset.grid=20", "model.channels=[4,8,8]", "model.hidden=16",
            "train.epochs=12", "train.batch_size=4", "train.lr=2e-3"]
    sets += [f"{k}={v}" for k, v in over.items()]
    return specmod.loads(specmod.apply_overrides(specmod.preset_text("demo-kam"), sets))


@pytest.fixture(scope="module")
def quenched():
    """Real KAM quenches (N = 200): positions (R, 2, N, 2) [liquid, glass] and images."""
    spec = tiny_spec()
    positions = np.stack([quench(spec, np.random.default_rng(r)).positions
                          for r in range(spec.quench.replicas)])
    sigma_ii = np.diag(spec.sigma)
    images = np.array([[normalise_image(gridize(p, spec.types, spec.box_length, spec.dataset.grid,
                                                sigma_ii)) for p in pair] for pair in positions])
    return spec, positions, torch.tensor(images, dtype=torch.float32)[:, :, None]


def split(images, replicas):
    x = images[replicas].reshape(-1, 1, *images.shape[-2:])
    y = torch.tensor([0, 1] * len(replicas))
    return x, y


def test_cnn_separates_real_glass_and_liquid(quenched):
    spec, positions, images = quenched
    model = build_model(spec)
    train_set, val_set, test_set = (split(images, np.flatnonzero(spec.split_of() == s)) for s in range(3))
    history = train(model, train_set, val_set, TrainConfig.from_spec(spec))
    assert history["train_loss"][-1] < history["train_loss"][0]
    result = evaluate(model, *test_set)
    assert result["class_accuracy"] == [1.0, 1.0], result

    # Grad-CAM equals captum's LayerGradCam on the last conv+ReLU, for both targets
    x = test_set[0]
    for target in (0, 1):
        ours = grad_cam(model, x, target)
        theirs = LayerGradCam(model, model.features[-1]).attribute(x, target=target, relu_attributions=True)
        assert ours.shape == x.shape[:1] + x.shape[2:]
        assert torch.allclose(ours, theirs[:, 0], rtol=1e-5, atol=1e-7)
    cam = grad_cam(model, x, 1)
    assert cam.abs().sum() > 0
    # back to particles: a redistribution of the map
    gamma = to_particles(cam[1].numpy().astype(float), positions[12, 1], spec.types, spec.box_length,
                         np.diag(spec.sigma))
    assert np.isclose(gamma.sum(), cam[1].sum().item(), rtol=1e-5)


def test_model_sizes_and_3d():
    model = GlassCNN(3, 6, [2, 3, 4], [3, 3, 1], 5, 0.5)
    x = torch.rand(2, 1, 6, 6, 6)
    assert model(x).shape == (2, 2)
    assert model.features(x).shape == (2, 4, 6, 6, 6)
    assert grad_cam(model, x, torch.tensor([0, 1])).shape == (2, 6, 6, 6)

"""A CNN trained at one N explains configurations at another (model.head = "gap"), and the
check that refuses a model from a campaign whose images differ (glassdist.learn.compat)."""

import numpy as np
import pytest
import torch

from glassdist import spec as specmod
from glassdist.errors import UsageError
from glassdist.learn.compat import check_transfer, load_transferred
from glassdist.learn.gradcam import grad_cam
from glassdist.learn.model import build_model
from glassdist.learn.train import TrainConfig, evaluate, train
from glassdist.md.quench import quench
from glassdist.structure.grid import gridize, to_particles

# real LAMMPS quenches, fast (2 tau at T = 4, cooling rate 0.5, liquid at T_L = 3), and a
# small gap network trained for 450 steps (12 images)
SMALL = [
    "system.n_particles=500",
    "system.counts=[325,175]",
    "dataset.grid=32",
    'model.head="gap"',
    "model.channels=[4,8,8]",
    "model.hidden=16",
    "model.dropout=0.0",
    "quench.replicas=10",
    "quench.split=[6,2,2]",
    "quench.cooling_rate=0.5",
    "quench.T_liquid=3.0",
    "quench.equilibration_time=2.0",
    "quench.thermo_points=4",
    "quench.snapshot_replicas=0",
    "train.epochs=150",
    "train.batch_size=4",
    "train.lr=1e-2",
]
BIG = ["system.n_particles=4500", "system.counts=[2925,1575]", "dataset.grid=96"]


def kam(*sets):
    return specmod.loads(specmod.apply_overrides(specmod.preset_text("demo-kam"), [*SMALL, *sets]))


def images(spec, positions, types=None):
    """Density images (B, 1, grid, ...) float32 of configurations (B, N, dim); types (N,)
    default to the spec's (species-major order, as LAMMPS writes them)."""
    types = spec.types if types is None else types
    return torch.from_numpy(
        np.stack(
            [
                gridize(x, types, spec.box_length, spec.dataset.grid, np.diag(spec.sigma), spec.dataset.kernel_cutoff)
                for x in positions
            ]
        )[:, None].astype(np.float32)
    )


def gamma(model, spec, positions, types=None, target=1):
    """Grad-CAM of one configuration (N, dim) back on its particles: Gamma (N,), the map, p(glass)."""
    types = spec.types if types is None else types
    x = images(spec, positions[None], types)
    cam = grad_cam(model, x, target)[0].numpy().astype(np.float64)
    with torch.no_grad():
        p_glass = torch.softmax(model(x), 1)[0, 1].item()
    return (
        to_particles(cam, positions, types, spec.box_length, np.diag(spec.sigma), spec.dataset.kernel_cutoff),
        cam,
        p_glass,
    )


@pytest.fixture(scope="module")
def trained():
    """A gap model trained on real N = 500 KAM quenches; the spec and the test quenches."""
    torch.set_num_threads(1)
    spec = kam()
    configs = np.stack([quench(spec, np.random.default_rng(seed)).positions for seed in range(10)])
    x = images(spec, configs.reshape(-1, *configs.shape[2:]))  # (20, 1, 32, 32)
    y = torch.tensor([0, 1] * 10)
    model = build_model(spec)
    train(model, (x[:12], y[:12]), (x[12:16], y[12:16]), TrainConfig.from_spec(spec))
    assert evaluate(model, x[16:], y[16:])["accuracy"] == 1.0
    return spec, model, configs[8:]


@pytest.mark.slow
def test_gap_model_trained_at_500_explains_4500(trained):
    spec, model, _ = trained
    big = kam(*BIG)
    check_transfer(spec, big)
    config = quench(big, np.random.default_rng(123)).positions  # (2, 4500, 2): liquid, glass
    for cls in (0, 1):
        g, cam, p_glass = gamma(model, big, config[cls])
        assert g.shape == (4500,) and np.isfinite(g).all() and (g >= 0).all()
        assert g.sum() == pytest.approx(cam.sum(), rel=1e-9)  # M^-1 redistributes L
        assert (p_glass > 0.5) == bool(cls)  # classified as at N = 500
    assert g.std() > 0


@pytest.mark.slow
def test_gamma_of_a_tiled_box_is_gamma_of_each_copy(trained):
    """Tiling the box 3 x 3 tiles the image (grid 96 = 3 x 32, the same a and L / grid); the
    periodic convolutions tile the feature maps, the pooled features and the logits are
    unchanged. Grad-CAM's alpha (eq. 3) is the pixel mean of dy/dA and dy/dA carries the 1/Z of
    the pooling, so the map L^C, and Gamma, of each copy is the original's divided by 9."""
    spec, model, test = trained
    big = kam(*BIG)
    x = test[0, 1]  # a glass, (500, 2)
    shifts = np.array([(i, j) for i in range(3) for j in range(3)]) * spec.box_length
    tiled = (x[None] + shifts[:, None]).reshape(-1, 2)
    g_small, _, p_small = gamma(model, spec, x)
    g_big, _, p_big = gamma(model, big, tiled, np.tile(spec.types, 9))
    assert p_big == pytest.approx(p_small, abs=1e-5)
    assert g_small.std() > 0
    np.testing.assert_allclose(
        g_big.reshape(9, 500), np.broadcast_to(g_small / 9, (9, 500)), rtol=1e-4, atol=1e-6 * g_small.max()
    )


def test_check_transfer_names_what_differs():
    small = kam()
    check_transfer(small, kam(*BIG))
    cases = {
        "model.head": (kam('model.head="dense"'), kam(*BIG)),
        "system.density": (small, kam("system.density=1.1")),
        "system.epsilon": (small, kam("system.epsilon=[[1.0,1.5],[1.5,0.6]]")),
        "system.counts / n_particles": (small, kam("system.counts=[300,200]")),
        "set dataset.grid = 96": (small, kam(*BIG[:2])),
        "system.dim": (small, kam("system.dim=3", "system.n_particles=600", "system.counts=[390,210]")),
        "no grid gives": (small, kam("system.n_particles=520", "system.counts=[338,182]")),
    }
    for what, (model_spec, target) in cases.items():
        with pytest.raises(UsageError, match=what.replace(".", r"\.").replace("/", "/")) as info:
            check_transfer(model_spec, target)
        assert info.value.exit_code == 2
    with pytest.raises(UsageError) as info:
        check_transfer(kam('model.head="dense"'), kam(*BIG, "system.density=1.1"))
    assert "model.head" in str(info.value) and "system.density" in str(info.value)


def test_load_transferred_model(tmp_path):
    small = kam()
    other = tmp_path / "other"
    (other / "train").mkdir(parents=True)
    (other / "campaign.toml").write_text(specmod.apply_overrides(specmod.preset_text("demo-kam"), SMALL))
    model = build_model(small)
    torch.save(model.state_dict(), other / "train" / "model.pt")
    loaded = load_transferred(other / "train" / "model.pt", kam(*BIG))
    x = torch.rand(2, 1, 96, 96)
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    with pytest.raises(UsageError, match="system.density"):
        load_transferred(other / "train" / "model.pt", kam("system.density=1.1"))
    with pytest.raises(UsageError, match="does not exist"):
        load_transferred(other / "model.pt", small)

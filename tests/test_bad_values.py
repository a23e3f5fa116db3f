"""Input files never crash glassdist (issue 11 item 5). The cases come from the schemas
themselves (glassdist.spec.SCHEMA; hpc.profile.SCHEMA and STAGE_KEYS): every key x every kind
of bad value its type admits, written into an otherwise valid file and given to the real CLI.
A rejected value must give exit 2, name the key, write nothing; a value the table below accepts
must run (the commands that read the file without MD: status, submit --dry-run)."""

from __future__ import annotations

import io
import math
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from glassdist import spec as specmod
from glassdist.cli import main
from hpc import profile as profmod
from hpc.schema import BOOL, INT, INTS, MATRIX, NUMBER, NUMBER_TABLE, NUMBERS, STRING, STRINGS, Key, toml_value

from .conftest import TINY, TINY_COUNTS, glassdist, mpi_glassdist

PRESET = "demo-kam"
PROFILE = "localhost-slurm"


def bad_values(key: Key, value) -> dict:
    """{kind: value} of every kind of bad value a key of this type admits; ``value`` is the
    key's valid value in the base file (the preset or shipped profile)."""
    t = key.type
    if t.alternative:  # 'word' or a value of another type
        return {"another word": "bogus"} | bad_values(Key(t.alternative, check=key.check), value)
    if t is NUMBER_TABLE:
        base = value if isinstance(value, dict) else dict.fromkeys(specmod.XI_KEYS, 1.0)
        first = next(iter(base))
        return {
            "not a table": 1.0,
            "wrong entry type": {**base, first: "x"},
            "missing key": {k: v for k, v in base.items() if k != first},
            "unknown key": {**base, "bogus": 1.0},
            **{
                f"{kind} entries": dict.fromkeys(base, x)
                for kind, x in (
                    ("negative", -1.0),
                    ("zero", 0.0),
                    ("huge", 1e300),
                    ("inf", math.inf),
                    ("nan", math.nan),
                )
            },
        }
    if t in (INT, NUMBER):
        out = {
            "string": "x",
            "bool": True,
            "negative": -1,
            "zero": 0,
            "beyond 64 bits": 2**63,
            "huge": 2**62 if t is INT else 1e300,
        }
        return out | ({"fraction": 1.5} if t is INT else {"inf": math.inf, "-inf": -math.inf, "nan": math.nan})
    if t is STRING:
        return {"number": 1} | ({"not an option": "bogus"} if key.check else {})
    if t is BOOL:
        return {"number": 1, "string": "yes"}
    out = {
        "not a list": "A" if t is STRINGS else 1.0,
        "empty": [],
        "wrong entry type": {NUMBERS: ["x"], INTS: [1.5], STRINGS: [1], MATRIX: [1.0]}[t],
    }
    if value:
        out |= {"shorter": value[:-1], "longer (repeats the last entry)": value + value[-1:]}
    if t is MATRIX and value:
        out["narrower"] = [row[:-1] for row in value]
    if t is STRINGS:
        return out
    shape = value or ([[1.0]] if t is MATRIX else [1])

    def every(x):  # the same shape with every entry x (a matrix stays symmetric)
        return [[x] * len(r) for r in shape] if t is MATRIX else [x] * len(shape)

    out |= {
        "negative entries": every(-1),
        "zero entries": every(0),
        "entries beyond 64 bits": every(2**63),
        "huge entries": every(2**62 if t is INTS else 1e300),
    }
    if t is not INTS:
        out |= {"inf entries": every(math.inf), "nan entries": every(math.nan)}
    return out


# (key, kind) -> why the value is legitimate. Every other case must be rejected with exit 2.
CAMPAIGN_ACCEPTS = {
    ("campaign.seed", "zero"): "0 is a seed",
    **{(k, "huge"): "any non-negative 64-bit integer is a seed" for k in ("campaign.seed", "train.seed")},
    ("quench.equilibration_time", "zero"): "no equilibration before the cooling",
    ("quench.snapshot_replicas", "zero"): "no cooling snapshots",
    ("train.weight_decay", "zero"): "no regularisation",
    ("model.dropout", "zero"): "no dropout",
    ("inherent.ftol", "zero"): "a tolerance of 0 leaves the other stopping criterion",
    ("inherent.fit_upper_T", "zero"): "0 = quench.T_liquid (documented)",
    ("propensity.main_samples", "zero"): "0 = the main Delta from all runs (documented)",
    ("propensity.until_delta", "zero"): "0 = every run lasts propensity.steps (documented)",
    ("quench.hold_liquid", "zero"): "0 = no liquid hold (documented)",
    ("analyze.xi", "zero entries"): "xi = 0: no coarse-graining",
    ("analyze.agreement_threshold", "zero"): "0: any non-negative mean agreement counts as agreement",
    **{
        (k, "empty"): "[] is documented (no snapshots / use sigma / none flipped)"
        for k in ("quench.snapshot_temperatures", "system.contact_sigma", "analyze.one_minus")
    },
    **{
        (k, "shorter"): "a list of any non-empty length"
        for k in (
            "quench.snapshot_temperatures",
            "propensity.temperatures",
            "propensity.t_star_multiples",
            "analyze.deltas",
            "analyze.xi_grid",
            "analyze.one_minus",
        )
    },
}
PROFILE_ACCEPTS = {
    ("slurm.signal_seconds", "zero"): "no SIGTERM margin before the time limit",
    **{
        (k, "huge"): "a count the batch script passes to SLURM as is (sbatch judges it)"
        for k in ("slurm.requeue_limit", "node.cores", "node.gpus", "dask.jobs", "stages.quench.tasks_per_node")
    },
}


def _cli(*args) -> tuple[int, str]:
    """The glassdist CLI in this process: (exit code, stdout + stderr)."""
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def _cases(schema: dict[str, dict[str, Key]], base: dict, accepts: dict):
    cases = [
        (f"{s}.{k}", kind, v)
        for s, keys in schema.items()
        for k, key in keys.items()
        for kind, v in bad_values(key, base[s][k]).items()
        if v != base[s][k]
    ]  # a change
    assert set(accepts) <= {(name, kind) for name, kind, _ in cases}  # the table names real cases
    return [pytest.param(name, kind, v, id=f"{name}-{kind}") for name, kind, v in cases]


BASE = specmod.loads(specmod.preset_text(PRESET)).raw


@pytest.mark.parametrize("name,kind,value", _cases(specmod.SCHEMA, BASE, CAMPAIGN_ACCEPTS))
def test_bad_campaign_value(tmp_path, name, kind, value):
    override = f"{name}={toml_value(value)}"
    d = tmp_path / "c"
    code, err = _cli("init", d, "--preset", PRESET, "--set", override)
    if (name, kind) in CAMPAIGN_ACCEPTS:
        assert code == 0, err
        for command in (("status", d), ("submit", d, "--profile", PROFILE, "--dry-run")):
            code, out = _cli(*command)
            assert code == 0, out
        return
    assert code == 2 and name in err and "Fix:" in err, err  # the key itself, or named as a cause
    assert not d.exists()
    # The same value written by hand (no `init` to catch it): a stage refuses it before writing.
    d.mkdir()
    (d / "campaign.toml").write_text(specmod.apply_overrides(specmod.preset_text(PRESET), [override]))
    code, err = _cli("quench", d)
    assert code == 2 and name in err and not (d / "store.zarr").exists(), err
    assert sorted(p.name for p in d.iterdir()) == ["campaign.toml"]


PROFILE_SCHEMA = profmod.SCHEMA | {"stages.quench": profmod.STAGE_KEYS}
PROFILE_BASE = tomllib.loads((profmod.PROFILE_DIR / f"{PROFILE}.toml").read_text())
PROFILE_VALUES = {s: PROFILE_BASE[s] for s in profmod.SCHEMA} | {
    "stages.quench": {k: PROFILE_BASE["stages"]["quench"].get(k, key.default) for k, key in profmod.STAGE_KEYS.items()}
}


def _profile_text(data: dict) -> str:
    """A profile dict as TOML (flat sections of scalars and lists; stages as [stages.NAME])."""
    tables = {s: v for s, v in data.items() if s != "stages"} | {f"stages.{n}": v for n, v in data["stages"].items()}
    return "".join(f"[{s}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in t.items()) for s, t in tables.items())


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    d = tmp_path_factory.mktemp("profiles") / "c"
    assert _cli("init", d, "--preset", PRESET)[0] == 0
    return d


@pytest.mark.parametrize("name,kind,value", _cases(PROFILE_SCHEMA, PROFILE_VALUES, PROFILE_ACCEPTS))
def test_bad_profile_value(tmp_path, campaign, name, kind, value):
    section, key = name.rsplit(".", 1)
    data = tomllib.loads((profmod.PROFILE_DIR / f"{PROFILE}.toml").read_text())
    (data["stages"]["quench"] if section == "stages.quench" else data[section])[key] = value
    path = tmp_path / "p.toml"
    path.write_text(_profile_text(data))
    code, out = _cli("submit", campaign, "--profile", path, "--dry-run")
    if (name, kind) in PROFILE_ACCEPTS:
        assert code == 0 and "sbatch" in out, out
    else:
        assert code == 2 and "profile key '" in out and name in out and "Fix:" in out, out
    assert not (campaign / "slurm").exists()


def test_profile_writer_round_trips():
    """The test's TOML writer keeps the shipped profile as it is (so each case changes one key)."""
    assert tomllib.loads(_profile_text(PROFILE_BASE)) == PROFILE_BASE


@pytest.mark.parametrize("content", [b"\xff\xfe not UTF-8", b"[quench\nT_start = 4.0\n"])
def test_unreadable_files_are_refused(tmp_path, campaign, content):
    d = tmp_path / "c"
    d.mkdir()
    (d / "campaign.toml").write_bytes(content)
    code, err = _cli("quench", d)
    assert code == 2 and "campaign.toml" in err and "Fix:" in err, err
    assert sorted(p.name for p in d.iterdir()) == ["campaign.toml"]
    (tmp_path / "p.toml").write_bytes(content)
    code, out = _cli("submit", campaign, "--profile", tmp_path / "p.toml", "--dry-run")
    assert code == 2 and "p.toml" in out and "Fix:" in out, out


# ---- through the console script and mpiexec: the case and a derived overflow -----------
def _hand_written(d: Path, override: str) -> Path:
    d.mkdir()
    (d / "campaign.toml").write_text(specmod.apply_overrides(specmod.preset_text(PRESET), [override]))
    return d


@pytest.mark.parametrize(
    "override,key", [("quench.T_start=inf", "quench.T_start"), ("quench.cooling_rate=1e-12", "quench.cooling_rate")]
)
def test_console_script_refuses_without_traceback(tmp_path, override, key):
    d = _hand_written(tmp_path / "c", override)
    res = glassdist("quench", d, check=False)
    assert res.returncode == 2 and f"'{key}'" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert sorted(p.name for p in d.iterdir()) == ["campaign.toml"]


def test_every_mpi_rank_refuses(tmp_path):
    d = _hand_written(tmp_path / "c", "quench.T_start=inf")
    res = mpi_glassdist(2, "quench", d, check=False, timeout=120)
    assert res.returncode == 2 and "'quench.T_start'" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in d.iterdir()) == ["campaign.toml"]


def test_accepted_values_run_a_quench(tmp_path):
    """The accepted quench-section values of the table, together, in a real (tiny) quench."""
    accepted = [
        "campaign.seed=4611686018427387904",
        "quench.equilibration_time=0",
        "quench.snapshot_replicas=0",
        "quench.snapshot_temperatures=[]",
    ]
    assert all(
        (s.split("=")[0], kind) in CAMPAIGN_ACCEPTS for s, kind in zip(accepted, ("huge", "zero", "zero", "empty"))
    )
    sets = [*TINY, TINY_COUNTS["kam"], "quench.replicas=3", "quench.split=[1,1,1]", *accepted]
    d = tmp_path / "c"
    assert _cli("init", d, "--preset", PRESET, *[a for x in sets for a in ("--set", x)])[0] == 0
    code, out = _cli("quench", d)
    assert code == 0 and "3/3 done" in out, out

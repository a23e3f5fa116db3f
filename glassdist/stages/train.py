"""Stage `train`: the glass/liquid CNN (Sec. III A, Supp. I B-C) on the stored images, as a
training ensemble of K = train.ensemble members and a label-shuffled control.

Tasks of ledger ``train``: task k < K = member k (seed ``glassdist.learn.ensemble.member_seed(
train.seed, k)``; member 0 uses train.seed: K = 1 trains the single network of earlier
versions), task K = the control (train.shuffled_control: the same network and images, training
and validation labels permuted by a generator seeded with member_seed(train.seed, K); its test
accuracy is against the true labels, so about 0.5). Every member reads the same split. With
train.members_together (true, or 'auto' on a GPU) and K > 1 the tasks still to do are trained as one grouped
network (glassdist.learn.ensemble, the same numbers as one by one up to float summation order),
else one after another (K = 1: member 0 is bitwise the single network of earlier versions): on a
CPU by train.member_processes processes at once ('auto': one per core, at most one per network;
each trains its share one after another with cores / processes torch threads, and this process
writes each network's results as it arrives), otherwise in this process.

One process, or data-parallel: ``glassdist train DIR --nproc P`` on one node (P processes,
file rendezvous, loopback only: hpc.ddp.spawn), or under ``torchrun`` on several nodes
(``torchrun --nnodes N --nproc_per_node P ... -m glassdist train DIR``); one process per
GPU, gloo on CPU; the grouped network is data-parallel as a single one is. Every epoch rank 0
rewrites the checkpoint ``DIR/train/checkpoint-<hash>-<inputs>-tasks-<ids>.pt`` of the tasks in
training (hashes of the sections the training depends on and of the images it read: a changed
campaign or changed images never resume a stale run); a killed or SIGTERMed run resumes there,
and a task whose done-mark is set is never retrained.
Results: ``DIR/train/member-<k>.pt`` and ``DIR/train/shuffled.pt`` (state_dicts, read with
weights_only=True), ``DIR/train/history.png``, and in the store ``train/history/<key>`` (K,
epochs), ``train/test_accuracy`` (K, 2) [member, liquid/glass] (Table II),
``train/consensus_accuracy`` (2,) (argmax of the member-mean softmax), ``train/test_counts``
(2,) (test configurations per class), ``train/shuffled_accuracy`` (2,) and
``train/shuffled_history/<key>`` (epochs,); attributes of group ``train``: ``model_card`` and
``test`` (lists, one per member), ``shuffled`` (the control's card and test).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import signal
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from hpc import ddp, signals

from ..errors import GlassdistError, UsageError
from ..learn.ensemble import (
    class_probabilities,
    consensus_accuracy,
    member_seed,
    shuffled_labels,
    split_members,
    stack_members,
)
from ..learn.model import build_model
from ..learn.train import TrainConfig, evaluate, model_card, rank_and_world, save_checkpoint, train_members
from ..spec import AUTO, Spec, load
from ..constants import HISTORY_KEYS, SPLITS
from ..store import Store
from ..pipeline import STAGES
from .common import on_root

NAME = "train"


def load_split(store: Store, spec: Spec, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (2 n, 1, grid, ...) and labels (2 n,) of the done replicas of one split (a name of SPLITS)."""
    replicas = np.flatnonzero(store.ledger("dataset").done_mask() & (spec.split_of() == SPLITS.index(split)))
    images = store.root["dataset/images"].get_orthogonal_selection((replicas,))
    x = torch.from_numpy(images.reshape(-1, 1, *images.shape[2:]))
    return x, torch.arange(2).repeat(len(replicas))


def member_paths(campaign_dir, spec: Spec) -> list[Path]:
    """The K members' model files ``DIR/train/member-<k>.pt``."""
    return [Path(campaign_dir) / NAME / f"member-{k}.pt" for k in range(spec.train.ensemble)]


def shuffled_path(campaign_dir) -> Path:
    """The label-shuffled control's model file."""
    return Path(campaign_dir) / NAME / "shuffled.pt"


def model_path(campaign_dir) -> Path:
    """The campaign's model: member 0's file (what another campaign's ``gradcam --model`` takes)."""
    return Path(campaign_dir) / NAME / "member-0.pt"


def task_path(campaign_dir, spec: Spec, task: int) -> Path:
    """The model file of a task of ledger train (member k < K, or the control)."""
    return member_paths(campaign_dir, spec)[task] if task < spec.train.ensemble else shuffled_path(campaign_dir)


def checkpoint_path(campaign_dir: Path, spec: Spec, store: Store, tasks) -> Path:
    """The training checkpoint of these tasks, campaign sections and input results (a retraining
    on changed images never resumes the old run)."""
    inputs = hashlib.sha256(json.dumps(store.input_fingerprints(NAME), sort_keys=True).encode()).hexdigest()[:8]
    ids = "-".join(map(str, tasks))
    return Path(campaign_dir) / NAME / f"checkpoint-{STAGES[NAME].section_hash(spec)}-{inputs}-tasks-{ids}.pt"


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Rank 0: check the spec, create the group and ledger; the tasks still to do."""
    store = Store(campaign_dir)
    store.require_needs(NAME, spec=spec)
    store.check_stage(NAME, spec)
    store.create_arrays(NAME, spec)
    (Path(campaign_dir) / NAME).mkdir(exist_ok=True)
    return store.ledger(NAME, STAGES[NAME].tasks(spec)).todo().tolist()


def plot_history(campaign_dir: Path) -> None:
    """Loss and accuracy per epoch of every member, train and validation, as DIR/train/history.png."""
    import matplotlib.pyplot as plt

    from ..learn.plots import history_figure

    store = Store(campaign_dir, mode="r")
    fig = history_figure({k: store.root[f"{NAME}/history/{k}"][:] for k in HISTORY_KEYS})
    fig.savefig(Path(campaign_dir) / NAME / "history.png", dpi=120)
    plt.close(fig)


def write_task(campaign_dir: Path, spec: Spec, task: int, state: dict, history: dict, test: dict, card: dict) -> None:
    """Rank 0: one task's model file, store arrays and attributes (not its done-mark)."""
    save_checkpoint(task_path(campaign_dir, spec, task), state)
    store, K = Store(campaign_dir), spec.train.ensemble
    group = store.root[NAME]
    if task == K:
        for key in HISTORY_KEYS:
            group[f"shuffled_history/{key}"][:] = history[key]
        group["shuffled_accuracy"][:] = test["class_accuracy"]
        store.save_json(NAME, {"shuffled": {"model_card": card, "test": test}})
        return
    for key in HISTORY_KEYS:
        group[f"history/{key}"][task] = history[key]
    group["test_accuracy"][task] = test["class_accuracy"]
    cards, tests = (list(group.attrs.get(a) or [None] * K) for a in ("model_card", "test"))
    cards[task], tests[task] = card, test
    store.save_json(NAME, {"model_card": cards, "test": tests})


def write_consensus(campaign_dir: Path, spec: Spec, test_set) -> np.ndarray:
    """Rank 0, once every member's file is written: the consensus (argmax of the member-mean
    softmax) accuracy (2,) on the test set, stored with the test counts (2,) and the plot."""
    probabilities = []
    for path in member_paths(campaign_dir, spec):
        model = build_model(spec)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        probabilities.append(class_probabilities(model, test_set[0]).numpy())
    labels = test_set[1].numpy()
    consensus = consensus_accuracy(np.stack(probabilities), labels)
    group = Store(campaign_dir).root[NAME]
    group["consensus_accuracy"][:], group["test_counts"][:] = consensus, np.bincount(labels, minlength=2)
    plot_history(campaign_dir)
    return consensus


def task_labels(spec: Spec, task: int, train_labels: torch.Tensor, val_labels: torch.Tensor):
    """(training, validation) labels of a task: the true ones for a member, permuted ones for the
    control (one generator seeded with its seed, training labels first)."""
    if task < spec.train.ensemble:
        return train_labels, val_labels
    seed = member_seed(spec.train.seed, task)
    return shuffled_labels(train_labels, seed), shuffled_labels(val_labels, seed + 1)


def print_accuracy(campaign_dir: Path, spec: Spec) -> None:
    """The test accuracy of each member, of the consensus and of the control."""
    root, names = Store(campaign_dir, mode="r").root, spec.class_names

    def cells(acc) -> str:
        return f"{names[0]} {acc[0]:.4f}, {names[1]} {acc[1]:.4f}"

    for k, acc in enumerate(root[f"{NAME}/test_accuracy"][:]):
        print(f"{NAME}: member {k} test accuracy {cells(acc)}")
    counts = root[f"{NAME}/test_counts"][:]
    print(
        f"{NAME}: consensus of {spec.train.ensemble} test accuracy {cells(root[f'{NAME}/consensus_accuracy'][:])} "
        f"({int(counts.sum())} configurations)"
    )
    if spec.train.shuffled_control:
        print(
            f"{NAME}: label-shuffled control test accuracy {cells(root[f'{NAME}/shuffled_accuracy'][:])} (chance: 0.5)"
        )


def run(campaign_dir, args=None) -> int:
    """One process, a DDP job of ``args.nproc`` processes on this host, or (under torchrun)
    one worker of a DDP job, which ends its process (hpc.ddp.worker)."""
    if ddp.is_worker():
        ddp.worker(train_stage, str(campaign_dir))
    nproc = args.nproc or 1
    if nproc < 1:
        raise UsageError(f"--nproc {nproc}: give the number of training processes, 1 or more")
    return ddp.spawn(nproc, train_stage, str(campaign_dir)) if nproc > 1 else train_stage(campaign_dir)


def grouped(spec: Spec, device) -> bool:
    """Whether the members still to do train as one grouped network (train.members_together: 'auto' =
    on a GPU only, where one network of K members beats K networks; K = 1: the single network exactly)."""
    together = spec.train.members_together
    on_gpu = torch.device(device).type == "cuda"
    return spec.train.ensemble > 1 and (together is True or (together == "auto" and on_gpu))


def cores() -> int:
    """CPU cores this process may run on (its affinity: a SLURM allocation's, not the node's)."""
    return len(os.sched_getaffinity(0))


def member_processes(spec: Spec, device) -> int:
    """Processes that train networks at the same time (train.member_processes; 'auto' = one per
    core, at most one per network); 1 on a GPU, under DDP and for a grouped network."""
    wanted = spec.train.member_processes
    if torch.device(device).type == "cuda" or rank_and_world()[1] > 1 or grouped(spec, device):
        return 1
    return min(STAGES[NAME].tasks(spec), cores() if wanted == AUTO else wanted)


def train_stage(campaign_dir) -> int:
    """The stage in this process: alone, or as one DDP worker."""
    campaign_dir = Path(campaign_dir)
    spec = load(campaign_dir)
    signals.install()
    with ddp.ddp_context() as device:
        rank, world = rank_and_world()
        todo = on_root(ddp.comm(), lambda: prepare(campaign_dir, spec))
        if not todo:
            if rank == 0:
                print(f"{NAME}: already done ({model_path(campaign_dir)})")
            return 0
        store = Store(campaign_dir, mode="r")
        processes = member_processes(spec, device)
        if processes > 1:  # the workers load the data; this process needs the test set for the consensus
            if not train_concurrently(campaign_dir, spec, todo, processes, load_split(store, spec, "test")):
                return 1
        else:
            data = tuple(load_split(store, spec, s) for s in SPLITS)
            config = TrainConfig.from_spec(spec)
            for tasks in [todo] if grouped(spec, device) else [[t] for t in todo]:
                trained = fit_tasks(campaign_dir, spec, store, tasks, config, data, device)
                if trained is None:
                    return 1
                if rank == 0:
                    record(campaign_dir, spec, trained, data[2])
        if rank == 0:
            print_accuracy(campaign_dir, spec)
    return 0


@dataclass
class Trained:
    """One trained network: its ledger task, weights, history, test result (true labels), model
    card, and the wall seconds its training took."""

    task: int
    state: dict
    history: dict
    test: dict
    card: dict
    seconds: float


def fit_tasks(
    campaign_dir: Path, spec: Spec, store: Store, tasks: list[int], config: TrainConfig, data, device
) -> list[Trained] | None:
    """Train the tasks (ledger ids) as one network (one task: an ordinary GlassCNN) and test them;
    None when stopped on request (the checkpoint keeps the last epoch)."""
    rank, world = rank_and_world()
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = data
    start = time.perf_counter()
    seeds = [member_seed(spec.train.seed, t) for t in tasks]
    labels = [task_labels(spec, t, train_y, val_y) for t in tasks]
    models = [build_model(spec, seed) for seed in seeds]
    model = models[0] if len(tasks) == 1 else stack_members(models)
    who = {t: f"member {t}" if t < spec.train.ensemble else "shuffled control" for t in tasks}

    def report(epoch, histories):
        for t, history in zip(tasks, histories):
            print(
                f"{NAME}: epoch {epoch + 1}/{config.epochs} {who[t]} "
                + " ".join(f"{k}={history[k][-1]:.4f}" for k in HISTORY_KEYS),
                flush=True,
            )

    histories = train_members(
        model,
        (train_x, torch.stack([y for y, _ in labels])),
        (val_x, torch.stack([v for _, v in labels])),
        config,
        seeds,
        checkpoint=checkpoint_path(campaign_dir, spec, store, tasks),
        device=device,
        on_epoch=report,
        stop=signals.stop_requested,
    )
    if len(histories[0]["train_loss"]) < config.epochs:
        if rank == 0:
            print(
                f"{NAME}: {', '.join(who.values())} stopped on request after {len(histories[0]['train_loss'])} "
                "epochs; rerun to continue",
                flush=True,
            )
        return None
    states = [model.cpu().state_dict()] if len(tasks) == 1 else split_members(model.cpu())
    member, trained = build_model(spec), []
    seconds = (time.perf_counter() - start) / len(tasks)
    for t, state, history in zip(tasks, states, histories):
        member.load_state_dict(state)
        test = evaluate(member, test_x, test_y, device=device)  # the true labels, also for the control
        card = model_card(member, spec, replace(config, seed=member_seed(spec.train.seed, t)), device, world)
        card["samples"] = {"train": len(train_y), "val": len(val_y), "test": len(test_y)}
        card["md_engine"] = dict(store.root["quench"].attrs.get("engine", {}))  # what made the data
        card["threads"] = torch.get_num_threads()
        trained.append(Trained(t, state, history, test, card, seconds))
    return trained


def record(campaign_dir: Path, spec: Spec, trained: list[Trained], test_set) -> None:
    """Rank 0: the trained networks' files, arrays and attributes, then (once every member is
    written) the consensus, then their done-marks."""
    for t in trained:
        write_task(campaign_dir, spec, t.task, t.state, t.history, t.test, t.card)
    ledger = Store(campaign_dir).ledger(NAME)
    if set(range(spec.train.ensemble)) <= set(np.flatnonzero(ledger.done_mask()).tolist()) | {t.task for t in trained}:
        write_consensus(campaign_dir, spec, test_set)
    for t in trained:
        ledger.mark_done(t.task, 1, t.seconds)


def train_concurrently(campaign_dir: Path, spec: Spec, todo: list[int], processes: int, test_set) -> bool:
    """Train the tasks in ``processes`` worker processes at once (task j of ``todo`` in worker j mod
    processes), each with cores // processes torch threads whatever is left to do (so that a
    resumed stage gives the numbers of an uninterrupted one); this process records each network
    as it arrives. A stop request (SIGTERM) or Ctrl-C is passed on to the workers, which keep
    their checkpoints. False when stopped."""
    context = get_context("spawn")
    threads = max(1, cores() // processes)
    results = context.Queue()
    workers = [
        context.Process(
            target=_train_worker, args=(str(campaign_dir), todo[j::processes], threads, results), daemon=True
        )
        for j in range(min(processes, len(todo)))
    ]
    print(f"{NAME}: {len(todo)} networks in {len(workers)} processes of {threads} torch thread(s)", flush=True)

    def stop_workers():
        for w in workers:
            if w.is_alive():
                os.kill(w.pid, signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: Ctrl-C reaches this process only,
    try:  # which stops the workers
        for w in workers:
            w.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    left, error = set(todo), None
    try:
        with signals.on_stop(stop_workers):
            while left:
                try:
                    kind, item = results.get(timeout=0.5)
                except queue.Empty:
                    if any(w.is_alive() for w in workers) or not results.empty():
                        continue
                    break  # every worker has ended
                if kind == "trained":
                    item = replace(item, state=torch.load(io.BytesIO(item.state), weights_only=True))
                    record(campaign_dir, spec, [item], test_set)
                    left.discard(item.task)
                elif kind == "error" and error is None:
                    error = item
                    stop_workers()
    except KeyboardInterrupt:
        stop_workers()
        raise
    finally:
        for w in workers:
            w.join(timeout=60)
    if isinstance(error, BaseException):
        raise error
    if error is not None:
        raise RuntimeError(f"a training process failed:\n{error}")
    return not left


def _train_worker(campaign_dir: str, tasks: list[int], threads: int, results) -> None:
    """A process of :func:`train_concurrently`: trains its tasks one after another and puts
    ("trained", Trained), or ("error", a glassdist error or a traceback) on ``results``."""
    torch.set_num_threads(threads)
    signals.install()
    try:
        spec, store = load(campaign_dir), Store(campaign_dir, mode="r")
        data = tuple(load_split(store, spec, s) for s in SPLITS)
        for task in tasks:
            trained = fit_tasks(Path(campaign_dir), spec, store, [task], TrainConfig.from_spec(spec), data, "cpu")
            if trained is None:
                return
            # the weights as torch.save's bytes (the state_dict with its metadata): a tensor would travel
            # through torch's shared memory, which needs this process alive until the other has read it
            buffer = io.BytesIO()
            torch.save(trained[0].state, buffer)
            results.put(("trained", replace(trained[0], state=buffer.getvalue())))
    except GlassdistError as exc:
        results.put(("error", exc))
    except Exception:  # noqa: BLE001 - reported by the stage's process
        results.put(("error", traceback.format_exc()))

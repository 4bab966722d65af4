import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hdrsyn import HdrsynError, write_hdr
from hdrsyn.data import HELD_OUT, SyntheticStackDataset
from hdrsyn.models import ModelConfig, StackGenerator
from hdrsyn.reconstruction import load_model
from hdrsyn.train import (
    LossConfig,
    StageConfig,
    StageObjective,
    centralize_gradients,
    config_from_dict,
    export_weights,
    load_config,
    train,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hdr_folder(tmp_path_factory):
    """Two small HDR images: a panorama and a flat photo, smooth random radiance."""
    import cv2

    folder = tmp_path_factory.mktemp("hdr")
    rng = np.random.default_rng(0)
    for name, shape in (("pano.exr", (64, 128)), ("flat.exr", (40, 60))):
        low = np.exp(rng.normal(0, 1.5, (6, 8, 3))).astype(np.float32)
        write_hdr(
            folder / name, cv2.resize(low, shape[::-1], interpolation=cv2.INTER_CUBIC).clip(0)
        )
    return folder


def tiny_config(source, **run) -> dict:
    return {
        "model": {
            "global_base": 4, "global_levels": 2, "local_base": 4, "local_levels": 2,
            "refine_base": 4, "refine_levels": 2, "max_width": 8,
        },
        "data": {"source": str(source), "size": 16, "batch_size": 2, "val_views": 2},
        "stages": [
            {"name": "global", "kind": "global", "steps": 2},
            {"name": "local", "kind": "local", "steps": 2},
            {"name": "joint", "kind": "joint", "steps": 3},
        ],
        "run": {"val_every": 1000, "checkpoint_every": 1, "keep_checkpoints": 2, **run},
    }  # fmt: skip


def write_toml(path: Path, values: dict) -> Path:
    lines = []
    for section in ("model", "data", "run"):
        lines.append(f"[{section}]")
        for key, value in values[section].items():
            lines.append(f"{key} = {json.dumps(value)}")
    for stage in values["stages"]:
        lines.append("[[stages]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in stage.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_committed_configs_are_valid():
    small = load_config(ROOT / "configs" / "small.toml")
    paper = load_config(ROOT / "configs" / "paper.toml")
    assert small.preset == "small" and paper.preset == "paper"
    assert [s.kind for s in small.stages] == ["curve", "joint"]
    assert small.model.prior == "estimated" == paper.model.prior
    assert small.optim.betas == (0.5, 0.999) and small.loss.mu == 5000
    assert sorted(small.data.exclude) == sorted(HELD_OUT)  # never trained on
    load_config(ROOT / "configs" / "v1-small.toml")  # the first model's: before the held-out split
    for name in ("small-finetune", "small-highlights"):
        config = load_config(ROOT / "configs" / f"{name}.toml")
        assert sorted(config.data.exclude) == sorted(HELD_OUT)  # never trained on


def test_no_curve_ablation_differs_from_small_only_where_marked():
    small = load_config(ROOT / "configs" / "small.toml").to_dict()
    ablation = load_config(ROOT / "configs" / "ablations" / "no-curve.toml").to_dict()
    changed = {
        f"{section}.{key}"
        for section in ("model", "data", "optim", "loss", "run")
        for key in small[section]
        if small[section][key] != ablation[section][key]
    }
    assert changed == {"model.prior", "model.merge", "data.workers"}  # fmt: skip
    joint = [s for s in small["stages"] if s["kind"] == "joint"]
    assert [s for s in ablation["stages"]] == joint  # the same joint stage, no curve stage


@pytest.mark.parametrize("name", ["no-hdr-loss", "no-cobi", "no-cin", "no-decomposition",
                                  "no-recurrence"])  # fmt: skip
def test_ablation_configs_differ_from_small_only_where_marked_and_train(name, hdr_folder, tmp_path):
    small = load_config(ROOT / "configs" / "v1-small.toml").to_dict()  # what they ablated
    ablation = load_config(ROOT / "configs" / "ablations" / f"{name}.toml").to_dict()
    changed = {
        f"{section}.{key}"
        for section in ("model", "data", "optim", "loss", "run")
        for key in small[section]
        if small[section][key] != ablation[section][key]
    }
    expected = {
        "no-hdr-loss": {"loss.hdr"}, "no-cobi": {"loss.cobi"}, "no-cin": {"model.condition"},
        "no-decomposition": {"model.decomposition"}, "no-recurrence": {"model.gru"},
    }[name]  # fmt: skip
    assert changed == expected
    steps = sum(s["steps"] for s in small["stages"])
    assert sum(s["steps"] for s in ablation["stages"]) == steps  # the same budget
    # the ablated model trains (tiny widths, a couple of steps of each of its stages)
    tiny = tiny_config(hdr_folder)
    tiny["model"].update({k.split(".")[1]: ablation["model"][k.split(".")[1]]
                          for k in changed if k.startswith("model.")})  # fmt: skip
    tiny["loss"] = {k: ablation["loss"][k] for k in ("hdr", "cobi")}
    kinds = {s["kind"] for s in ablation["stages"]}
    tiny["stages"] = [s for s in tiny["stages"] if s["kind"] in kinds]
    metrics = train(tmp_path / "run", config_from_dict(tiny), progress=False)
    assert all(np.isfinite(list(metrics.values())))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["data"].update(colour=1), "unknown key"),
        (lambda c: c["stages"][0].update(kind="both"), "kind"),
        (lambda c: c.pop("stages"), "no \\[\\[stages\\]\\]"),
        (lambda c: c.update(extra={}), "unknown section"),
        (lambda c: c["model"].update(preset="huge"), "preset"),
        (lambda c: c["model"].update(decomposition=False), "global, local train the global"),
        (lambda c: c["data"].update(size="big"), "size = 'big': expected int"),
        (lambda c: c["data"].update(size=-4), "size = -4: must be ≥ 8"),
        (lambda c: c["data"].update(batch_size=0), "batch_size = 0: must be ≥ 1"),
        (lambda c: c["data"].update(srgb_share=1.5), "srgb_share = 1.5: must be in \\[0, 1\\]"),
        (lambda c: c["data"].update(noise="yes"), "noise = 'yes': expected bool"),
        (lambda c: c["data"].update(source=3), "source = 3: expected str | list\\[str\\]"),
        (lambda c: c.update(optim={"lr": "fast"}), "lr = 'fast': expected float"),
        (lambda c: c.update(optim={"lr": 0}), "lr = 0: must be positive"),
        (lambda c: c.update(optim={"betas": [0.5]}), "betas = \\(0.5,\\): expected two numbers"),
        (lambda c: c.update(loss={"cobi": -1}), "cobi = -1: must be ≥ 0"),
        (lambda c: c.update(run={"checkpoint_every": 0}), "checkpoint_every = 0: must be ≥ 1"),
        (lambda c: c["stages"][0].update(steps=2.5), "steps = 2.5: expected int"),
        (lambda c: c["stages"][0].update(steps=True), "steps = True: expected int"),
        (lambda c: c["model"].update(global_levels=0), "global_levels = 0: must be ≥ 1"),
    ],
)
def test_config_validation(hdr_folder, change, message):
    values = tiny_config(hdr_folder)
    change(values)
    with pytest.raises(HdrsynError, match=message):
        config_from_dict(values)


def test_training_runs_all_stages_and_records_everything(hdr_folder, tmp_path):
    run = tmp_path / "run"
    metrics = train(run, config_from_dict(tiny_config(hdr_folder)), progress=False)
    assert set(metrics) == {"stack_psnr", "hdr_psnr", "linearised_hdr_psnr"}
    assert all(np.isfinite(list(metrics.values())))
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["stages"][2]["kind"] == "joint" and resolved["loss"]["mu"] == 5000
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    stages = {row["stage"] for row in log if "stage" in row}
    assert stages == {"global", "local", "joint"}
    assert any("hdr" in row for row in log)  # the HDR loss through the layer was used
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-0000006",
        "step-0000007",
    ]
    assert sorted(p.name for p in run.glob("validation-*.png"))  # contact sheets
    with pytest.raises(HdrsynError, match="already holds"):
        train(run, config_from_dict(tiny_config(hdr_folder)), progress=False)
    # export → load_model round trip
    exported = export_weights(run, tmp_path / "tiny.safetensors")
    model = load_model(exported)
    state = load_file(str(run / "checkpoints" / "step-0000007" / "model.safetensors"))
    for key, value in model.generator.state_dict().items():
        torch.testing.assert_close(value, state[key].half().float())
    with torch.no_grad():
        generated, radiance = model(torch.rand(1, 3, 20, 20))
    assert radiance.shape == (1, 3, 20, 20)


def _final_weights(run: Path) -> dict:
    last = sorted((run / "checkpoints").glob("step-*"))[-1]
    return load_file(str(last / "model.safetensors"))


def test_resume_after_kill_matches_uninterrupted_run(hdr_folder, tmp_path):
    config = write_toml(tmp_path / "tiny.toml", tiny_config(hdr_folder))
    command = [sys.executable, "-m", "hdrsyn", "train", "--config", str(config), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*command, "--run-dir", str(tmp_path / "whole")], check=True, env=env,
                   capture_output=True)  # fmt: skip
    interrupted = tmp_path / "killed"
    process = subprocess.Popen([*command, "--run-dir", str(interrupted)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (interrupted / "checkpoints" / "step-0000003").exists():
        assert time.monotonic() < deadline and process.poll() is None, "no checkpoint in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    steps = sorted((interrupted / "checkpoints").glob("step-*"))
    assert steps and steps[-1].name < "step-0000007"  # it really was cut short
    resume = [sys.executable, "-m", "hdrsyn", "train", "--run-dir", str(interrupted), "--resume",
              "--device", "cpu"]  # fmt: skip
    subprocess.run(resume, check=True, env=env, capture_output=True)
    whole, resumed = _final_weights(tmp_path / "whole"), _final_weights(interrupted)
    assert whole.keys() == resumed.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=0)


def test_ddp_two_cpu_processes(hdr_folder, tmp_path):
    config = write_toml(tmp_path / "tiny.toml", tiny_config(hdr_folder))
    run = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "hdrsyn", "train", "--config", str(config), "--run-dir", str(run),
         "--device", "cpu"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    weights = _final_weights(run)
    assert all(torch.isfinite(v).all() for v in weights.values())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert max(row["step"] for row in log) == 7


TINY = {"global_base": 4, "global_levels": 2, "local_base": 4, "local_levels": 2,
        "refine_base": 4, "refine_levels": 2, "max_width": 8}  # fmt: skip


def test_gradient_centralisation_touches_conv_and_linear_weights_only():
    generator = StackGenerator(ModelConfig(**TINY, prior="estimated"))
    for parameter in generator.parameters():
        parameter.grad = torch.rand_like(parameter) + 1.0
    before = {name: p.grad.clone() for name, p in generator.named_parameters()}
    centralize_gradients(generator)
    for name, parameter in generator.named_parameters():
        is_weight = name.endswith("weight") and parameter.dim() > 1
        if is_weight:  # conv 4-D and linear 2-D: each output's gradient has mean 0
            means = parameter.grad.flatten(1).mean(dim=1)
            torch.testing.assert_close(means, torch.zeros_like(means), atol=1e-6, rtol=0)
        else:  # biases and the CIN γ/β tables (slots × channels) are left alone
            assert torch.equal(parameter.grad, before[name]), name
    assert any(".gamma" in name for name in before)  # the tables exist in this model


def test_local_stage_feeds_each_step_the_previous_steps_predicted_edges(hdr_folder, monkeypatch):
    generator = StackGenerator(ModelConfig(**TINY))
    seen = []
    for net in (generator.stop_up, generator.stop_down):
        original = net.edges

        def spy(image, edge, condition, state, original=original):
            out = original(image, edge, condition, state)
            seen.append((edge, out))
            return out

        monkeypatch.setattr(net, "edges", spy)
    batch = _stage_batch(hdr_folder)
    objective = StageObjective(generator, StageConfig("local", "local", 1), LossConfig(), None)
    objective(batch)
    assert len(seen) == 6  # three steps up, three down
    from hdrsyn.edges import canny_edges

    first = canny_edges(batch["input"])
    for chain in (seen[:3], seen[3:]):
        assert torch.equal(chain[0][0][..., :16, :16], first)  # the photo's own edges first
        for (_, previous), (edge, _) in zip(chain, chain[1:], strict=False):
            assert edge is previous  # then what the net itself predicted, as at inference


def test_curve_stage_learns_a_fixed_batch(hdr_folder):
    torch.manual_seed(0)
    generator = StackGenerator(ModelConfig(**TINY, prior="estimated"))
    batch = _stage_batch(hdr_folder, size=32, count=8, noise=False, jpeg=False)
    objective = StageObjective(generator, StageConfig("curve", "curve", 1), LossConfig(), None)
    optimizer = torch.optim.Adam(generator.curve_net.parameters(), lr=1e-3)
    first = objective(batch)[0].item()
    for _ in range(60):
        loss, parts = objective(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert parts["curve_rmse"].item() < 0.5 * first
    assert all(p.grad is None for p in generator.stop_up.parameters())  # the curve net alone


def test_curve_stage_needs_a_curve_estimating_model(hdr_folder):
    values = tiny_config(hdr_folder)
    values["stages"] = [{"name": "curve", "kind": "curve", "steps": 1}]
    with pytest.raises(HdrsynError, match="curve estimator"):
        config_from_dict(values)
    values["model"]["prior"] = "estimated"
    config_from_dict(values)


def test_resuming_a_fine_tune_killed_before_its_first_checkpoint_keeps_its_init(
    hdr_folder, tmp_path
):
    """The run's config.json keeps ``init``, and the resumed run starts from those weights."""
    first = tmp_path / "first"
    train(first, config_from_dict(tiny_config(hdr_folder)), progress=False, stop_after=1)
    weights = _final_weights(first)
    init = tmp_path / "init.safetensors"
    save_file(weights, str(init))
    run = tmp_path / "fine"
    values = tiny_config(hdr_folder, checkpoint_every=100)
    (run).mkdir()
    (run / "config.json").write_text(json.dumps(config_from_dict(values).to_dict()
                                                | {"init": str(init)}))  # fmt: skip
    # as a killed run leaves it: config.json, no checkpoint; resume one step
    train(run, resume=True, progress=False, stop_after=1)
    assert json.loads((run / "config.json").read_text())["init"] == str(init)
    resumed = _final_weights(run)
    changed = [k for k in weights if k.endswith("weight") and "stop_up" in k]
    # one step at lr 2e-4 from the init stays close to it; a random start would not be
    assert all((resumed[k] - weights[k]).abs().max() < 0.01 for k in changed)


@pytest.mark.parametrize("kind", ["global", "local", "joint"])
def test_each_stack_stage_learns_a_fixed_batch(hdr_folder, kind):
    """Every stage's objective falls on a batch it sees again and again (its gradients reach
    the parameters it trains, and the step is right)."""
    from hdrsyn.losses import CoBiLoss

    torch.manual_seed(0)
    generator = StackGenerator(ModelConfig(**TINY))
    size = 16 if kind == "joint" else 32  # the joint stage runs the whole recursion: smaller
    batch = _stage_batch(hdr_folder, size=size, count=4, noise=False, jpeg=False)
    objective = StageObjective(generator, StageConfig(kind, kind, 1), LossConfig(), CoBiLoss())
    optimizer = torch.optim.Adam(generator.parameters(), lr=3e-3)
    first = objective(batch)[0].item()
    for _ in range(80):  # the loss falls under 0.9 of its start in each (global 0.87, local 0.60)
        loss, _ = objective(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert objective(batch)[0].item() < 0.9 * first


def _stage_batch(folder, size=16, count=2, seed=0, **options) -> dict:
    """A collated batch of ``count`` synthetic samples (``options``: the dataset's)."""
    data = SyntheticStackDataset(folder, size=size, length=count, seed=seed, **options)
    return torch.utils.data.default_collate([data[i] for i in range(count)])


def test_data_edges_are_computed_once_per_batch_as_each_step_would():
    """with_edges: Canny of the padded photo (the generator's own first edges) and of every
    exposure (Eq. 5's targets), the same maps as per-image calls, kept when present."""
    from hdrsyn.edges import canny_edges
    from hdrsyn.models.stacknet import pad_to

    generator = StackGenerator(ModelConfig(**TINY))
    objective = StageObjective(generator, StageConfig("joint", "joint", 1), LossConfig(), None)
    batch = _stage_batch(ROOT / "tests" / "data", size=24)
    edges = objective.with_edges(batch)
    padded = pad_to(batch["input"], generator.config.multiple)[0]
    assert torch.equal(edges["input_edges"], canny_edges(padded))
    for index in range(batch["stack"].shape[1]):
        expected = canny_edges(batch["stack"][:, index])
        assert torch.equal(edges["stack_edges"][:, index], expected)
    assert edges["stack_edges"].sum() > 0
    assert objective.with_edges(edges) is edges


@pytest.mark.parametrize("prior", ["srgb", "estimated"])
def test_training_step_is_the_loops_former_step(hdr_folder, prior):
    """TrainingStep (eager, as on the CPU) makes the same updates as objective, zero_grad,
    backward, centralisation and Adam written out; the EVs stay on the host."""
    from hdrsyn.losses import CoBiLoss
    from hdrsyn.train import TrainingStep, to_device

    batches = [_stage_batch(hdr_folder, seed=seed) for seed in (0, 1)]
    assert to_device(batches[0], "cpu")["evs"] is batches[0]["evs"]
    merge = "estimated" if prior == "estimated" else "solve"
    config = ModelConfig(**TINY, prior=prior, merge=merge)
    models = []
    for use_step in (True, False):
        torch.manual_seed(0)
        generator = StackGenerator(config)
        objective = StageObjective(generator, StageConfig("joint", "joint", 1), LossConfig(),
                                   CoBiLoss())  # fmt: skip
        optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
        step = TrainingStep(objective, optimizer, centralize=True)
        for batch in batches:
            if use_step:
                loss, _ = step(to_device(batch, "cpu"))
            else:
                loss, _ = objective(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                centralize_gradients(generator)
                optimizer.step()
        models.append(generator.state_dict())
    for key, value in models[0].items():
        torch.testing.assert_close(value, models[1][key], rtol=0, atol=0)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
SHIPPED = {"prior": "estimated", "merge": "estimated", "photo_weight": 1024.0}


@CUDA
def test_cuda_training_step_never_waits_for_the_device():
    """Nothing in a step of the shipped model's config (forward, backward, Adam) reads the
    device from the host: the CPU runs ahead of the GPU. (With the Eq. 1 solve, the check for
    a failed Cholesky factorisation waits once per step, except in a captured graph.)"""
    options = SHIPPED
    from hdrsyn.losses import CoBiLoss
    from hdrsyn.models import PRESETS
    from hdrsyn.train import TrainingStep, to_device

    config = ModelConfig(**{**PRESETS["small"].to_dict(), **options})
    generator = StackGenerator(config).cuda()
    objective = StageObjective(generator, StageConfig("joint", "joint", 1), LossConfig(),
                               CoBiLoss().cuda())  # fmt: skip
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-5, capturable=True)
    step = TrainingStep(objective, optimizer, amp=True)
    batch = objective.with_edges(to_device(_stage_batch(ROOT / "tests" / "data", 64), "cuda"))
    step(batch)  # first use: lazy initialisations may wait
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@CUDA
@pytest.mark.parametrize("options", [{}, SHIPPED], ids=["small", "shipped"])
def test_cuda_graph_step_matches_the_eager_step(options):
    """The step captured as a CUDA graph and replayed on new batches gives the eager step's
    losses and weights (within float32 reordering)."""
    from hdrsyn.losses import CoBiLoss
    from hdrsyn.models import PRESETS
    from hdrsyn.train import TrainingStep, to_device

    config = ModelConfig(**{**PRESETS["small"].to_dict(), **options})
    batches = [to_device(_stage_batch(ROOT / "tests" / "data", 64, seed=s), "cuda")
               for s in range(5)]  # fmt: skip
    results = []
    for graph in (False, True):
        torch.manual_seed(0)
        generator = StackGenerator(config).cuda()
        start = torch.cat([p.detach().flatten() for p in generator.parameters()])
        objective = StageObjective(generator, StageConfig("joint", "joint", 1), LossConfig(),
                                   CoBiLoss().cuda())  # fmt: skip
        optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3, capturable=True)
        step = TrainingStep(objective, optimizer, graph=graph, centralize=True, warmup=2)
        losses = [step(batch)[0].item() for batch in batches]
        if graph:
            assert step.graph is not None and not step.eager
        moved = torch.cat([p.detach().flatten() for p in generator.parameters()]) - start
        results.append((losses, moved))
    (eager_losses, eager_moved), (graph_losses, graph_moved) = results
    np.testing.assert_allclose(graph_losses, eager_losses, rtol=1e-3)  # each batch's own loss
    # the same updates, up to Adam's sign flips of near-zero gradients (atomics' order)
    assert torch.nn.functional.cosine_similarity(graph_moved, eager_moved, dim=0) > 0.99
    assert graph_moved.norm().item() == pytest.approx(eager_moved.norm().item(), rel=0.02)


@CUDA
def test_cuda_training_run_replays_each_stage_as_a_graph(hdr_folder, tmp_path):
    """train() on one GPU: every stage long enough is captured (a failed capture raises),
    the losses it logs are finite and the run resumes from its checkpoint."""
    values = tiny_config(hdr_folder)
    for stage in values["stages"]:
        stage["steps"] = 6  # 3 eager warm-up steps, the capture, replays
    config = config_from_dict(values)
    train(tmp_path / "run", config, device="cuda", stop_after=9)
    train(tmp_path / "run", resume=True, device="cuda")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert len(losses) == 18 and np.isfinite(losses).all()


def test_training_stops_on_a_non_finite_loss_before_saving_it(hdr_folder, tmp_path, monkeypatch):
    """A diverged step (NaN loss: the HDR layer does not check generated stacks) stops the run
    with a one-line error before that step's checkpoint; the earlier ones stay."""
    from hdrsyn.train.checkpoints import checkpoints_of

    original, calls = StageObjective.forward, []

    def diverging(self, batch):
        calls.append(1)
        loss, parts = original(self, batch)
        return (loss * math.nan if len(calls) == 3 else loss), parts

    monkeypatch.setattr(StageObjective, "forward", diverging)
    with pytest.raises(HdrsynError, match="step 3: the loss is not finite"):
        train(tmp_path / "run", config_from_dict(tiny_config(hdr_folder)), device="cpu")
    saved = [int(path.name.split("-")[1]) for path in checkpoints_of(tmp_path / "run")]
    assert saved == [1, 2]  # checkpoint_every = 1


@pytest.mark.parametrize(("native", "amp"), [(True, True), (False, True), (True, False)])
def test_cpu_training_runs_bf16_autocast_only_where_bf16_is_native(
    hdr_folder, tmp_path, monkeypatch, native, amp
):
    """``[run] amp = true`` on a CPU: bf16 autocast where the CPU has bf16 instructions
    (AVX-512 BF16 or AMX: the convolutions run 1.8× faster), float32 elsewhere (bf16 would be
    emulated); ``amp = false`` is float32 everywhere."""
    from hdrsyn.train.graph import bf16_is_native

    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: native, raising=False)
    assert bf16_is_native("cpu") is native and bf16_is_native("cuda") and not bf16_is_native("meta")
    original, seen = StageObjective.forward, set()

    def spy(self, batch):
        seen.add(torch.is_autocast_enabled("cpu"))
        return original(self, batch)

    monkeypatch.setattr(StageObjective, "forward", spy)
    train(tmp_path / "run", config_from_dict(tiny_config(hdr_folder, amp=amp)), device="cpu")
    assert seen == {native and amp}
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    (session,) = [row["session"] for row in log if "session" in row]  # the run says which
    assert session["precision"] == ("bf16 autocast" if native and amp else "float32")

"""End to end: the AWS AutoAugment search on a few Fashion-MNIST steps (1 stage-1 epoch of 3
steps, 2 loops x 2 evaluations of 2 fine-tuning epochs of 3 steps)."""

import copy
import json
import math
import os
import statistics
import sys
import types
from pathlib import Path

import mlflow
import pytest
import torch
from PIL import Image

import aws_search
from augssl.config import parse_params
from augssl.engine.optim import build_optimizer
from augssl.engine.session import available_cores, open_session
from augssl.engine.trainer import NonFiniteLossError
from augssl.search.aws import NUM_PAIRS, PairPolicy, load_policy
from augssl.search.aws.child_runs import EVALUATION_TAG, LOOP_TAG
from augssl.search.aws.executors import InProcessEvaluations, open_executor
from augssl.search.aws.operation_summary import operation_usage
from augssl.search.aws.policy_evaluation import EvaluationTask, PolicyEvaluator, evaluation_threads

from .helpers import ROOT, all_runs, needs_fashion_mnist, run_script, tiny

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

EPOCH_LENGTH, BATCH_SIZE, FINETUNE_EPOCHS = 3, 32, 2
SEARCH_TINY = dict(num_labelled_samples=400, num_validation_samples=200, batch_size=BATCH_SIZE,
                   num_epochs=1, epoch_length=EPOCH_LENGTH, finetune_epochs=FINETUNE_EPOCHS,
                   search_loops=2, evaluations_per_loop=2, top_k=5)
STAGE1_STEPS = EPOCH_LENGTH  # one stage-1 epoch


class SimulatedCrash(RuntimeError):
    pass


def _params(**overrides) -> str:
    return tiny(**{**SEARCH_TINY, **overrides})


def _config(**overrides) -> aws_search.AwsSearchConfig:
    return parse_params(_params(**overrides), aws_search.AwsSearchConfig,
                        dataset="FashionMNIST", network="smallcnn")


def _artifacts(run) -> Path:
    return Path(run.info.artifact_uri.removeprefix("file://"))


def _searches():
    return [run for run in all_runs() if "mlflow.parentRunId" not in run.data.tags]


def _evaluations(parent_id: str):
    return [run for run in all_runs() if run.data.tags.get("mlflow.parentRunId") == parent_id]


def _loop_and_index(run) -> tuple[int, int]:
    return int(run.data.tags[LOOP_TAG]), int(run.data.tags[EVALUATION_TAG])


def test_search_logs_policy_figures_and_one_child_run_per_evaluation(tracking):
    run_script(tracking, "-m", "mlflow", "run", str(ROOT), "-e", "aws_search", "--env-manager",
               "local", "-P", "dataset=FashionMNIST", "-P", "network=smallcnn",
               "-P", f"params={_params(enlarge_batch=2)}")
    (search,) = _searches()
    assert search.info.status == "FINISHED"
    assert search.data.params["entry"] == "aws_search"
    folder = _artifacts(search)

    policy = load_policy(folder / "policy.json")
    joint = policy.joint().detach()
    assert joint.numel() == NUM_PAIRS
    assert float(joint.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(policy.entropy().detach()) < math.log(NUM_PAIRS) - 1e-3  # PPO moved it off uniform
    assert len(json.loads((folder / "policy.json").read_text())["top"]) == 5
    for name in ("policy_heatmap.png", "policy_entropy.png"):
        with Image.open(folder / name) as image:
            assert image.format == "PNG", name

    client = mlflow.MlflowClient()
    entropy = client.get_metric_history(search.info.run_id, "search/policy_entropy")
    assert [m.step for m in entropy] == [0, 1, 2]
    for name in ("search/mean_reward", "search/baseline", "search/kl",
                 "search/top1_probability"):
        assert [m.step for m in client.get_metric_history(search.info.run_id, name)] == [1, 2]

    children = _evaluations(search.info.run_id)
    assert sorted(map(_loop_and_index, children)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    rewards = []
    for child in children:
        metrics = child.data.metrics
        assert 0.0 <= metrics["reward"] <= 1.0
        rewards.append(metrics["reward"])
        # every image of every step drew a pair, twice with Enlarge Batch
        assert metrics["pairs_sampled"] == FINETUNE_EPOCHS * EPOCH_LENGTH * BATCH_SIZE * 2
        assert metrics["weight_shift"] > 0  # the copy learned
        accuracies = client.get_metric_history(child.info.run_id, "validation/accuracy")
        best_two = sorted((m.value for m in accuracies), reverse=True)[:2]
        assert metrics["reward"] == pytest.approx(sum(best_two) / 2)
        logged = json.loads((_artifacts(child) / "pair_counts.json").read_text())
        assert sum(map(sum, logged["counts"])) == metrics["pairs_sampled"]
        # without sub-policies, the update credits every pair an image received
        assert metrics["pairs_credited"] == metrics["pairs_sampled"]
        assert logged["credited"] == logged["most_sampled"]
    assert len(set(rewards)) > 1
    # each loop's reward standard error: the spread of its 2 evaluations over sqrt(2)
    errors = client.get_metric_history(search.info.run_id, "search/reward_std_error")
    for error in errors:
        loop = [c.data.metrics["reward"] for c in children if _loop_and_index(c)[0] == error.step]
        assert error.value == pytest.approx(statistics.stdev(loop) / math.sqrt(2))
    assert [m.step for m in errors] == [1, 2]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["mean_reward_std_error"] == pytest.approx(sum(m.value for m in errors) / 2)
    uniform = operation_usage(PairPolicy().joint().detach())
    assert summary["operation_usage"] == {
        op: {"learned": pytest.approx(share), "uniform": pytest.approx(uniform[op])}
        for op, share in operation_usage(joint).items()}

    # the shared weights the evaluations forked are still those stage 1 ended with
    shared = torch.load(folder / "shared_weights.pt", weights_only=True)["model"]
    last = torch.load(folder / "checkpoints" / f"checkpoint_{STAGE1_STEPS + 2}.pt",
                      weights_only=True)
    assert last["search"]["finished_loops"] == 2
    for name, tensor in shared.items():
        assert torch.equal(last["model"][name], tensor), name


def test_a_crashed_search_resumes_where_it_stopped_in_the_same_run(tracking, monkeypatch):
    # checkpoint_every=3: stage 1's periodic checkpoint falls on its last iteration
    config = lambda **more: _config(checkpoint_every=STAGE1_STEPS,  # noqa: E731
                                    sub_policies_per_evaluation=2, **more)
    with monkeypatch.context() as patch:
        patch.setattr(aws_search, "save_shared_weights", _crash("at the end of stage 1"))
        with pytest.raises(SimulatedCrash):
            aws_search.training(0, config())
    (crashed,) = _searches()
    assert crashed.info.status == "FAILED" and _evaluations(crashed.info.run_id) == []

    save, uninterrupted = aws_search.save_search_checkpoint, {}

    def crash_before_loop_2_is_saved(loop, number):
        if number == STAGE1_STEPS + 2:
            # what the run would have saved: the policy after loop 2
            uninterrupted["joint"] = loop.extra_state["search"].policy.joint().detach().clone()
            _crash("at the end of search loop 2")()
        save(loop, number)

    with monkeypatch.context() as patch:
        patch.setattr(aws_search, "save_search_checkpoint", crash_before_loop_2_is_saved)
        with pytest.raises(SimulatedCrash):
            aws_search.training(0, config(resume=crashed.info.run_id))
    before = {_loop_and_index(r): r.info.run_id for r in _evaluations(crashed.info.run_id)}
    assert sorted(before) == [(1, 1), (1, 2), (2, 1), (2, 2)]  # loop 2 logged, not saved

    aws_search.training(0, config(resume=crashed.info.run_id))
    (resumed,) = _searches()  # the crashed run went on, no new one
    assert resumed.info.run_id == crashed.info.run_id and resumed.info.status == "FINISHED"
    children = _evaluations(crashed.info.run_id)
    after = {_loop_and_index(r): r.info.run_id for r in children}
    assert len(children) == 4 and sorted(after) == sorted(before)  # loop 2's first discarded
    assert after[(1, 1)] == before[(1, 1)] and after[(1, 2)] == before[(1, 2)]
    assert after[(2, 1)] != before[(2, 1)]  # loop 1 was not run again, loop 2 was
    history = mlflow.MlflowClient().get_metric_history(resumed.info.run_id, "train/loss")
    assert [m.step for m in history] == [2]  # stage 1 ran once (log_every=2)

    got = load_policy(_artifacts(resumed) / "policy.json").joint().detach()
    torch.testing.assert_close(got, uninterrupted["joint"], rtol=1e-6, atol=1e-9)
    assert not torch.allclose(got, PairPolicy().joint().detach())
    assert (_artifacts(resumed) / "shared_weights.pt").is_file()
    summary = json.loads((_artifacts(resumed) / "summary.json").read_text())
    assert summary["search_loops"] == 2
    # the operations' rewards count the evaluations of both loops, the one before the crash too
    applied = [{pair[key].split("@")[0] for pair in json.loads(
        (_artifacts(child) / "pair_counts.json").read_text())["credited"]
        for key in ("first", "second")} for child in children]
    rewards = {child.data.metrics["reward"]: ops for child, ops in zip(children, applied)}
    for op, stats in summary["operation_rewards"].items():
        with_op = [reward for reward, ops in rewards.items() if op in ops]
        assert stats["evaluations_with"] == len(with_op)
        assert stats["with"] == pytest.approx(statistics.fmean(with_op))
    assert summary["operation_rewards"]  # 2 pairs per evaluation: not every op in every one


def _crash(where: str):
    def crash(*args):
        raise SimulatedCrash(f"simulated crash {where}")

    return crash


class _Pending:
    def __init__(self, compute):
        self.compute = compute


def _delivered(args):
    """Arguments as a worker receives them: references resolved, everything copied."""
    return [copy.deepcopy(a.compute() if isinstance(a, _Pending) else a) for a in args]


class _FakeRay(types.ModuleType):
    """The part of Ray's API the search uses, run in this process: actors are objects whose
    method calls run when their results are fetched."""

    def __init__(self):
        super().__init__("ray")
        self.addresses, self.resources, self.killed = [], [], []

    def is_initialized(self):
        return bool(self.addresses)

    def init(self, address=None):
        self.addresses.append(address)

    def cluster_resources(self):
        return {"CPU": 2.0}

    def put(self, value):
        stored = copy.deepcopy(value)
        return _Pending(lambda: stored)

    def get(self, pending):
        return [p.compute() for p in pending]

    def kill(self, actor):
        self.killed.append(actor)

    def remote(self, **resources):
        self.resources.append(resources)

        def actor_class(cls):
            def start(*args):
                instance = cls(*_delivered(args))
                return types.SimpleNamespace(evaluate=types.SimpleNamespace(
                    remote=lambda *a: _Pending(lambda: instance.evaluate(*_delivered(a)))))

            return types.SimpleNamespace(remote=start)

        return actor_class


def test_evaluations_are_independent_of_order_and_of_the_worker_running_them(tracking,
                                                                               monkeypatch):
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    config = _config(executor="ray", ray_workers=2)
    session = open_session(aws_search.ENTRY, config)
    model = session.create_model()
    optimizer = build_optimizer(config, model.parameters())
    policy = PairPolicy()
    with torch.no_grad():
        policy.first_logits.normal_(generator=torch.Generator().manual_seed(0))
    joint = policy.joint().detach()
    tasks = [EvaluationTask(1, 2), EvaluationTask(2, 1)]

    local = InProcessEvaluations(PolicyEvaluator(
        session, model, optimizer.state_dict(), EPOCH_LENGTH,
        evaluation_threads(config))).run(joint, tasks)
    executor = open_executor(session, model, optimizer, EPOCH_LENGTH)
    remote = executor.run(joint, tasks[::-1])[::-1]  # other order, other workers
    executor.close()

    assert fake.addresses == [None]
    assert fake.resources == [{"num_gpus": 0.0,
                               "num_cpus": evaluation_threads(config)}]
    assert len(fake.killed) == 2
    assert not torch.equal(local[0].pair_counts, local[1].pair_counts)  # the tasks differ
    for expected, got in zip(local, remote):
        assert (got.loop, got.index) == (expected.loop, expected.index)
        assert got.accuracies == expected.accuracies
        assert torch.equal(got.pair_counts, expected.pair_counts)
        assert got.weight_shift == pytest.approx(expected.weight_shift, rel=1e-6)


def test_bad_inputs_are_refused_before_any_run(tracking, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed, whatever this machine has
    with pytest.raises(SystemExit) as stopped:
        aws_search.main(["FashionMNIST", "smallcnn", "--params", _params(executor="ray")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "pip install ray" in error and "pip install -e .[ray]" in error
    assert "executor=inprocess" in error

    for params, message in [("search_loop=3", "unknown parameter 'search_loop'. Did you mean "
                                              "'search_loops'?"),
                            ("ppo_betas=0.5,1.0", "ppo_betas=0.5,1.0: expected two values"),
                            ("num_validation_samples=0", "num_validation_samples=0 is out of "
                                                         "range"),
                            ("backend=gloo", "scale out with executor=ray")]:
        with pytest.raises(SystemExit) as stopped:
            aws_search.main(["FashionMNIST", "smallcnn", "--params", params])
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err
    assert all_runs() == []


def test_a_local_ray_instance_runs_two_evaluations_like_the_process_does(tracking, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install -e .[ray])")
    # the workers import the package under test, as this process does (tests/conftest.py), not
    # the copy an editable install of another checkout may point at
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(ROOT / "code"), os.environ.get("PYTHONPATH")])))
    config = _config(executor="ray", ray_workers=2)
    session = open_session(aws_search.ENTRY, config)
    model = session.create_model()
    optimizer = build_optimizer(config, model.parameters())
    joint = PairPolicy().joint().detach()
    tasks = [EvaluationTask(1, 0), EvaluationTask(1, 1)]
    local = InProcessEvaluations(PolicyEvaluator(
        session, model, optimizer.state_dict(), EPOCH_LENGTH,
        evaluation_threads(config))).run(joint, tasks)
    try:
        executor = open_executor(session, model, optimizer, EPOCH_LENGTH)
        remote = executor.run(joint, tasks)
        executor.close()
    finally:
        ray.shutdown()
    for expected, got in zip(local, remote):
        assert (got.loop, got.index) == (expected.loop, expected.index)
        assert got.accuracies == pytest.approx(expected.accuracies, abs=1e-6)
        assert torch.equal(got.pair_counts, expected.pair_counts)


def test_every_evaluation_computes_with_the_thread_count_the_search_decided(tracking,
                                                                            monkeypatch):
    cores = available_cores()
    assert evaluation_threads(_config()) == max(1, cores // 2)  # 2 per loop
    assert evaluation_threads(_config(executor="ray", ray_workers=4)) == \
        max(1, cores // 4)
    config = _config(threads_per_evaluation=3)
    assert evaluation_threads(config) == 3

    session = open_session(aws_search.ENTRY, config)
    model = session.create_model()
    optimizer = build_optimizer(config, model.parameters())
    seen = []
    fine_tune = PolicyEvaluator._fine_tune

    def recording(self, *args):
        seen.append(torch.get_num_threads())
        return fine_tune(self, *args)

    monkeypatch.setattr(PolicyEvaluator, "_fine_tune", recording)
    caller_threads = torch.get_num_threads()
    executor = open_executor(session, model, optimizer, EPOCH_LENGTH)
    executor.run(PairPolicy().joint().detach(), [EvaluationTask(1, 1)])
    assert seen == [3]
    assert torch.get_num_threads() == caller_threads


def test_a_fine_tune_whose_loss_is_not_finite_names_its_evaluation(tracking):
    config = _config()
    session = open_session(aws_search.ENTRY, config)
    model = session.create_model()
    optimizer = build_optimizer(config, model.parameters())
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    evaluator = PolicyEvaluator(session, model, optimizer.state_dict(), EPOCH_LENGTH, 1)
    with pytest.raises(NonFiniteLossError, match="evaluation 2 of search loop 3 became NaN"):
        evaluator.evaluate(PairPolicy().joint().detach(), EvaluationTask(3, 2))


def test_an_evaluation_with_sub_policies_fine_tunes_with_those_pairs_and_credits_them(tracking):
    config = _config(sub_policies_per_evaluation=3)
    session = open_session(aws_search.ENTRY, config)
    model = session.create_model()
    optimizer = build_optimizer(config, model.parameters())
    evaluator = PolicyEvaluator(session, model, optimizer.state_dict(), EPOCH_LENGTH, 1)
    joint = PairPolicy().joint().detach()

    result = evaluator.evaluate(joint, EvaluationTask(1, 1))
    again = evaluator.evaluate(joint, EvaluationTask(1, 1))
    other = evaluator.evaluate(joint, EvaluationTask(1, 2))

    # three pairs drawn from the policy: what the PPO update credits
    assert int(result.drawn_pairs.sum()) == 3
    # every image of the fine-tuning received one of them, and all of them were used
    received = result.pair_counts > 0
    assert int(result.pair_counts.sum()) == FINETUNE_EPOCHS * EPOCH_LENGTH * BATCH_SIZE
    assert torch.equal(received, result.drawn_pairs > 0)
    # a pure function of (seed, loop, index, policy)
    assert torch.equal(again.drawn_pairs, result.drawn_pairs)
    assert again.accuracies == result.accuracies
    assert not torch.equal(other.drawn_pairs, result.drawn_pairs)


def test_without_sub_policies_each_image_draws_from_the_policy_and_all_its_pairs_are_credited(
        tracking):
    config = _config()
    session = open_session(aws_search.ENTRY, config)
    model = session.create_model()
    optimizer = build_optimizer(config, model.parameters())
    evaluator = PolicyEvaluator(session, model, optimizer.state_dict(), EPOCH_LENGTH, 1)
    result = evaluator.evaluate(PairPolicy().joint().detach(), EvaluationTask(1, 1))
    assert torch.equal(result.drawn_pairs, result.pair_counts)
    assert int(result.pair_counts.sum()) == FINETUNE_EPOCHS * EPOCH_LENGTH * BATCH_SIZE

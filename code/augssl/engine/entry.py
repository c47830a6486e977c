"""What every entry script does around its training function: read the command line, check
everything it can before any compute, launch one or several processes, and end the MLflow run
truthfully (FINISHED or FAILED)."""

from __future__ import annotations

import argparse
import functools
import gc
import os
import socket
import sys
from pathlib import Path
from typing import Callable

from augssl.config import ConfigError, describe_params, parse_params


def build_parser(entry: str, config_cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{entry}.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"augssl '{entry}' entry.",
        epilog="params: \"key=value;key=value\". Parameters:\n" + describe_params(config_cls))
    parser.add_argument("dataset", help="data set name, e.g. FashionMNIST or CIFAR10")
    parser.add_argument("network", help="model name, e.g. smallcnn, wideresnet, fastresnet")
    parser.add_argument("--params", default="", help='"key=value;key=value" (see below)')
    return parser


PRESETS_DIR = Path(__file__).resolve().parents[3] / "experiments" / "presets"


def parse_command_line(entry: str, config_cls: type, argv: list[str] | None = None):
    args = build_parser(entry, config_cls).parse_args(argv)
    return parse_params(args.params, config_cls, presets_dir=PRESETS_DIR, dataset=args.dataset,
                        network=args.network)


def preflight(config, select: Callable | None = None) -> None:
    """Fail on every input error that can be found without training: names, data, splits,
    resume. ``select`` is the entry's restriction of the data set (see ``open_session``)."""
    from augssl.engine.amp import Precision
    from augssl.engine.session import select_device, source_dataset, split_training_set
    from augssl.models import check_model_name

    check_model_name(config.network)
    Precision(config.amp, select_device(config.device))
    bundle = source_dataset(config)
    split_training_set(config, select(config, bundle) if select is not None else bundle)
    _check_policy_reference(getattr(config, "policy", ""))
    if config.resume:
        from augssl.engine.checkpoint import resolve_resume

        resolve_resume(config.resume)


def _check_policy_reference(policy: str) -> None:
    """A ``<scheme>:<reference>`` policy (e.g. ``aws:<run id>``) must name a usable policy."""
    from augssl.augment.policy_schemes import policy_reference

    found = policy_reference(policy)
    if found is not None:
        scheme, reference = found
        scheme.check(reference)


def _explain_on_launcher_run(message: str) -> None:
    """`mlflow run` has already opened a run: say on it why nothing ran (it ends FAILED)."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        import mlflow

        mlflow.tracking.MlflowClient().set_tag(run_id, "mlflow.note.content", message)


def launch(entry: str, config_cls: type, training: Callable, argv: list[str] | None = None,
           extra_checks: Callable | None = None, select: Callable | None = None) -> None:
    """Parse, check, then run ``training(local_rank, config)`` in one or several processes.
    The data set is read once: the checks and this process's training share it (a spawned
    process reads its own)."""
    from augssl.engine.session import reading_once
    from augssl.engine.store import ready_store

    with reading_once() as read:
        try:
            config = parse_command_line(entry, config_cls, argv)
            preflight(config, select)
            if extra_checks is not None:
                extra_checks(config)
        except (ConfigError, FileNotFoundError, ValueError) as error:
            print(f"{entry}: error: {error}", file=sys.stderr)
            _explain_on_launcher_run(f"Not started: {error}")
            raise SystemExit(2) from None
        ready_store()  # after the checks: a refused input leaves no store behind
        if config.backend and config.nproc_per_node > 1:
            read.clear()  # the spawned processes read their own: this one need not hold it
        _train(entry, training, config)


def _train(entry: str, training: Callable, config) -> None:
    import ignite.distributed as idist

    from augssl.engine.trainer import NonFiniteLossError

    try:
        if config.backend:
            # nproc_per_node=1 with a backend: the processes were started by torchrun
            spawn = config.nproc_per_node if config.nproc_per_node > 1 else None
            # a group spawned here meets on a free port, not ignite's fixed 2222 that another
            # group on this machine may hold; torchrun's processes meet where torchrun says
            port = free_local_port() if spawn else None
            with idist.Parallel(backend=config.backend, nproc_per_node=spawn,
                                master_port=port) as parallel:
                parallel.run(functools.partial(train_and_release, training), config)
        else:
            training(0, config)
    except (NonFiniteLossError, ConfigError, FileNotFoundError) as error:
        # expected failures: the run is already marked FAILED; a traceback would only hide this
        print(f"{entry}: run failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_and_release(training: Callable, local_rank: int, config) -> None:
    """``training(local_rank, config)`` in a process of a group, then free what it left in
    reference cycles, before the launcher destroys the group.

    The group's threads live as long as anything holds it, and the DDP model sits in the
    trainer's handler cycles until a collection. Left to the interpreter's exit, a gloo worker
    that dropped the last reference to a tensor there aborted the process ("terminate called
    without an active exception"), at random, on the rank that finished first. Collecting here lets
    the group's destruction join its threads while the interpreter still runs."""
    try:
        training(local_rank, config)
    finally:
        gc.collect()

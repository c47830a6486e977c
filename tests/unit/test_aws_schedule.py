"""The evaluations of the AWS search fine-tune along the last epochs of the search's schedule."""

import torch

from augssl.engine.config import TrainingConfig
from augssl.engine.optim import build_scheduler


def _learning_rates(scheduler, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def _scheduler(total_steps: int, first_step: int = 0):
    config = TrainingConfig(num_warmup_steps=3)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    return build_scheduler(config, optimizer, total_steps, first_step=first_step)


def test_a_schedule_that_starts_later_follows_the_rest_of_the_whole_one():
    whole = _learning_rates(_scheduler(20), 20)
    assert _learning_rates(_scheduler(20, first_step=12), 8) == whole[12:]
    assert _learning_rates(_scheduler(20, first_step=1), 3) == whole[1:4]  # within the warm-up

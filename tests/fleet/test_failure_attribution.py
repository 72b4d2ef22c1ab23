"""Which node a failed torchrun world is blamed on: the one whose log shows the cause, not the first bystander."""

from __future__ import annotations

from lambda_provider.fleet.training_run import _first_cause

BYSTANDER = """\
RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.77.0.3]:29581
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
  exitcode  : 1 (pid: 4242)
"""
STOPPED_BYSTANDER = """\
torch.distributed.elastic.agent.server.api:Received Signals.SIGTERM death signal, shutting down workers
  exitcode  : -15 (pid: 4242)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 4242
"""
KILLED = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
  exitcode  : -9 (pid: 5151)
  traceback : Signal 9 (SIGKILL) received by PID 5151
"""
OWN_ERROR = """\
Traceback (most recent call last):
  File "training/data.py", line 99, in _open_shard
ValueError: shard /lambda/nfs/sae/acts-17.npy has width 4095, expected 4096
"""


def test_the_killed_worker_is_blamed_over_the_rank_that_lost_it() -> None:
    assert _first_cause([BYSTANDER, KILLED]) == 1
    assert _first_cause([STOPPED_BYSTANDER, KILLED]) == 1  # torchrun's SIGTERM to the others is not a cause
    assert _first_cause([KILLED, BYSTANDER]) == 0


def test_an_error_of_its_own_is_blamed_over_a_lost_peer() -> None:
    assert _first_cause([BYSTANDER, OWN_ERROR, BYSTANDER]) == 1
    assert _first_cause([OWN_ERROR, BYSTANDER]) == 0


def test_without_a_visible_cause_the_head_is_named() -> None:
    assert _first_cause([BYSTANDER, BYSTANDER]) == 0
    assert _first_cause(["", ""]) == 0

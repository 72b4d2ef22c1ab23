"""Which node a failed torchrun world is blamed on: the one whose log shows the cause, not the first bystander."""

from __future__ import annotations

from lambda_provider.fleet.run_nodes import cause_of
from lambda_provider.fleet.run_nodes import first_cause as _first_cause

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


CONFIG_ERROR_UNDER_TORCHRUN = (
    """\
config error: out_dir: its checkpoint was written by 2 ranks, this run has 3
E1202 06:00:00 torch/distributed/elastic/multiprocessing/api.py:882] failed (exitcode: 2) local_rank: 0
Traceback (most recent call last):
  File "torch/distributed/run.py", line 922, in main
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
"""
    + "  frame\n" * 40
)


def test_the_trainer_s_own_config_error_is_the_cause_not_torchrun_s_traceback() -> None:
    assert cause_of(CONFIG_ERROR_UNDER_TORCHRUN).startswith("config error: out_dir:")


def test_the_trainer_s_own_error_is_blamed_over_a_killed_bystander() -> None:
    assert _first_cause([KILLED, CONFIG_ERROR_UNDER_TORCHRUN]) == 1


def test_a_plain_exception_line_is_the_cause_when_the_trainer_printed_none_of_its_own() -> None:
    assert cause_of(OWN_ERROR) == "ValueError: shard /lambda/nfs/sae/acts-17.npy has width 4095, expected 4096"


PEER_LOST_TRAINER_ERROR = BYSTANDER + "trainer error: RuntimeError: Connection closed by peer [127.77.0.3]:29581\n"


def test_a_bystander_s_own_error_line_about_a_lost_peer_is_not_the_cause() -> None:
    assert _first_cause([PEER_LOST_TRAINER_ERROR, KILLED]) == 1


def test_a_node_whose_trainer_died_without_a_word_is_blamed_over_the_peer_that_lost_it() -> None:
    assert _first_cause([BYSTANDER, "step 150/9000 | 41,000 vec/s\n"]) == 1

"""bench/sync_sites.py: which calls it counts as making the host wait, where it says they came from."""

import torch

from bench.grpo_profile import PHASES
from bench.sync_sites import SyncCounter, synchronising


def host_reads(x: torch.Tensor) -> None:
    x.sum().item()
    x.tolist()
    bool(x[0] > 1)
    x[x > 2]
    x.nonzero()
    x.repeat_interleave(torch.ones(x.numel(), dtype=torch.long))
    x.clone()[x > 4] = 0
    torch.where(x > 3)


def test_every_kind_of_host_read_is_counted_at_its_call_site():
    counter = SyncCounter()
    counter.on_cuda = False  # count host tensors: the CPU's view
    with counter:
        host_reads(torch.arange(6.0))
        torch.arange(6.0) + 1  # no read: not counted
        x = torch.arange(6.0)
        x.repeat_interleave(torch.ones(6, dtype=torch.long), output_size=6)  # sized ahead: no wait
        torch.where(x > 3, x, 0)  # elementwise: no wait
    summary = counter.summary(steps=1)
    assert summary["by_call"] == {
        "item": 1,
        "tolist": 1,
        "bool": 1,
        "boolean mask": 1,
        "nonzero": 1,
        "repeat_interleave": 1,
        "boolean mask set": 1,
        "where (one argument)": 1,
    }
    assert summary["syncs"] == 8
    assert {site["site"].split(":")[0] for site in summary["sites"]} == {"tests/test_sync_sites.py"}
    assert all(site["site"].endswith("host_reads") for site in summary["sites"])
    assert summary["by_phase"] == {"-": 8}


def test_on_cuda_only_device_tensors_and_blocking_copies_count():
    """Meta tensors stand in for GPU ones: on CUDA a read counts only from the device, and a copy only where it
    crosses between host and device and blocks; on a CPU no copy counts (every one is on the host)."""
    host, device = torch.arange(3.0), torch.empty(3, device="meta")
    to = torch.Tensor.to
    assert synchronising(torch.Tensor.item, (host[0],), {}, on_cuda=True) is None
    assert synchronising(torch.Tensor.item, (device[0],), {}, on_cuda=True) == "item"
    assert synchronising(torch.Tensor.item, (host[0],), {}, on_cuda=False) == "item"
    assert synchronising(to, (device, "cpu"), {}, on_cuda=True) == "to host"
    assert synchronising(to, (device, host), {}, on_cuda=True) == "to host"  # .to(another tensor)
    assert synchronising(to, (device,), {"device": torch.device("cpu")}, on_cuda=True) == "to host"
    assert synchronising(to, (host, "meta"), {}, on_cuda=True) == "to device"
    assert synchronising(torch.Tensor.copy_, (device, host), {}, on_cuda=True) == "to device"
    assert synchronising(to, (device, "cpu"), {"non_blocking": True}, on_cuda=True) is None
    assert synchronising(to, (device, torch.float16), {}, on_cuda=True) is None  # no move
    assert synchronising(to, (host, "cpu"), {}, on_cuda=True) is None
    assert synchronising(to, (device, "cpu"), {}, on_cuda=False) is None


def test_a_trl_phase_on_the_stack_names_the_phase():
    """The phase is the innermost TRL method of bench/grpo_profile.py's PHASES on the stack (a function compiled
    under a TRL file's name stands in for TRL's own)."""
    counter = SyncCounter()
    counter.on_cuda = False
    source = "def compute_loss(x):\n    return x.item()\n"
    namespace: dict = {}
    exec(compile(source, "/site-packages/trl/trainer/grpo_trainer.py", "exec"), namespace)
    with counter:
        namespace["compute_loss"](torch.tensor(1.0))
    (site,) = counter.summary(steps=1)["sites"]
    assert site["site"] == "trl/trainer/grpo_trainer.py:2 compute_loss"
    assert site["phase"] == PHASES["compute_loss"]


def test_a_window_covers_its_steps_and_closes_when_a_run_ends_inside_it(monkeypatch):
    """bench/grpo_profile.py's StepWindow, which the sync count and the profile share: open at the end of step
    ``start``, closed after ``steps`` more, or at the end of training if that comes first."""
    from types import SimpleNamespace

    from alphadrive_cli.training import callbacks
    from bench.grpo_profile import StepWindow

    class Recorded(StepWindow):
        def begin(self) -> None:
            self.began_at = self.step

        def end(self, steps: int, window_s: float) -> dict:
            return {"from": self.began_at, "to": self.step, "steps": steps}

    def run(window: Recorded, last_step: int) -> None:
        monkeypatch.setattr(callbacks, "EXTRA_CALLBACKS", [])
        window.install()
        (callback,) = callbacks.EXTRA_CALLBACKS
        for step in range(1, last_step + 1):
            window.step = step
            callback.on_step_end(None, SimpleNamespace(global_step=step), None)
        callback.on_train_end(None, SimpleNamespace(global_step=last_step), None)

    whole, cut, never = Recorded(start=2, steps=3), Recorded(start=2, steps=3), Recorded(start=9, steps=3)
    run(whole, last_step=8)
    run(cut, last_step=3)
    run(never, last_step=8)
    assert whole.result == {"from": 2, "to": 5, "steps": 3}
    assert cut.result == {"from": 2, "to": 3, "steps": 1}
    assert never.result is None


def test_graph_decoding_steps_run_outside_the_count(monkeypatch):
    """Compiled code guards on the torch-function modes: a decoding step run inside the counter would be compiled
    again, so SyncSites runs each one with the counter set aside (and counts what runs around them)."""
    from alphadrive_cli.models import graph_decoding
    from alphadrive_cli.training import callbacks
    from bench.sync_sites import SyncSites

    monkeypatch.setattr(callbacks, "EXTRA_CALLBACKS", [])
    monkeypatch.setattr(graph_decoding.Replay, "__call__", graph_decoding.Replay.__call__)  # restored after
    seen_modes = []
    step = graph_decoding.Replay(lambda: seen_modes.append(torch.overrides._get_current_function_mode()), False)
    window = SyncSites(start=0, steps=1)
    window.install()
    step()  # before the window: nothing to set aside
    window.open()
    step()
    torch.tensor(1.0).item()
    window.stop(steps=1)
    result = window.result
    assert seen_modes == [None, None]
    assert result["by_call"] == {"item": 1}

"""Whether this machine can remake a run bit for bit: every field the sums depend on, read from the file."""
import torch

from mnist_lab import machine


def made_here(**changes) -> dict:
    """A result as this machine would record it, with `changes` to the recorded machine."""
    r = {"run_id": "it1_seed0_00000000", "device_name": machine.cpu_name(), "torch": torch.__version__,
         "versions": {}, "recipe": {"lr": 0.01, "device": "cpu", "threads": 1,
                                    "cpu": torch.backends.cpu.get_cpu_capability()}}
    for key, value in changes.items():
        (r["recipe"] if key in ("cpu", "threads") else r)[key] = value
    return r


def test_the_same_machine_blocks_nothing():
    assert machine.remake_blockers(made_here()) == [] and machine.remake_reason(made_here()) == ""
    assert machine.remake_blockers(made_here(threads=3)) == []  # the remake uses the recorded threads
    assert machine.remake_blockers(made_here(), threads=1) == []


def test_each_difference_is_named():
    [why] = machine.remake_blockers(made_here(cpu="VSX"))
    assert why == f"vector instructions VSX there, {torch.backends.cpu.get_cpu_capability()} here"
    [why] = machine.remake_blockers(made_here(device_name="Some Other CPU"))
    assert why == f"CPU model 'Some Other CPU' there, {machine.cpu_name()!r} here"
    [why] = machine.remake_blockers(made_here(torch="1.0.0"))
    assert why == f"torch 1.0.0 there, {torch.__version__} here"
    [why] = machine.remake_blockers(made_here(), threads=4)
    assert why == "1 CPU thread(s) there, 4 here"
    [why] = machine.remake_blockers(made_here(versions={"keras_backend": "jax", "no_such_package_here": "1.2"}))
    assert why == "no_such_package_here 1.2 there, not installed here"
    both = machine.remake_reason(made_here(cpu="VSX", torch="1.0.0"))
    assert both.startswith("it1_seed0_00000000 cannot be remade bit for bit here: vector") and "; torch 1.0.0" in both


def test_a_file_without_a_cpu_model_cannot_promise_the_same_bits():
    [why] = machine.remake_blockers(made_here(device_name="x86_64"))
    assert "records no CPU model (only 'x86_64')" in why


def test_a_framework_version_is_read_from_its_distribution():
    """tensorflow comes as tensorflow-cpu: the module's name finds its distribution's version."""
    import numpy

    assert machine.remake_blockers(made_here(versions={"numpy": numpy.__version__})) == []


def test_the_method_is_the_recipe_without_the_machine():
    assert machine.method(made_here()["recipe"]) == {"lr": 0.01}

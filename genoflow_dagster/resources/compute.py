"""The `compute` resource: where heavy steps (alignment, calling) run.

Two runners, one interface (`ComputeRunner.run(context, task, arguments)`):
`in_process` (default) calls the task directly; `subprocess` runs it through Dagster Pipes
in a child process (`genoflow_dagster.compute_worker`): logs stream back into the run,
and a crash of the aligner cannot take the run worker down. The same Pipes protocol runs
the worker on ECS or Kubernetes once one machine is outgrown (a third runner with
PipesECSClient / PipesK8sClient in place of PipesSubprocessClient).
"""


import sys
from abc import ABC, abstractmethod
from typing import Any

import dagster as dg

from genoflow_dagster.tasks import run_task


class ComputeRunner(ABC):
    """Runs one named task (`tasks.run_task`) for an asset and returns the task's result."""

    @abstractmethod
    def run(self, context: dg.AssetExecutionContext, task: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """`arguments` are JSON-ready (paths already strings)."""


class InProcessRunner(ComputeRunner):
    """The task in the run worker's own process, logging into the run."""

    def run(self, context: dg.AssetExecutionContext, task: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return run_task(task, arguments, log=context.log.info)


class PipesSubprocessRunner(ComputeRunner):
    """The task in a child process through Dagster Pipes; its last custom message is the result."""

    def run(self, context: dg.AssetExecutionContext, task: str, arguments: dict[str, Any]) -> dict[str, Any]:
        invocation = dg.PipesSubprocessClient().run(
            command=[sys.executable, "-m", "genoflow_dagster.compute_worker"],
            context=context,
            extras={"task": task, "kwargs": arguments},
        )
        messages = invocation.get_custom_messages()
        if not messages:
            raise dg.Failure(description=f"compute worker for {task} reported no result")
        return messages[-1]


RUNNERS: dict[str, ComputeRunner] = {"in_process": InProcessRunner(), "subprocess": PipesSubprocessRunner()}


class Compute(dg.ConfigurableResource):
    mode: str = "in_process"  # "in_process" | "subprocess"

    def run(self, context: dg.AssetExecutionContext, task: str, **kwargs: Any) -> dict[str, Any]:
        arguments = {k: (str(v) if v is not None and not isinstance(v, int | float | bool) else v)
                     for k, v in kwargs.items()}
        runner = RUNNERS.get(self.mode)
        if runner is None:
            raise ValueError(f"compute mode must be 'in_process' or 'subprocess', not {self.mode!r}")
        return runner.run(context, task, arguments)

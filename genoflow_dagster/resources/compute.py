"""The `compute` resource: where heavy steps (alignment, calling) run.

`in_process` (default) calls the task directly. `subprocess` runs it through
Dagster Pipes in a child process (`genoflow_dagster.compute_worker`): logs stream
back into the run, and a crash of the aligner cannot take the run worker down.
The same Pipes protocol runs the worker on ECS or Kubernetes once one machine
is outgrown (swap PipesSubprocessClient for PipesECSClient / PipesK8sClient).
"""


import sys
from typing import Any

import dagster as dg

from genoflow_dagster.tasks import run_task


class Compute(dg.ConfigurableResource):
    mode: str = "in_process"  # "in_process" | "subprocess"

    def run(self, context: dg.AssetExecutionContext, task: str, **kwargs: Any) -> dict[str, Any]:
        arguments = {k: (str(v) if v is not None and not isinstance(v, int | float | bool) else v)
                     for k, v in kwargs.items()}
        if self.mode == "in_process":
            return run_task(task, arguments, log=context.log.info)
        if self.mode != "subprocess":
            raise ValueError(f"compute mode must be 'in_process' or 'subprocess', not {self.mode!r}")
        invocation = dg.PipesSubprocessClient().run(
            command=[sys.executable, "-m", "genoflow_dagster.compute_worker"],
            context=context,
            extras={"task": task, "kwargs": arguments},
        )
        messages = invocation.get_custom_messages()
        if not messages:
            raise dg.Failure(description=f"compute worker for {task} reported no result")
        return messages[-1]

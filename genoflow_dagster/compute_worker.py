"""The far side of the `compute` resource: runs one heavy task under Dagster Pipes.

Started as `python -m genoflow_dagster.compute_worker` by PipesSubprocessClient
(locally; the same protocol runs it in a container on ECS or Kubernetes). It
imports `dagster_pipes` only, never `dagster`, reads the task and its JSON
arguments from the Pipes extras, streams progress to the run's logs, and reports
the task's result as a custom message.
"""

from __future__ import annotations

from dagster_pipes import open_dagster_pipes

from genoflow_dagster.tasks import run_task


def main() -> None:
    with open_dagster_pipes() as pipes:
        task = pipes.get_extra("task")
        kwargs = pipes.get_extra("kwargs")
        pipes.log.info(f"compute worker: starting {task}")
        result = run_task(task, kwargs, log=pipes.log.info)
        pipes.report_custom_message(result)


if __name__ == "__main__":
    main()

"""The `ai` resource: who writes the report's narrative. Offline by default, OpenAI or Anthropic by choice.

The resource holds the configuration the UI shows and picks a writer by name; the writers and the one
path every narrative takes (de-identification first, cache, timing, price, offline fallback) are plain
Python in `reports/narrative_writers.py`.
"""


from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from genoflow_dagster.reports.narrative_writers import Narrative, NarrativeWriter, narrative_writer, write_narrative

__all__ = ["AIProvider", "Narrative"]


class AIProvider(dg.ConfigurableResource):
    provider: str = "offline"  # offline | openai | anthropic
    model: str | None = None
    base_url: str | None = None  # an OpenAI/Anthropic-compatible server (e.g. a local one)
    api_key: str | None = None  # bound with dg.EnvVar; never a literal
    timeout_s: float = 30.0
    max_retries: int = 2
    cache_dir: str | None = None

    _writer: NarrativeWriter | None = PrivateAttr(default=None)  # keeps its SDK client between reports

    def narrate(self, summary: dict[str, Any]) -> Narrative:
        if self._writer is None:
            self._writer = narrative_writer(self.provider, model=self.model, base_url=self.base_url,
                                            api_key=self.api_key, timeout_s=self.timeout_s,
                                            max_retries=self.max_retries)
        return write_narrative(self._writer, summary, configured_model=self.model, cache_dir=self.cache_dir,
                               warn=dg.get_dagster_logger("genoflow.ai").warning)

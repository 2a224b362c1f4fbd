"""The `ai` resource: who writes the report's narrative. Offline by default, OpenAI or Anthropic by choice.

Whatever the provider, the input first goes through `deidentify_summary`.
Answers are cached on disk by prompt hash, calls are timed and retried, and
tokens and cost are returned for the asset's metadata. If the provider fails
after its retries, the offline narrative is used and the report says so.
"""


import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from genoflow_dagster.reports.narrative import build_prompt, deidentify_summary, offline_narrative

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}
# USD per million tokens (input, output); unknown models report no cost rather than a wrong one.
PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.5, 10.0), "claude-3-5-haiku-latest": (0.8, 4.0)}


@dataclass
class Narrative:
    text: str
    provider: str
    model: str | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    cached: bool = False
    prompt_sha256: str | None = None


class AIProvider(dg.ConfigurableResource):
    provider: str = "offline"  # offline | openai | anthropic
    model: str | None = None
    base_url: str | None = None  # an OpenAI/Anthropic-compatible server (e.g. a local one)
    api_key: str | None = None  # bound with dg.EnvVar; never a literal
    timeout_s: float = 30.0
    max_retries: int = 2
    cache_dir: str | None = None

    _client: Any = PrivateAttr(default=None)

    def narrate(self, summary: dict[str, Any]) -> Narrative:
        deidentified = deidentify_summary(summary)
        system, user = build_prompt(deidentified)
        prompt_sha = hashlib.sha256(f"{self.provider}\n{self.model}\n{system}\n{user}".encode()).hexdigest()
        if self.provider == "offline":
            return Narrative(offline_narrative(deidentified), "offline", None, prompt_sha256=prompt_sha,
                             latency_s=0.0)
        if self.provider not in DEFAULT_MODELS:
            raise ValueError(f"unknown AI provider {self.provider!r}: use offline, openai or anthropic")
        cached = self._cache_get(prompt_sha)
        if cached is not None:
            return cached
        model = self.model or DEFAULT_MODELS[self.provider]
        started = time.monotonic()
        try:
            text, tokens_in, tokens_out = self._call(model, system, user)
        except Exception as exc:  # the report must render; say what happened
            dg.get_dagster_logger("genoflow.ai").warning(
                f"{self.provider} narrative failed ({type(exc).__name__}: {exc}); using the offline narrative")
            return Narrative(offline_narrative(deidentified), f"offline (fallback: {type(exc).__name__})", None,
                             prompt_sha256=prompt_sha, latency_s=round(time.monotonic() - started, 3))
        price = PRICES.get(model)
        cost = None if price is None or tokens_in is None or tokens_out is None else round(
            (tokens_in * price[0] + tokens_out * price[1]) / 1e6, 6)
        narrative = Narrative(text.strip(), self.provider, model, tokens_in, tokens_out, cost,
                              round(time.monotonic() - started, 3), False, prompt_sha)
        self._cache_put(prompt_sha, narrative)
        return narrative

    def _call(self, model: str, system: str, user: str) -> tuple[str, int | None, int | None]:
        if self.provider == "openai":
            import openai

            if self._client is None:
                self._client = openai.OpenAI(api_key=self.api_key or "unset", base_url=self.base_url,
                                             timeout=self.timeout_s, max_retries=self.max_retries)
            response = self._client.chat.completions.create(
                model=model, temperature=0, max_tokens=400,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            )
            usage = response.usage
            return (response.choices[0].message.content or "", getattr(usage, "prompt_tokens", None),
                    getattr(usage, "completion_tokens", None))
        import anthropic

        if self._client is None:
            self._client = anthropic.Anthropic(api_key=self.api_key or "unset", base_url=self.base_url,
                                               timeout=self.timeout_s, max_retries=self.max_retries)
        response = self._client.messages.create(
            model=model, max_tokens=400, system=system,
            messages=[{"role": "user", "content": user}],
        )
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return text, response.usage.input_tokens, response.usage.output_tokens

    def _cache_path(self, prompt_sha: str) -> Path | None:
        return Path(self.cache_dir) / f"{prompt_sha}.json" if self.cache_dir else None

    def _cache_get(self, prompt_sha: str) -> Narrative | None:
        path = self._cache_path(prompt_sha)
        if path is None or not path.is_file():
            return None
        data = json.loads(path.read_text())
        return Narrative(**{**data, "cached": True})

    def _cache_put(self, prompt_sha: str, narrative: Narrative) -> None:
        path = self._cache_path(prompt_sha)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(narrative)))
        tmp.replace(path)

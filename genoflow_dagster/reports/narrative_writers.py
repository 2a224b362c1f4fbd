"""Who writes a report's narrative: one `NarrativeWriter` interface, one small class per provider.

`OfflineWriter` writes the deterministic text from the aggregates themselves; `OpenAIWriter` and
`AnthropicWriter` ask a model through the vendor's SDK (created on first use, never at import).
Each provider class knows three things only: how to call, how it counts tokens, what a token costs.

`write_narrative` is the one path every report takes, whatever the writer: the summary is
de-identified first (`deidentify_summary`, before any provider sees it); a remote writer's answer is
cached on disk by prompt hash, timed, and priced; if the provider still fails after the SDK's own
retries, the offline narrative is used and the provider field says so. Plain Python: the `ai`
resource (resources/ai.py) only picks a writer by name and passes its configuration on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from genoflow_dagster.reports.narrative import build_prompt, deidentify_summary, offline_narrative


@dataclass
class Narrative:
    """The narrative a report shows, with what it cost (stored in the report asset's metadata)."""

    text: str
    provider: str
    model: str | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    cached: bool = False
    prompt_sha256: str | None = None


@dataclass(frozen=True)
class Completion:
    """A provider's answer: the text and the tokens it counted (None where the provider does not say)."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


class NarrativeWriter(ABC):
    """One way of writing the narrative from de-identified aggregates."""

    name: ClassVar[str]
    # A remote writer calls a service: its answers are cached and timed, and a failure falls back to offline.
    remote: ClassVar[bool] = True

    @abstractmethod
    def write(self, deidentified: dict[str, Any], system: str, user: str) -> Completion:
        """The narrative for these aggregates (already de-identified) and the prompt built from them."""

    def model_name(self) -> str | None:
        """The model that writes (None for the offline writer)."""
        return None

    def cost_usd(self, completion: Completion) -> float | None:
        """What the answer cost in US dollars; None when the price or the token counts are unknown."""
        return None


class OfflineWriter(NarrativeWriter):
    """The deterministic narrative from the aggregates: no network, no model, the same text every time."""

    name = "offline"
    remote = False

    def write(self, deidentified: dict[str, Any], system: str, user: str) -> Completion:
        return Completion(offline_narrative(deidentified))


class _SDKWriter(NarrativeWriter):
    """A vendor SDK's client, created on first use and kept for the writer's life."""

    default_model: ClassVar[str]
    # USD per million tokens (input, output); a model not listed reports no cost rather than a wrong one.
    prices: ClassVar[dict[str, tuple[float, float]]] = {}
    max_tokens: ClassVar[int] = 400

    def __init__(self, *, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 30.0, max_retries: int = 2) -> None:
        self.model = model or self.default_model
        self.base_url = base_url
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._client: Any = None

    def model_name(self) -> str | None:
        return self.model

    def cost_usd(self, completion: Completion) -> float | None:
        price = self.prices.get(self.model)
        if price is None or completion.input_tokens is None or completion.output_tokens is None:
            return None
        return round((completion.input_tokens * price[0] + completion.output_tokens * price[1]) / 1e6, 6)

    def _sdk_client(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    @abstractmethod
    def _new_client(self) -> Any:
        """The SDK client (the SDK retries transient errors `max_retries` times within `timeout_s` each)."""


class OpenAIWriter(_SDKWriter):
    """OpenAI's chat completions API (or a server speaking it, at `base_url`)."""

    name = "openai"
    default_model = "gpt-4o-mini"
    prices = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.5, 10.0)}

    def _new_client(self) -> Any:
        import openai

        return openai.OpenAI(api_key=self.api_key or "unset", base_url=self.base_url, timeout=self.timeout_s,
                             max_retries=self.max_retries)

    def write(self, deidentified: dict[str, Any], system: str, user: str) -> Completion:
        response = self._sdk_client().chat.completions.create(
            model=self.model, temperature=0, max_tokens=self.max_tokens,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        )
        usage = response.usage  # prompt and completion tokens, when the server reports them
        return Completion(response.choices[0].message.content or "", getattr(usage, "prompt_tokens", None),
                          getattr(usage, "completion_tokens", None))


class AnthropicWriter(_SDKWriter):
    """Anthropic's messages API (or a server speaking it, at `base_url`)."""

    name = "anthropic"
    default_model = "claude-3-5-haiku-latest"
    prices = {"claude-3-5-haiku-latest": (0.8, 4.0)}

    def _new_client(self) -> Any:
        import anthropic

        return anthropic.Anthropic(api_key=self.api_key or "unset", base_url=self.base_url,
                                   timeout=self.timeout_s, max_retries=self.max_retries)

    def write(self, deidentified: dict[str, Any], system: str, user: str) -> Completion:
        response = self._sdk_client().messages.create(
            model=self.model, max_tokens=self.max_tokens, system=system,
            messages=[{"role": "user", "content": user}],
        )
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return Completion(text, response.usage.input_tokens, response.usage.output_tokens)


WRITERS: dict[str, type[NarrativeWriter]] = {w.name: w for w in (OfflineWriter, OpenAIWriter, AnthropicWriter)}


def narrative_writer(provider: str, *, model: str | None = None, base_url: str | None = None,
                     api_key: str | None = None, timeout_s: float = 30.0, max_retries: int = 2) -> NarrativeWriter:
    """The writer named `provider` (offline, openai or anthropic), configured; ValueError for another name."""
    writer = WRITERS.get(provider)
    if writer is None:
        raise ValueError(f"unknown AI provider {provider!r}: use offline, openai or anthropic")
    if issubclass(writer, _SDKWriter):
        return writer(model=model, base_url=base_url, api_key=api_key, timeout_s=timeout_s,
                      max_retries=max_retries)
    return writer()


def write_narrative(writer: NarrativeWriter, summary: dict[str, Any], *, configured_model: str | None = None,
                    cache_dir: str | Path | None = None, warn: Callable[[str], None] | None = None) -> Narrative:
    """The report's narrative from a sample's summary, by `writer`, de-identified first.

    `configured_model` is the model as configured (None for the provider's default): it is part of the
    prompt hash, so a cached answer is reused only for the same provider, setting and prompt. `warn`
    receives the one line that says a provider failed and the offline narrative stands in (default: the
    `genoflow.ai` logger).
    """
    deidentified = deidentify_summary(summary)
    system, user = build_prompt(deidentified)
    prompt_sha = hashlib.sha256(f"{writer.name}\n{configured_model}\n{system}\n{user}".encode()).hexdigest()
    if not writer.remote:
        return Narrative(writer.write(deidentified, system, user).text, writer.name, writer.model_name(),
                         prompt_sha256=prompt_sha, latency_s=0.0)
    cache = _NarrativeCache(cache_dir)
    cached = cache.get(prompt_sha)
    if cached is not None:
        return cached
    started = time.monotonic()
    try:
        completion = writer.write(deidentified, system, user)
    except Exception as exc:  # the report must render; say what happened
        (warn or logging.getLogger("genoflow.ai").warning)(
            f"{writer.name} narrative failed ({type(exc).__name__}: {exc}); using the offline narrative")
        return Narrative(offline_narrative(deidentified), f"offline (fallback: {type(exc).__name__})", None,
                         prompt_sha256=prompt_sha, latency_s=round(time.monotonic() - started, 3))
    narrative = Narrative(completion.text.strip(), writer.name, writer.model_name(), completion.input_tokens,
                          completion.output_tokens, writer.cost_usd(completion), round(time.monotonic() - started, 3),
                          False, prompt_sha)
    cache.put(prompt_sha, narrative)
    return narrative


class _NarrativeCache:
    """Answers on disk by prompt hash (one JSON file each, written atomically); no directory, no cache."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None

    def _path(self, prompt_sha: str) -> Path | None:
        return self.directory / f"{prompt_sha}.json" if self.directory else None

    def get(self, prompt_sha: str) -> Narrative | None:
        path = self._path(prompt_sha)
        if path is None or not path.is_file():
            return None
        data = json.loads(path.read_text())
        return Narrative(**{**data, "cached": True})

    def put(self, prompt_sha: str, narrative: Narrative) -> None:
        path = self._path(prompt_sha)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(narrative)))
        tmp.replace(path)

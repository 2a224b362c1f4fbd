"""The `ai` resource drives the real OpenAI and Anthropic SDKs against a local wire-format server."""

import json

import pytest

from genoflow_dagster.reports.narrative import deidentify_summary
from genoflow_dagster.reports.narrative_writers import WRITERS, Completion, NarrativeWriter, narrative_writer
from genoflow_dagster.resources.ai import AIProvider
from tests.fake_llm_server import FakeLLMServer

SUMMARY = {
    "sample_id": "PATIENT_12345",
    "path": "/labs/site-a/PATIENT_12345_R1.fastq.gz",
    "qc_status": "warn",
    "qc_profile": "standard",
    "qc_failing_modules": [],
    "qc_warning_modules": ["per sequence GC content", "PATIENT_12345 custom note"],
    "total_reads": 42_000,
    "q30_percent": 93.456,
    "mapped_percent": 99.9,
    "mean_depth": 30.1,
    "variants_total": 22,
    "variants_ts_tv": 2.2,
    "read_names": ["PATIENT_12345:1:2"],
}


def _leaks(requests) -> bool:
    dumped = json.dumps([r["body"] for r in requests])
    return "PATIENT_12345" in dumped or "/labs/" in dumped or "fastq" in dumped


def test_deidentify_keeps_only_allow_listed_aggregates():
    clean = deidentify_summary(SUMMARY)
    assert "sample_id" not in clean and "path" not in clean and "read_names" not in clean
    assert clean["qc_warning_modules"] == ["per sequence GC content"]
    assert clean["q30_percent"] == 93.46 and clean["total_reads"] == 42_000


def test_offline_is_deterministic_and_names_itself():
    provider = AIProvider()
    first, second = provider.narrate(SUMMARY), provider.narrate(SUMMARY)
    assert first.text == second.text and first.provider == "offline"
    assert "42,000 reads" in first.text and "PATIENT" not in first.text


@pytest.mark.parametrize(("kind", "path", "text", "tokens"), [
    ("openai", "/v1/chat/completions", "OpenAI-style narrative.", (120, 30)),
    ("anthropic", "/v1/messages", "Anthropic-style narrative.", (110, 25)),
])
def test_sdk_providers_send_only_deidentified_metrics(kind, path, text, tokens, tmp_path):
    with FakeLLMServer() as server:
        base = server.url + "/v1" if kind == "openai" else server.url
        provider = AIProvider(provider=kind, base_url=base, api_key="test-key", cache_dir=str(tmp_path))
        narrative = provider.narrate(SUMMARY)
        assert narrative.text == text and narrative.provider == kind
        assert (narrative.input_tokens, narrative.output_tokens) == tokens
        assert narrative.cost_usd is not None and narrative.latency_s is not None
        assert [r["path"] for r in server.requests] == [path]
        assert not _leaks(server.requests)
        # cached: a second identical call makes no request
        again = provider.narrate(SUMMARY)
        assert again.cached and again.text == text and len(server.requests) == 1


def test_a_transient_500_is_retried(tmp_path):
    with FakeLLMServer() as server:
        server.fail_next = 1
        provider = AIProvider(provider="openai", base_url=server.url + "/v1", api_key="k", max_retries=2)
        narrative = provider.narrate(SUMMARY)
        assert narrative.provider == "openai" and len(server.requests) == 2


def test_a_dead_provider_falls_back_to_offline():
    with FakeLLMServer() as server:
        server.always_fail = True
        provider = AIProvider(provider="anthropic", base_url=server.url, api_key="k", max_retries=1, timeout_s=5)
        narrative = provider.narrate(SUMMARY)
        assert narrative.provider.startswith("offline (fallback:")
        assert "42,000 reads" in narrative.text


def test_each_provider_is_a_narrative_writer_chosen_by_name():
    chosen = {name: narrative_writer(name) for name in WRITERS}
    assert {name: type(w).__name__ for name, w in chosen.items()} == {
        "offline": "OfflineWriter", "openai": "OpenAIWriter", "anthropic": "AnthropicWriter"}
    assert all(isinstance(w, NarrativeWriter) for w in chosen.values())
    assert (chosen["openai"].model_name(), chosen["anthropic"].model_name()) == ("gpt-4o-mini",
                                                                               "claude-3-5-haiku-latest")
    with pytest.raises(ValueError, match="unknown AI provider 'gemini': use offline, openai or anthropic"):
        AIProvider(provider="gemini").narrate(SUMMARY)
    assert narrative_writer("openai", model="gpt-4o").cost_usd(Completion("x", 1_000_000, 1_000_000)) == 12.5
    assert narrative_writer("anthropic", model="a-new-model").cost_usd(Completion("x", 10, 10)) is None, \
        "an unknown price is no cost, not a wrong one"

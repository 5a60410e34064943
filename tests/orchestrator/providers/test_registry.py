"""``FIRSTMATE_LLM`` parsing, each provider built from the environment (through ``Settings``)
and answering one call from the local fake API, and the shared HTTP error mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from orchestrator.config import Settings
from orchestrator.providers.base import LLMRequest, Message, Provider
from orchestrator.providers.errors import (
    AuthFailed,
    LLMNotConfigured,
    RateLimited,
    Refused,
    Unavailable,
)
from orchestrator.providers.registry import (
    PROVIDERS,
    build_provider,
    error_for_status,
    parse_llm,
    retry_after_s,
)
from tests.llm_api import LLMAPI

# Everything a provider (or its SDK, or boto3) might read: each test starts from none.
_VARIABLES = (
    "FIRSTMATE_LLM",
    "FIRSTMATE_LLM_TIMEOUT_S",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "FIRSTMATE_OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "FIRSTMATE_ANTHROPIC_BASE_URL",
    "ANTHROPIC_PROFILE",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "AZURE_OPENAI_ENDPOINT",
    "FIRSTMATE_AZURE_BASE_URL",
    "OPENAI_API_VERSION",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_BEARER_TOKEN_BEDROCK",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "FIRSTMATE_BEDROCK_BASE_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "GEMINI_API_KEY",
    "FIRSTMATE_GEMINI_BASE_URL",
    "MISTRAL_API_KEY",
    "FIRSTMATE_MISTRAL_BASE_URL",
    "OPENROUTER_API_KEY",
    "FIRSTMATE_OPENROUTER_BASE_URL",
)

Env = Callable[..., Settings]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Env:
    """Set these variables (and no other provider's) and read ``Settings`` from them."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))  # no ~/.aws
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def settings(**variables: str) -> Settings:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return Settings()

    return settings


@pytest.fixture
def api() -> Iterator[LLMAPI]:
    with LLMAPI() as server:
        yield server


def one_call(settings: Settings) -> str:
    """Build ``FIRSTMATE_LLM``'s provider, make one call, and return the answer."""
    name, model = parse_llm(settings.llm or "")
    provider = build_provider(settings, name)
    try:
        assert provider.name == name
        request = LLMRequest(model=model, messages=(Message("user", "ping"),), system="Be brief.")
        return provider.complete(request, timeout_s=5).text
    finally:
        provider.close()


# -- FIRSTMATE_LLM ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("openai:llama3.1:8b", ("openai", "llama3.1:8b")),
        (
            "bedrock:anthropic.claude-sonnet-4-5-v1:0",
            ("bedrock", "anthropic.claude-sonnet-4-5-v1:0"),
        ),
        (" anthropic:claude-sonnet-4-5 ", ("anthropic", "claude-sonnet-4-5")),
    ],
)
def test_parse_llm_splits_at_the_first_colon(spec: str, expected: tuple[str, str]) -> None:
    assert parse_llm(spec) == expected


@pytest.mark.parametrize("spec", ["", "gpt-4o", "openai:", "openai: ", "ollama:llama3", ":gpt-4o"])
def test_a_bad_spec_names_the_variable_and_lists_the_providers(spec: str) -> None:
    with pytest.raises(LLMNotConfigured, match="FIRSTMATE_LLM") as caught:
        parse_llm(spec)

    assert all(name in str(caught.value) for name in PROVIDERS)


def test_an_unknown_provider_cannot_be_built(env: Env) -> None:
    with pytest.raises(LLMNotConfigured, match=r"'cohere'.*FIRSTMATE_LLM"):
        build_provider(env(), "cohere")


# -- each provider from the environment, one call each -------------------------------


def test_openai_with_its_key_and_base_url(env: Env) -> None:
    with LLMAPI(api_key="sk-openai") as api:
        settings = env(
            FIRSTMATE_LLM="openai:gpt-4o-mini",
            OPENAI_API_KEY="sk-openai",
            OPENAI_BASE_URL=api.openai_url,
        )
        assert one_call(settings) == "echo: ping"

    assert api.last.path == "/v1/chat/completions"
    assert api.last.headers["authorization"] == "Bearer sk-openai"


def test_a_local_server_needs_no_key(env: Env, api: LLMAPI) -> None:
    settings = env(FIRSTMATE_LLM="openai:llama3.1:8b", OPENAI_BASE_URL=api.openai_url)

    assert one_call(settings) == "echo: ping"
    assert api.last.model == "llama3.1:8b"
    assert api.last.headers["authorization"].startswith("Bearer ")  # a placeholder key
    assert api.last.body["max_tokens"] == 2048  # what Ollama, vLLM and llama.cpp read


def test_azure_from_its_endpoint_key_and_api_version(env: Env) -> None:
    with LLMAPI(api_key="az-key") as api:
        settings = env(
            FIRSTMATE_LLM="azure:prod-gpt4o",
            AZURE_OPENAI_API_KEY="az-key",
            AZURE_OPENAI_ENDPOINT=api.url,
            OPENAI_API_VERSION="2024-10-21",
        )
        assert one_call(settings) == "echo: ping"

    assert api.last.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert api.last.query["api-version"] == "2024-10-21"
    assert api.last.headers["api-key"] == "az-key"


def test_anthropic_with_its_key_and_base_url(env: Env) -> None:
    with LLMAPI(api_key="sk-ant") as api:
        settings = env(
            FIRSTMATE_LLM="anthropic:claude-sonnet-5",
            ANTHROPIC_API_KEY="sk-ant",
            ANTHROPIC_BASE_URL=api.url,
        )
        assert one_call(settings) == "echo: ping"

    assert (api.last.path, api.last.model) == ("/v1/messages", "claude-sonnet-5")
    assert api.last.headers["authorization"] == "Bearer sk-ant"


def test_bedrock_with_aws_keys_and_a_base_url_override(env: Env) -> None:
    with LLMAPI(api_key="AKIDENV") as api:
        settings = env(
            FIRSTMATE_LLM="bedrock:anthropic.claude-sonnet-4-5-v1:0",
            AWS_REGION="us-east-2",
            AWS_ACCESS_KEY_ID="AKIDENV",
            AWS_SECRET_ACCESS_KEY="secret",
            FIRSTMATE_BEDROCK_BASE_URL=api.url,
        )
        assert one_call(settings) == "echo: ping"

    assert api.last.path == "/model/anthropic.claude-sonnet-4-5-v1:0/invoke"
    assert "/us-east-2/bedrock/aws4_request" in api.last.headers["authorization"]


def test_bedrock_with_the_aws_credentials_file(env: Env, tmp_path: Path) -> None:
    (tmp_path / "aws-credentials").write_text(
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = secret\n"
    )
    with LLMAPI(api_key="AKIDFILE") as api:
        settings = env(
            FIRSTMATE_LLM="bedrock:anthropic.claude-haiku-4-5-v1:0",
            AWS_REGION="eu-central-1",
            FIRSTMATE_BEDROCK_BASE_URL=api.url,
        )
        assert one_call(settings) == "echo: ping"

    assert api.last.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFILE/")


@pytest.mark.parametrize("provider", ["gemini", "mistral", "openrouter"])
def test_openai_compatible_providers_with_their_own_key(env: Env, provider: str) -> None:
    key = f"{provider}-key"
    with LLMAPI(api_key=key) as api:
        settings = env(
            FIRSTMATE_LLM=f"{provider}:some-model",
            **{f"{provider.upper()}_API_KEY": key},
            **{f"FIRSTMATE_{provider.upper()}_BASE_URL": api.openai_url},
        )
        assert one_call(settings) == "echo: ping"

    assert (api.last.path, api.last.model) == ("/v1/chat/completions", "some-model")
    assert api.last.headers["authorization"] == f"Bearer {key}"


def test_the_default_endpoints_of_the_compatible_providers(env: Env) -> None:
    settings = env()

    assert settings.gemini_base_url.startswith("https://generativelanguage.googleapis.com/")
    assert settings.mistral_base_url == "https://api.mistral.ai/v1"
    assert settings.openrouter_base_url == "https://openrouter.ai/api/v1"


# -- a missing variable is named, when the provider is built --------------------------


@pytest.mark.parametrize(
    ("spec", "variables", "missing"),
    [
        ("openai:gpt-4o-mini", {}, "OPENAI_API_KEY"),
        (
            "anthropic:claude-sonnet-4-5",
            {"ANTHROPIC_BASE_URL": "http://proxy"},
            "ANTHROPIC_API_KEY",
        ),
        (
            "azure:prod",
            {"AZURE_OPENAI_ENDPOINT": "https://x", "OPENAI_API_VERSION": "v"},
            "AZURE_OPENAI_API_KEY",
        ),
        (
            "azure:prod",
            {"AZURE_OPENAI_API_KEY": "k", "OPENAI_API_VERSION": "v"},
            "AZURE_OPENAI_ENDPOINT",
        ),
        (
            "azure:prod",
            {"AZURE_OPENAI_API_KEY": "k", "AZURE_OPENAI_ENDPOINT": "https://x"},
            "OPENAI_API_VERSION",
        ),
        (
            "bedrock:anthropic.claude-v1:0",
            {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"},
            "AWS_REGION",
        ),
        (
            "bedrock:anthropic.claude-v1:0",
            {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKID"},
            "AWS_SECRET_ACCESS_KEY",
        ),
        ("bedrock:anthropic.claude-v1:0", {"AWS_REGION": "us-east-1"}, "AWS_ACCESS_KEY_ID"),
        ("gemini:gemini-2.5-flash", {}, "GEMINI_API_KEY"),
        ("mistral:mistral-large-latest", {}, "MISTRAL_API_KEY"),
        ("openrouter:openai/gpt-4o", {"OPENAI_API_KEY": "not-this-one"}, "OPENROUTER_API_KEY"),
    ],
)
def test_a_missing_credential_is_named_with_the_setting_that_needs_it(
    env: Env, spec: str, variables: dict[str, str], missing: str
) -> None:
    settings = env(FIRSTMATE_LLM=spec, **variables)

    with pytest.raises(LLMNotConfigured, match=missing) as caught:
        build_provider(settings, parse_llm(spec)[0])

    assert f"(needed by FIRSTMATE_LLM={spec})" in str(caught.value)


def test_the_message_names_the_provider_when_firstmate_llm_names_another(env: Env) -> None:
    with pytest.raises(
        LLMNotConfigured,
        match=r"ANTHROPIC_API_KEY is not set \(needed by FIRSTMATE_LLM=anthropic:…\)",
    ):
        build_provider(env(FIRSTMATE_LLM="openai:gpt-4o"), "anthropic")


# -- what an HTTP error answer means ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RateLimited),
        (401, AuthFailed),
        (403, AuthFailed),
        (400, Refused),
        (404, Refused),
        (413, Refused),
        (422, Refused),
        (408, Unavailable),
        (409, Unavailable),
        (500, Unavailable),
        (503, Unavailable),
        (529, Unavailable),
    ],
)
def test_each_status_maps_onto_the_error_tree(status: int, kind: type[Exception]) -> None:
    translated = error_for_status(status, "nope", {}, provider="openai")

    assert type(translated) is kind
    assert f"openai answered {status}: nope" in str(translated)


def test_retry_after_in_seconds_milliseconds_or_an_http_date() -> None:
    now = 1_800_000_000.0

    assert retry_after_s({"Retry-After": "7"}) == 7.0
    assert retry_after_s({"retry-after": "1.5"}) == 1.5
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": formatdate(now + 30, usegmt=True)}, now=now) == 30.0
    assert retry_after_s({"retry-after": formatdate(now - 30, usegmt=True)}, now=now) == 0.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({"retry-after": "inf"}) is None
    assert retry_after_s({}) is None


def test_a_rate_limit_carries_its_retry_after() -> None:
    limited = error_for_status(429, "slow down", {"retry-after-ms": "1200"}, provider="anthropic")

    assert isinstance(limited, RateLimited)
    assert limited.retryable and limited.retry_after_s == 1.2


def test_a_built_provider_is_a_provider(env: Env, api: LLMAPI) -> None:
    built: Provider = build_provider(env(OPENAI_BASE_URL=api.openai_url), "openai")
    try:
        assert built.name == "openai"
    finally:
        built.close()

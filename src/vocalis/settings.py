"""Server settings: defaults of contract §1, overridable by ``VOCALIS_*`` variables or a TOML file.

The TOML file is named by ``VOCALIS_CONFIG``; environment variables win over the file.
List settings take JSON in the environment (``VOCALIS_API_KEYS='["k1","k2"]'``) or a
comma-separated string (``VOCALIS_API_KEYS=k1,k2``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_SYSTEM_PROMPT = "You are a helpful voice assistant. Keep answers short and conversational."

DEFAULT_BACKCHANNEL_WORDS = [
    "uh-huh",
    "uh huh",
    "uhhuh",
    "yeah",
    "yep",
    "okay",
    "ok",
    "mm-hmm",
    "mm hmm",
    "mhm",
    "mm",
    "hmm",
    "right",
]

ProviderChoice = Literal["embedded", "fake"]


class Settings(BaseSettings):
    """Everything an operator can set. Names follow contract §1; defaults are normative."""

    model_config = SettingsConfigDict(
        env_prefix="VOCALIS_", extra="ignore", env_parse_none_str="null"
    )

    host: str = "127.0.0.1"
    port: int = 8000
    providers: ProviderChoice = "embedded"
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".local/share/vocalis")
    log_level: str = "info"
    # JSON lines (true) or readable text (false); unset = text on a terminal, JSON otherwise
    log_json: bool | None = None

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_max_session_duration_seconds: int = 10800
    resume_grace_seconds: float = 30
    idle_timeout_seconds: float = 0
    legacy_ready_timeout_seconds: float = 3
    first_message_timeout_seconds: float = 15
    # Sessions at once (attached or detached); 0 = unlimited. Unset: the provider stack's
    # measured budget (embedded on 2 cores: see bench/RESULTS.md; fake/external: unlimited).
    max_sessions: int | None = None
    # A new session is refused (at_capacity) while the model workers' oldest waiting job has
    # waited longer than this; 0 = never refuse on load.
    admission_max_lag_seconds: float = Field(default=1.0, ge=0)
    input_audio_max_ahead_ms: int = 2000
    output_chunk_ms: int = Field(default=20, ge=10, le=100)
    output_lead_ms: int = 200
    # A client that falls this far behind real-time playout (reply audio queued beyond the lead)
    # is disconnected with close 1008; its session stays resumable. Bounds memory per connection.
    outbox_max_audio_ms: int = Field(default=5000, ge=100)
    speech_start_ms: int = 100
    # time min/max_silence from where the voice faded, up to this much before the VAD's last
    # speech frame (0: from that frame; trade-off measured in session/turns.py TurnRules)
    turn_quiet_backdate_ms: int = Field(default=0, ge=0, le=500)
    backchannel_window_ms: int = 800
    backchannel_words: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_BACKCHANNEL_WORDS)
    )
    default_voice: str = "ivy"
    default_system_prompt: str = DEFAULT_SYSTEM_PROMPT
    recording: bool = False
    session_retention_days: int = 30
    ping_interval_seconds: float = 20
    ping_timeout_seconds: float = 20
    reply_max_tokens: int = 160  # caps a spoken reply's length
    # spoken when an interactive tool call leaves a reply silent (e.g. "One moment."); "" = none
    tool_transition_phrase: str = ""
    voices: list[str] | None = None  # catalog ids offered (None = the whole §18.1 catalog)

    # Embedded model stack (providers = "embedded"); thread counts are sized for 2 cores: one
    # thread per model, so the three heavy models share the cores instead of stalling each other
    # (see providers/embedded/__init__.py for the measurements).
    embedded_stt_threads: int = 1  # faster-whisper cpu_threads
    # Whisper decodes that may run at once: the second lane takes only finals (stt.py)
    embedded_stt_lanes: int = Field(default=2, ge=1)
    embedded_llm_threads: int = 1  # llama.cpp decode threads
    embedded_llm_batch_threads: int = 1  # llama.cpp prompt-processing threads
    embedded_llm_poll: int = 0  # llama.cpp busy-wait level 0-100 (0: idle threads sleep)
    # a reply's generation stops this many tokens ahead of the reply, continued later (llm.py)
    embedded_llm_max_ahead: int = 2
    embedded_llm_context: int = 4096  # llama.cpp context window (tokens) of each parallel slot
    # Conversations the LLM serves at once (llama.cpp slots, continuous batching; one KV cache each)
    embedded_llm_parallel: int = Field(default=4, ge=1)
    # Host-RAM cache (MiB) of KV state evicted from a slot; 0: none (llama.cpp defaults to 8 GiB).
    # 256: a conversation whose slot another one took gets its history back without a new
    # prefill (~12 KB a token: ~20 conversations of 1000 tokens); measured in llm.py. It costs
    # up to its size in RSS (soak, 20 sessions on 4 slots: +7.4 % vs +1.5 % with 0, and 396
    # vs 188 turns answered)
    embedded_llm_cache_ram_mib: int = Field(default=256, ge=0)
    embedded_tts_threads: int = 1  # onnxruntime threads for Piper
    # numpy's BLAS threads (the models' log-mel features); 0: the library's own default
    embedded_blas_threads: int = Field(default=1, ge=0)
    embedded_llm_model_path: Path | None = None  # override the assembled Qwen GGUF
    # Serve the shipped GGUF re-encoded for llama.cpp's repacked CPU kernels (set-up writes it
    # once; prompts ~40 % and tokens ~20 % faster on one AVX2 core, see requantize.py)
    embedded_llm_requantize: bool = True
    embedded_stt_model_dir: Path | None = None  # override the CTranslate2 Whisper directory
    embedded_turn_model_path: Path | None = None  # override the Smart Turn ONNX file
    embedded_tts_model_path: Path | None = None  # override the Piper .onnx (its .json beside it)

    # REST and storage (§17).
    database_url: str | None = None  # None = SQLite file in data_dir; or postgresql+asyncpg://...
    secret_key: str | None = None  # Fernet key for secrets at rest; None = data_dir/secret.key
    # Hosts HTTP tools may call and webhooks (§19) may be sent to (exact host names,
    # "*.example.com" for subdomains); empty = none.
    http_tool_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    http_tool_max_response_bytes: int = 8192  # HTTP tool result cap (§13.7)
    rest_max_body_bytes: int = 1_048_576  # larger REST bodies get 413 (§17.1)
    public_base_url: str | None = None  # base of signed artifact URLs; None = from the request
    browser_tokens: bool = False  # let the web page mint temporary tokens without an API key
    # This server's name among those sharing the database; None = a new id per process. Set it
    # only to a name no other running server uses (its previous run's sessions end at start).
    node_id: str | None = Field(default=None, max_length=64)
    # How often this server tells the database it is alive; after 3 missed beats other servers
    # end its sessions.
    node_heartbeat_seconds: float = Field(default=10, gt=0)
    # Redis shared by the nodes of a cluster (redis://host:6379/0): temporary tokens, resume
    # tokens and session checkpoints live there, so a session resumes on any node. None = alone.
    redis_url: str | None = None
    # On SIGTERM a cluster node lets replies in progress finish for at most this long, then hands
    # its sessions to the other nodes (close 1012). Alone, a node ends its sessions at once.
    drain_seconds: float = Field(default=20, ge=0)

    # External OpenAI-compatible servers (providers/external): a stage whose *_base_url is set
    # uses that server instead of the embedded/fake one. Base URLs include the /v1 part.
    llm_base_url: str | None = None  # e.g. http://127.0.0.1:8080/v1 (vLLM, llama-server, Ollama)
    llm_model: str | None = None  # model name on that server; required with llm_base_url
    llm_api_key: str | None = None  # sent as "Authorization: Bearer …" when set
    stt_base_url: str | None = None  # server with /audio/transcriptions (speaches, vLLM Whisper)
    stt_model: str = "whisper-1"  # e.g. Systran/faster-whisper-small on speaches
    stt_api_key: str | None = None
    stt_partials: bool = False  # one request per partial transcript; off = finals only
    tts_base_url: str | None = None  # server with /audio/speech (Kokoro-FastAPI, speaches)
    tts_model: str = "tts-1"  # e.g. kokoro, or speaches-ai/Kokoro-82M-v1.0-ONNX
    tts_api_key: str | None = None
    tts_voice: str = "alloy"  # server voice for catalog voices not in tts_voice_map
    tts_voice_map: dict[str, str] = Field(default_factory=dict)  # catalog id -> server voice
    tts_sample_rate: int = 24000  # rate of the server's raw "pcm" output
    external_timeout_seconds: float = 30  # connect and per-read timeout of external requests

    @field_validator("api_keys", "backchannel_words", "http_tool_allowed_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def voice_ids(self) -> list[str]:
        from vocalis.protocol.voices import catalog_ids

        return list(self.voices) if self.voices else catalog_ids()

    @property
    def open_mode(self) -> bool:
        """Open development mode (§3.5): no API keys configured."""
        return not self.api_keys

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("VOCALIS_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

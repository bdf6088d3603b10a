"""Settings: one pydantic model per role, shared by the CLI, the env files and the daemons.

Precedence, highest first: a CLI flag (passed as ``overrides``), a process environment variable,
the role's env file (``.env.validator`` / ``.env.gen_miner`` / ``.env``), the default.
Every variable is the field name upper-cased with the ``GAS_`` prefix (``cache_dir`` is
``GAS_CACHE_DIR``); nested models use ``__`` (``GAS_LANES__BURN``). pm2's ecosystem files read the
same env files and pass them through untouched, so a daemon under pm2 and ``gascli`` agree.

Nothing here reads the environment at import time: settings are built by ``load_settings``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gas.scoring.rewards import GeneratorRewardParams
from gas.scoring.weights import WeightLanes

ENV_PREFIX = "GAS_"
NESTED_DELIMITER = "__"

#: Default subnet per named network. ``dev`` mirrors mainnet's numbering so logs read the same.
DEFAULT_NETUIDS: dict[str, int] = {"finney": 34, "test": 379, "dev": 34}
NAMED_NETWORKS = ("dev", "local", "test", "finney")
_URL_RE = re.compile(r"^wss?://[^\s/]+(:\d+)?(/.*)?$")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

#: Generation services the miner can run per modality ("none" switches the modality off).
IMAGE_SERVICES = ("diffusers", "openai", "openrouter", "stabilityai", "none")
VIDEO_SERVICES = ("diffusers", "openai", "openrouter", "runway", "none")


def project_root() -> Path:
    """The checkout the package is installed from (editable install), where the env files live."""
    return Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    return Path("~/.cache/gas").expanduser()


class SettingsError(ValueError):
    """A setting has a bad value. The message names the variable, the field and the reason."""

    def __init__(self, problems: list[str], source_hint: str = "") -> None:
        self.problems = problems
        head = "invalid settings" + (f" ({source_hint})" if source_hint else "")
        super().__init__(head + ":\n  " + "\n  ".join(problems))

    @classmethod
    def from_validation(cls, err: ValidationError, source_hint: str = "") -> SettingsError:
        problems = []
        for e in err.errors():
            loc = [str(p) for p in e["loc"]]
            if loc and loc[0].upper() == loc[0] and loc[0] not in ("",):
                # an aliased field (IMAGE_SERVICE, OPENAI_API_KEY, ...): the alias is the variable
                env, field = loc[0], ".".join([loc[0].lower().removeprefix("gas_"), *loc[1:]])
            else:
                field = ".".join(loc) or "(model)"
                env = env_var_name(*loc) if loc else ""
            value = e.get("input")
            shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
            where = f"{env} / {field}" if env else field
            problems.append(f"{where}: {e['msg']}{shown}")
        return cls(problems, source_hint)


def env_var_name(*field_path: str) -> str:
    """The environment variable that sets a (possibly nested) field: ``GAS_LANES__BURN``."""
    return ENV_PREFIX + NESTED_DELIMITER.join(p.upper() for p in field_path)


class GasSettings(BaseSettings):
    """Settings every role shares: where state lives, which chain, which wallet."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Root of all local state (chain db, stores, datasets, results).",
    )
    network: str = Field(
        default="dev",
        description="dev (embedded SQLite chain), local, test, finney, or a ws(s):// URL.",
    )
    netuid: int | None = Field(
        default=None, ge=0, le=65535, description="Subnet id; derived from the network when unset."
    )
    devchain: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of the dev chain file (<cache>/devchain/<name>.db) when network is dev.",
    )
    wallet_name: str = Field(default="default", min_length=1, description="Bittensor wallet (coldkey) name.")
    wallet_hotkey: str = Field(default="default", min_length=1, description="Hotkey name inside the wallet.")
    wallet_path: Path = Field(
        default_factory=lambda: Path("~/.bittensor/wallets").expanduser(),
        description="Directory holding wallets.",
    )
    log_level: LogLevel = Field(default="INFO", description="Python logging level.")

    env_file_name: ClassVar[str] = ".env"

    @field_validator("cache_dir", "wallet_path", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return Path(os.path.expandvars(str(v))).expanduser()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("network")
    @classmethod
    def _network(cls, v: str) -> str:
        v = v.strip()
        if v in NAMED_NETWORKS or _URL_RE.match(v):
            return v
        raise ValueError(f"must be one of {', '.join(NAMED_NETWORKS)} or a ws:// / wss:// URL")

    @model_validator(mode="after")
    def _derive_netuid(self) -> GasSettings:
        if self.netuid is None:
            derived = DEFAULT_NETUIDS.get(self.network)
            if derived is None:
                raise ValueError(
                    f"netuid: no default subnet for network {self.network!r}; set {env_var_name('netuid')}"
                )
            self.netuid = derived
        return self


class ValidatorSettings(GasSettings):
    """The validator daemon (`gascli validator`)."""

    env_file_name: ClassVar[str] = ".env.validator"

    callback_port: int = Field(default=10525, ge=1, le=65535, description="Port of the media callback API.")
    external_ip: str | None = Field(default=None, description="Public IP advertised to miners (auto if unset).")
    external_callback_port: int | None = Field(default=None, ge=1, le=65535)
    epoch_length: int = Field(default=360, ge=1, description="Blocks between reward/weight updates.")
    rewards: GeneratorRewardParams = Field(
        default_factory=GeneratorRewardParams, description="Generator reward constants (GAS_REWARDS__*)."
    )
    lanes: WeightLanes = Field(
        default_factory=WeightLanes, description="Weight-vector lane shares and burn uid (GAS_LANES__*)."
    )


class GeneratorSettings(GasSettings):
    """The generative miner (`gascli generator`)."""

    env_file_name: ClassVar[str] = ".env.gen_miner"

    model_config = SettingsConfigDict(populate_by_name=True)

    # --- server and chain presence -------------------------------------------------------------
    axon_port: int = Field(default=8093, ge=1, le=65535, description="Port the miner's HTTP server listens on.")
    bind_host: str = Field(default="0.0.0.0", description="Interface the HTTP server binds (never advertised).")
    external_ip: str | None = Field(default=None, description="Routable IP published on chain (auto if unset).")
    metagraph_refresh_s: float = Field(
        default=120.0, gt=0, description="Seconds between metagraph refreshes (new validators accepted without restart)."
    )
    # --- who may ask for media ------------------------------------------------------------------
    require_validator_permit: bool = Field(
        default=True, description="Accept signers holding a validator permit (see min_validator_stake)."
    )
    min_validator_stake: float = Field(
        default=20000.0, ge=0, description="Also accept signers with at least this stake; 0 disables the stake rule."
    )
    epistula_max_age_s: float = Field(default=30.0, gt=0, description="Oldest accepted request timestamp (s).")
    epistula_max_future_s: float = Field(default=5.0, ge=0, description="Largest accepted clock skew ahead (s).")
    max_request_bytes: int = Field(default=65536, ge=1024, description="Largest accepted request body (bytes).")
    # --- task engine ----------------------------------------------------------------------------
    max_concurrent_tasks: int = Field(default=5, ge=1, le=256)
    task_timeout: float = Field(default=300.0, gt=0, description="Seconds before a generation task fails.")
    max_task_age_hours: float = Field(default=24.0, gt=0, description="Finished tasks older than this are deleted.")
    cleanup_interval: float = Field(default=3600.0, gt=0, description="Seconds between cleanups of old tasks.")
    webhook_max_retries: int = Field(default=3, ge=0, le=20, description="Retries after a failed webhook delivery.")
    webhook_retry_delay: float = Field(default=2.0, ge=0, description="First retry delay (s); doubles per retry.")
    webhook_timeout: float = Field(default=30.0, gt=0, description="Per-attempt webhook timeout (s).")
    save_media: bool = Field(default=False, description="Keep a copy of every generated file under <cache>/generator/media.")
    # --- generation services --------------------------------------------------------------------
    image_service: str = Field(
        default="diffusers",
        validation_alias=AliasChoices("GAS_IMAGE_SERVICE", "IMAGE_SERVICE", "image_service"),
        description="Image service: diffusers, openai, openrouter, stabilityai, or none (env IMAGE_SERVICE).",
    )
    video_service: str = Field(
        default="diffusers",
        validation_alias=AliasChoices("GAS_VIDEO_SERVICE", "VIDEO_SERVICE", "video_service"),
        description="Video service: diffusers, openai, openrouter, runway, or none (env VIDEO_SERVICE).",
    )
    diffusers_image_model: str = Field(
        default="builtin:tiny",
        description="Hub id or local directory of a text-to-image pipeline; builtin:tiny = random-weight demo model.",
    )
    diffusers_video_model: str = Field(
        default="builtin:tiny",
        description="Hub id or local directory of a text-to-video pipeline; builtin:tiny = random-weight demo model.",
    )
    diffusers_device: str = Field(default="auto", description="auto (cuda when present), cpu, or cuda[:N].")
    diffusers_dtype: Literal["float16", "bfloat16", "float32"] | None = Field(
        default=None, description="Pipeline dtype; default float16 on CUDA, float32 on CPU (Wan/Flux want bfloat16)."
    )
    c2pa_cert: Path | None = Field(
        default=None, description="PEM chain (signer first) for C2PA signing; default <cache>/c2pa/signer.pem."
    )
    c2pa_key: Path | None = Field(
        default=None, description="PEM private key for C2PA signing; default <cache>/c2pa/signer.key."
    )
    c2pa_trust_anchors: list[Path] = Field(
        default_factory=list,
        description="Operator's own trust-anchor PEM files, added to configs/trust_anchors/ (JSON list in env).",
    )
    # API keys keep the reference's variable names so existing .env.gen_miner files work.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "GAS_OPENAI_API_KEY", "openai_api_key")
    )
    openrouter_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPEN_ROUTER_API_KEY", "OPENROUTER_API_KEY", "GAS_OPENROUTER_API_KEY",
                                      "openrouter_api_key"),
    )
    stability_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STABILITY_API_KEY", "GAS_STABILITY_API_KEY", "stability_api_key"),
    )
    runway_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RUNWAYML_API_SECRET", "RUNWAYML_API_KEY", "GAS_RUNWAY_API_KEY",
                                      "runway_api_key"),
    )
    openai_base_url: str = Field(default="https://api.openai.com/v1")
    openrouter_base_url: str = Field(default="https://openrouter.ai/api/v1")
    stability_base_url: str = Field(default="https://api.stability.ai")
    runway_base_url: str = Field(default="https://api.dev.runwayml.com/v1")

    @field_validator("image_service", "video_service", mode="before")
    @classmethod
    def _service_name(cls, v: Any, info: Any) -> Any:
        if not isinstance(v, str):
            return v
        v = v.strip().lower()
        allowed = IMAGE_SERVICES if info.field_name == "image_service" else VIDEO_SERVICES
        if v not in allowed:
            raise ValueError(f"{v!r} is not one of {', '.join(allowed)}")
        return v

    @field_validator("c2pa_cert", "c2pa_key", mode="after")
    @classmethod
    def _expand_opt(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(os.path.expandvars(str(v))).expanduser()

    @property
    def generator_dir(self) -> Path:
        """State of the miner: task database, media awaiting delivery, C2PA credentials."""
        return self.cache_dir / "generator"

    @property
    def c2pa_cert_path(self) -> Path:
        return self.c2pa_cert or self.cache_dir / "c2pa" / "signer.pem"

    @property
    def c2pa_key_path(self) -> Path:
        return self.c2pa_key or self.cache_dir / "c2pa" / "signer.key"


class DiscriminatorSettings(GasSettings):
    """The discriminative miner's one-shot commands (`gascli discriminator`)."""

    env_file_name: ClassVar[str] = ".env"

    model_store: str = Field(default="", description="Where packages are uploaded: file://DIR or hf://REPO.")

    @model_validator(mode="after")
    def _default_store(self) -> DiscriminatorSettings:
        if not self.model_store:
            self.model_store = f"file://{self.cache_dir / 'models'}"
        elif not self.model_store.startswith(("file://", "hf://")):
            raise ValueError("model_store: must start with file:// or hf://")
        return self


S = TypeVar("S", bound=GasSettings)

#: The roles by the name the CLI and the docs use.
ROLE_SETTINGS: dict[str, type[GasSettings]] = {
    "validator": ValidatorSettings,
    "generator": GeneratorSettings,
    "discriminator": DiscriminatorSettings,
}


def default_env_file(cls: type[GasSettings]) -> Path | None:
    """The role's env file: ``GAS_ENV_FILE`` if set, else the one in the CWD, else the project's."""
    explicit = os.environ.get("GAS_ENV_FILE")
    if explicit:
        return Path(explicit)
    name = getattr(cls, "env_file_name", ".env")
    for candidate in (Path.cwd() / name, project_root() / name):
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    cls: type[S],
    *,
    env_file: Path | str | None | Literal[False] = None,
    overrides: Mapping[str, Any] | None = None,
) -> S:
    """Build settings for a role. ``overrides`` are CLI flags; a ``None`` value means 'not given'.

    ``env_file=None`` looks the role's file up (see :func:`default_env_file`); ``False`` reads none.
    Raises :class:`SettingsError` naming every bad variable.
    """
    if env_file is None:
        env_file = default_env_file(cls)
    elif env_file is not False:
        env_file = Path(env_file)
        if not env_file.is_file():
            raise SettingsError([f"env file {env_file} does not exist"])
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    hint = f"env file {env_file}" if env_file else ""
    try:
        return cls(_env_file=env_file or None, **given)
    except ValidationError as err:
        raise SettingsError.from_validation(err, hint) from None


def setting_sources(
    settings: GasSettings, *, env_file: Path | None, overrides: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Where each top-level field's value came from: flag, env, env file, or default."""
    from dotenv import dotenv_values

    file_values = {k.upper() for k in dotenv_values(env_file)} if env_file and env_file.is_file() else set()
    out: dict[str, str] = {}
    for name in type(settings).model_fields:
        var = env_var_name(name)
        if overrides and overrides.get(name) is not None:
            out[name] = "flag"
        elif var in os.environ or any(k.startswith(var + NESTED_DELIMITER) for k in os.environ):
            out[name] = f"env {var}"
        elif var in file_values or any(k.startswith(var + NESTED_DELIMITER) for k in file_values):
            out[name] = f"file {env_file.name if env_file else ''}"
        else:
            out[name] = "default" if name != "netuid" else "derived from network"
    return out

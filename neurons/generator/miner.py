"""The generative miner process: chain presence, the signed HTTP API, the task engine.

Run it in the foreground with ``python neurons/generator/miner.py [--env-file FILE]`` or
``python -m neurons.generator``; under pm2 with ``gascli generator start``. Settings come from
:class:`gas.config.GeneratorSettings` (env file ``.env.gen_miner`` / ``GAS_ENV_FILE``).

Start-up, each step stopping the process with a clear message (and a distinct exit code) on failure:

1. settings, wallet hotkey, chain (exit 2 on a bad setting or wallet);
2. the hotkey must be registered on the subnet (exit 3);
3. the external IP to publish: ``GAS_EXTERNAL_IP`` when set (must be a specified, routable
   address), ``127.0.0.1`` on the dev chain, otherwise the address of the interface that routes
   to the chain endpoint (a UDP ``connect``, which sends nothing). Never ``0.0.0.0`` (exit 4);
4. listen on ``bind_host:axon_port`` (exit 5 if the port is taken);
5. publish the axon ``(ip, port)`` on chain when the chain shows something else;
6. services, task store (``<cache>/generator/tasks.db``), webhook sender, task engine;
7. serve (uvicorn with httptools and uvloop) until SIGTERM/SIGINT, then stop the engine (its
   tasks stay durable and resume on the next start) and close the services.

While running, the metagraph is re-read every ``metagraph_refresh_s`` seconds, so validators who
registered or gained stake after the start are accepted without a restart, and the axon is
re-published if the chain's record of it changed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # ``python neurons/generator/miner.py``: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

log = logging.getLogger("gas.generator")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_NOT_REGISTERED = 3
EXIT_EXTERNAL_IP = 4
EXIT_LISTEN = 5

#: Networks whose nodes are all on this machine: loopback addresses may be published.
LOCAL_NETWORKS = ("dev", "local")


class StartupError(RuntimeError):
    """The miner cannot start; the message tells the operator what to do."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class NotRegisteredError(StartupError):
    exit_code = EXIT_NOT_REGISTERED


class ExternalIpError(StartupError):
    exit_code = EXIT_EXTERNAL_IP


# --------------------------------------------------------------------------------------------
# external IP
# --------------------------------------------------------------------------------------------
def check_advertisable(value: str, *, network: str, what: str = "GAS_EXTERNAL_IP") -> str:
    """``value`` normalised when other nodes could reach it; :class:`ExternalIpError` otherwise.

    Refused everywhere: not an IP literal, unspecified (``0.0.0.0``/``::``), multicast, reserved.
    Refused off the local networks (``dev``, ``local``): loopback and link-local addresses.
    """
    try:
        addr = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ExternalIpError(f"{what} {value!r} is not an IPv4 or IPv6 address") from None
    if addr.is_unspecified:
        raise ExternalIpError(
            f"{what} {addr} is the unspecified address: validators cannot connect to it; "
            "set GAS_EXTERNAL_IP to this machine's public address"
        )
    if addr.is_multicast or (addr.version == 4 and addr.is_reserved):
        raise ExternalIpError(f"{what} {addr} is a multicast or reserved address, not a host")
    if network not in LOCAL_NETWORKS and (addr.is_loopback or addr.is_link_local):
        raise ExternalIpError(
            f"{what} {addr} is a loopback/link-local address, unreachable from other machines on network "
            f"{network!r}; set GAS_EXTERNAL_IP to this machine's public address"
        )
    if network not in LOCAL_NETWORKS and addr.is_private:
        log.warning("external_ip=%s is a private address: validators outside your network cannot reach it "
                    "unless you forward the port", addr)
    return str(addr)


def chain_endpoint(network: str) -> tuple[str, int]:
    """Host and port of the chain endpoint a network name stands for (no connection made)."""
    url = network
    if not network.startswith(("ws://", "wss://")):
        from bittensor.settings import resolve_endpoint

        url = resolve_endpoint(network)[1]
    parts = urlsplit(url)
    if not parts.hostname:
        raise ExternalIpError(f"cannot find a host in the chain endpoint {url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "wss" else 80)


def outbound_address(host: str, port: int) -> str:
    """The local address the OS would use to reach ``host``: a UDP ``connect`` only picks a route
    (no packet is sent; resolving a host name may query DNS)."""
    last: OSError | None = None
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect(sockaddr)
                return str(s.getsockname()[0])
        except OSError as exc:
            last = exc
    raise last or OSError(f"no address for {host}")


def resolve_external_ip(settings: Any, *, probe: Callable[[str, int], str] = outbound_address) -> str:
    """The IP to publish on chain (see the module docstring for the rules)."""
    network = settings.network
    if settings.external_ip:
        return check_advertisable(settings.external_ip, network=network)
    if network == "dev":
        return "127.0.0.1"
    host, port = chain_endpoint(network)
    try:
        found = probe(host, port)
    except OSError as exc:
        raise ExternalIpError(
            f"cannot find this machine's outbound address towards the chain endpoint {host}:{port} ({exc}); "
            "set GAS_EXTERNAL_IP"
        ) from None
    try:
        return check_advertisable(found, network=network, what="the auto-detected address")
    except ExternalIpError as exc:
        raise ExternalIpError(f"{exc} (detected via the route to {host})") from None


# --------------------------------------------------------------------------------------------
# the miner
# --------------------------------------------------------------------------------------------
class _HotkeyIndex:
    """A metagraph view with O(1) hotkey lookup (the authorizer runs per request)."""

    def __init__(self, metagraph: Any) -> None:
        self.metagraph = metagraph
        self.netuid = metagraph.netuid
        self._by = {n.hotkey: n for n in metagraph.neurons}

    def by_hotkey(self, hotkey: str) -> Any:
        return self._by.get(hotkey)


def _registration_hint(settings: Any) -> str:
    if settings.network == "dev":
        return (f"register it with `gascli chain register --wallet-name {settings.wallet_name} "
                f"--wallet-hotkey {settings.wallet_hotkey}`")
    return (f"register it with `btcli subnets register --netuid {settings.netuid} "
            f"--wallet.name {settings.wallet_name} --wallet.hotkey {settings.wallet_hotkey}`")


class GeneratorMiner:
    """Wires chain, services, task engine and HTTP API together.

    Everything is built in :meth:`start` from ``settings``; tests inject parts: ``chain`` (e.g. a
    dev chain on a fake clock), ``keypair`` (signs webhooks; default: the wallet's hotkey),
    ``services`` (a ServiceSet), ``ip_probe`` (see :func:`resolve_external_ip`).
    """

    def __init__(
        self,
        settings: Any,
        *,
        identity: Any = None,
        keypair: Any = None,
        chain: Any = None,
        services: Any = None,
        ip_probe: Callable[[str, int], str] = outbound_address,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.keypair = keypair
        self.chain = chain
        self.services = services
        self.ip_probe = ip_probe
        self.store: Any = None
        self.engine: Any = None
        self.webhooks: Any = None
        self.app: Any = None
        self.uid: int | None = None
        self.external_ip: str | None = None
        self._index: _HotkeyIndex | None = None
        self._refresher: asyncio.Task | None = None
        self._owns_chain = chain is None
        self._owns_services = services is None
        self.started_at = time.time()
        self.refreshes = 0

    # --------------------------------------------------------------------------- properties
    @property
    def hotkey(self) -> str:
        return self.identity.hotkey

    @property
    def port(self) -> int:
        return int(self.settings.axon_port)

    @property
    def metagraph(self) -> Any:
        if self._index is None:
            raise RuntimeError("the miner has not read the metagraph yet")
        return self._index.metagraph

    def _authorizer_view(self) -> _HotkeyIndex:
        if self._index is None:
            raise RuntimeError("the miner has not read the metagraph yet")
        return self._index

    # -------------------------------------------------------------------------------- start
    def load_identity(self) -> None:
        """The wallet's hotkey (and coldkey address) unless injected."""
        if self.identity is None:
            from gas.chain.wallets import WalletError, load_identity

            s = self.settings
            try:
                self.identity = load_identity(s.wallet_name, s.wallet_hotkey, s.wallet_path)
            except WalletError as exc:
                raise StartupError(str(exc), EXIT_CONFIG) from None
        if self.keypair is None:
            wallet = getattr(self.identity, "wallet", None)
            if wallet is None:
                raise StartupError("no keypair to sign webhooks with (identity without a wallet)", EXIT_CONFIG)
            self.keypair = wallet.hotkey

    async def start(self) -> None:
        """Everything except listening: registration check, axon, services, engine, refresh loop."""
        from gas.chain.base import ChainError

        s = self.settings
        self.load_identity()
        if self.chain is None:
            from gas.chain import open_from_settings

            try:
                self.chain = open_from_settings(s, identity=self.identity)
            except ChainError as exc:
                raise StartupError(f"cannot open the chain ({s.network}): {exc}") from None
        try:
            mg = await asyncio.to_thread(self.chain.metagraph)
        except ChainError as exc:
            raise StartupError(f"cannot read the metagraph of subnet {s.netuid} on {s.network}: {exc}") from None
        neuron = mg.by_hotkey(self.hotkey)
        if neuron is None:
            raise NotRegisteredError(
                f"hotkey {self.hotkey} (wallet {s.wallet_name}/{s.wallet_hotkey}) is not registered on subnet "
                f"{s.netuid} ({s.network}): {_registration_hint(s)}"
            )
        self._index = _HotkeyIndex(mg)
        self.uid = neuron.uid
        self.external_ip = resolve_external_ip(s, probe=self.ip_probe)
        await self._ensure_axon(neuron)

        self._build_runtime()
        await self.engine.start()
        self.app = self._build_app()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="metagraph-refresh")
        log.info("miner ready uid=%s hotkey=%s axon=%s:%d netuid=%s network=%s", self.uid, self.hotkey,
                 self.external_ip, self.port, s.netuid, s.network)

    def _build_runtime(self) -> None:
        from gas.generation.engine import TaskEngine

        s = self.settings
        if self.services is None:
            from gas.generation.services.registry import build_services

            self.services = build_services(s)
        for info in self.services.info():
            if info.get("available"):
                log.info("service %s available for %s", info.get("name"), info.get("supported_tasks"))
            else:
                log.warning("service %s unavailable: %s", info.get("name"), info.get("reason"))
        s.generator_dir.mkdir(parents=True, exist_ok=True)
        self.engine = TaskEngine.from_settings(s, self.services, self.keypair)
        self.store = self.engine.store
        self.webhooks = self.engine.webhooks

    def _build_app(self) -> Any:
        from neurons.generator.server import build_verifier, config_summary, create_app

        verifier = build_verifier(self.settings, hotkey=self.hotkey, get_metagraph=self._authorizer_view)
        return create_app(
            engine=self.engine,
            services=self.services,
            verifier=verifier,
            hotkey=self.hotkey,
            uid=lambda: self.uid,
            config_info=config_summary(self.settings),
            started_at=self.started_at,
        )

    async def _ensure_axon(self, neuron: Any) -> None:
        ip, port = self.external_ip, self.port
        if neuron.axon_ip == ip and neuron.axon_port == port:
            log.info("axon %s:%d already published for uid=%s", ip, port, neuron.uid)
            return
        from gas.chain.base import ChainError

        try:
            await asyncio.to_thread(self.chain.serve_axon, ip, port)
        except ChainError as exc:
            raise StartupError(f"publishing the axon {ip}:{port} on chain failed: {exc}") from None
        log.info("published axon %s:%d for uid=%s (chain had %s)", ip, port, neuron.uid, neuron.axon or "none")

    # ------------------------------------------------------------------------ metagraph loop
    async def refresh_metagraph(self) -> None:
        """Re-read the metagraph; re-publish the axon if the chain's record of it changed."""
        mg = await asyncio.to_thread(self.chain.metagraph)
        before = self._index
        self._index = _HotkeyIndex(mg)
        self.refreshes += 1
        neuron = mg.by_hotkey(self.hotkey)
        if neuron is None:
            log.error("hotkey %s is no longer registered on subnet %s: validators will stop querying this miner; %s",
                      self.hotkey, mg.netuid, _registration_hint(self.settings))
            self.uid = None
            return
        if neuron.uid != self.uid:
            log.info("uid changed from %s to %s", self.uid, neuron.uid)
            self.uid = neuron.uid
        if neuron.axon_ip != self.external_ip or neuron.axon_port != self.port:
            log.warning("chain shows axon %s, expected %s:%d: publishing again", neuron.axon, self.external_ip, self.port)
            await self._ensure_axon(neuron)
        if before is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("metagraph refreshed block=%s neurons=%d", mg.block, mg.n)

    async def _refresh_loop(self) -> None:
        interval = float(self.settings.metagraph_refresh_s)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh_metagraph()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving with the last good view
                log.warning("metagraph refresh failed (keeping the view from block %s): %s",
                            self.metagraph.block, exc)

    # --------------------------------------------------------------------------------- stop
    async def stop(self) -> None:
        """Stop background work; unfinished tasks stay in the store and resume on the next start."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self.engine is not None:
            await self.engine.stop()
        if self.webhooks is not None:
            await self.webhooks.aclose()
        if self.services is not None and self._owns_services:
            await self.services.aclose()
        if self.store is not None:
            self.store.close()
        if self.chain is not None and self._owns_chain:
            self.chain.close()
        log.info("miner stopped")

    # -------------------------------------------------------------------------------- serve
    def listen(self) -> socket.socket:
        """Bind ``bind_host:axon_port`` now, so a taken port fails before anything is published."""
        host, port = self.settings.bind_host, self.port
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        except ValueError:
            family = socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                               "(another miner running? set GAS_AXON_PORT)", EXIT_LISTEN) from None
        sock.set_inheritable(True)
        return sock

    async def serve(self, sock: socket.socket | None = None) -> None:
        """Start, serve HTTP until SIGTERM/SIGINT (or :meth:`request_exit`), then stop."""
        import uvicorn

        sock = sock or self.listen()
        try:
            await self.start()
            config = uvicorn.Config(
                self.app,
                host=self.settings.bind_host,  # (the socket is already bound; these name it in logs)
                port=self.port,
                http=_http_impl(),
                lifespan="off",
                access_log=False,
                log_config=None,
                server_header=False,
                timeout_graceful_shutdown=10,
                backlog=2048,
            )
            self._server = _make_server(config)
            await self._server.serve(sockets=[sock])
        finally:
            await self.stop()
            sock.close()

    def request_exit(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.should_exit = True


def _http_impl() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def _make_server(config: Any) -> Any:
    """uvicorn's server, except that SIGTERM/SIGINT only ask it to stop: the signal is not raised
    again after ``serve`` returns, so the miner stops its engine and exits 0."""
    import threading

    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return _Server(config)


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
class _KeyValueFormatter(logging.Formatter):
    """``2025-01-01T00:00:00.123Z INFO gas.generator: message key=value ...`` in UTC."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(miner: GeneratorMiner) -> None:
    """Run ``miner.serve()`` on uvloop when it is installed."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(miner.serve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neurons.generator",
        description="GAS generative miner: Epistula-signed HTTP server generating media on request.",
    )
    parser.add_argument("--env-file", type=Path, default=None,
                        help="env file to read (default: GAS_ENV_FILE, else .env.gen_miner)")
    args = parser.parse_args(argv)

    from gas.config import GeneratorSettings, SettingsError, load_settings

    try:
        settings = load_settings(GeneratorSettings, env_file=args.env_file)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level)
    miner = GeneratorMiner(settings)
    try:
        run(miner)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

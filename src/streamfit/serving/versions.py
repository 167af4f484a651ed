"""Following a continuous trainer's published versions (:mod:`streamfit.training.publish`).

A model given as a training output folder (or its ``models/`` folder) is served at the version
``models/latest`` points to. A watcher reads that link every ``poll`` seconds (one
``readlink``: cheap); when it names another version, the watcher loads it in a worker thread
and then swaps it in with one assignment in the event loop. A request takes the model once,
when it starts, so requests in flight finish on the version they began with; a version that
fails to load is logged and the one before goes on serving (it is tried again only once the
link moves on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

from streamfit.serving.models import ServedModel, link_target, load_version

__all__ = ["VersionWatcher"]

log = logging.getLogger(__name__)


@dataclass
class VersionWatcher:
    """Keeps ``models[name]`` at the version its ``latest`` link names (see the module).

    ``on_swap(name, ok)`` is told of each swap (``ok``) and each version that failed to load.
    """

    models: MutableMapping[str, ServedModel]
    name: str
    poll: float
    device: str = "cpu"
    on_swap: Callable[[str, bool], None] = lambda name, ok: None

    async def run(self) -> None:
        """Poll until cancelled (the server's lifespan ends)."""
        failed: str | None = None
        while True:
            await asyncio.sleep(self.poll)
            served = self.models[self.name]
            assert served.link is not None
            try:
                target = link_target(served.link)
            except OSError:
                continue  # the link is being replaced or gone: the next poll sees
            if target in (served.version, failed):
                continue
            try:
                new = await asyncio.to_thread(
                    load_version, self.name, served.link, self.device, target
                )
            except Exception:
                log.exception(
                    "%s: version %s failed to load; version %s goes on serving",
                    self.name,
                    target,
                    served.version,
                )
                failed = target
                self.on_swap(self.name, False)
                continue
            failed = None
            self.models[self.name] = new  # the swap: requests from now on take this one
            log.info("%s: now serving version %s", self.name, new.version)
            self.on_swap(self.name, True)

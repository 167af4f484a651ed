"""Sources of rows (files, pipes, SQL) and the batcher that turns them into tensors."""

from streamfit.data.batcher import Batcher
from streamfit.data.chunk import Chunk
from streamfit.data.source import Source, SourceOptions, open_source

__all__ = ["Batcher", "Chunk", "Source", "SourceOptions", "open_source"]

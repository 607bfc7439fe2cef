"""Data plumbing that knows no dataset: the shared embedding cache
(:mod:`modalink.data.embedding_cache`) and the processes of a launched job
(:mod:`modalink.data.processes`)."""

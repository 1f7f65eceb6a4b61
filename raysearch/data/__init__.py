"""GTZAN data: discovery, track-level splits, spectrograms and the Ray Data pipeline."""

# Canonical label order: label i is GENRES[i] everywhere (shards, checkpoints, confusion matrices).
GENRES: tuple[str, ...] = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)

"""Where the published ELMo model and the 1B Word Benchmark live, and the
digests that prove a download is the genuine file.

Each entry is ``(url, sha256, size_in_bytes)``. Neither AllenNLP nor statmt.org
publishes a sha256 next to the files, so each comment names the public record
the digest was taken from and how far it is corroborated.
"""
from __future__ import annotations

_ELMO_BASE = "https://allennlp.s3.amazonaws.com/models/elmo/2x4096_512_2048cnn_2xhighway/"

OFFICIAL_ELMO = {
    # sha256: none is published anywhere we could find. It was computed here
    # from a committed copy, GitHub Dio990521/SAEDS, path
    # elmo_2x4096_512_2048cnn_2xhighway_options.json (commit 5264583f): one
    # line of JSON plus a newline, 336 bytes, the same size as the official
    # file (tqdm logs of downloads from this very URL in public notebooks
    # show "336/336"). Derived, not published: if it ever mismatches, check
    # the downloaded JSON by eye before changing this digest.
    "options": (
        _ELMO_BASE + "elmo_2x4096_512_2048cnn_2xhighway_options.json",
        "86cb4c1a7e2f25e3867d06810e33ae27fbbd511ac77ca377be5fb7405a7085b1",
        336,
    ),
    # sha256 and size: the Git LFS pointer of a committed copy, GitHub
    # tamu-nlp/Dialogue-Act-Classification, path
    # data/elmo_2x4096_512_2048cnn_2xhighway_weights.hdf5 (commit 8e08f08a):
    # "oid sha256:a6b92b9c... size 374434792". The size agrees with tqdm logs
    # of downloads from this URL in public notebooks ("374434792/374434792").
    "weights": (
        _ELMO_BASE + "elmo_2x4096_512_2048cnn_2xhighway_weights.hdf5",
        "a6b92b9ccbb13fe489faacd2221c795d4bebe84b75f8aded9d85ea464fa5c994",
        374434792,
    ),
}

# sha256 and size: tensorflow/datasets, path
# tensorflow_datasets/datasets/lm1b/checksums.tsv (also the older
# tensorflow_datasets/url_checksums/lm1b.txt). The same sha256 is pinned
# independently by other projects (Julia DataDeps registrations, a
# tf.keras.utils.get_file download script), so it is well corroborated.
LM1B_TARBALL = (
    "http://www.statmt.org/lm-benchmark/1-billion-word-language-modeling-benchmark-r13output.tar.gz",
    "01ba60381110baf7f189dfd2b8374de371e8c9a340835793f190bdae9e90a34e",
    1792209805,
)
